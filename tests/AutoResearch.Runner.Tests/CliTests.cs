using System.CommandLine;
using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class CliTests
{
    private static (int ExitCode, string Output, string Error) Invoke(params string[] args)
    {
        var root = new RootCommand("test");
        root.Subcommands.Add(ResultsCommand.Create());
        root.Subcommands.Add(AnalyzeCommand.Create());
        root.Subcommands.Add(ProfileCommand.Create());
        var output = new StringWriter();
        var error = new StringWriter();
        int code = root.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Results_add_help_lists_its_options()
    {
        var (code, output, _) = Invoke("results", "add", "--help");
        Assert.Equal(0, code);
        foreach (string option in (string[])["--status", "--description", "--log", "--file", "--commit"])
            Assert.Contains(option, output, StringComparison.Ordinal);
    }

    [Fact]
    public void Analyze_help_lists_its_options()
    {
        var (code, output, _) = Invoke("analyze", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--out", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Results_add_with_an_unknown_status_fails_to_parse()
    {
        var (code, _, error) = Invoke("results", "add", "--status", "maybe", "--description", "x");
        Assert.NotEqual(0, code);
        Assert.Contains("maybe", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_help_lists_its_tuning_options_with_the_gemm_candidates_default()
    {
        var (code, output, _) = Invoke("profile", "--help");
        Assert.Equal(0, code);
        foreach (string option in (string[])["--gemm-candidates", "--head-chunk-rows", "--zipf-tokens", "--device-batch", "--steps", "--resources", "--cublas-qk", "--fixed-weights", "--tsv"])
            Assert.Contains(option, output, StringComparison.Ordinal);
        Assert.Contains($"default: {AutoResearch.Runner.Training.GpuTrainer.GemmCandidates}", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_rejects_zero_gemm_candidates_before_touching_a_device()
    {
        var (code, _, error) = Invoke("profile", "--gemm-candidates", "0");
        Assert.NotEqual(0, code);
        Assert.Contains("--gemm-candidates must be at least 1", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--steps", "0")]
    [InlineData("--steps", "-3")]
    [InlineData("--seq-len", "0")]
    public void Profile_rejects_a_count_below_one_before_touching_a_device(string flag, string value)
    {
        var (code, _, error) = Invoke("profile", flag, value);
        Assert.NotEqual(0, code);
        Assert.Contains($"{flag} must be at least 1; got {value}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_refuses_unknown_or_unsupported_knobs_before_touching_a_device()
    {
        var e = Assert.Throws<ArgumentException>(() => Invoke("profile", "--set", "Nope=1"));
        Assert.Contains("unknown knob 'Nope'", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => Invoke("profile", "--set", "HeadDim=96"));
        Assert.Contains("HeadDim = 96", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => Invoke("profile", "--depth", "4", "--set", "Depth=6"));
        Assert.Contains("--depth 4 and --set Depth=6 disagree", e.Message, StringComparison.Ordinal);
        // The shape is built for the profile's T: a short window beyond it is refused too.
        e = Assert.Throws<ArgumentException>(() => Invoke("profile", "--seq-len", "256", "--set", "ShortWindow=512"));
        Assert.Contains("ShortWindow = 512", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_refuses_a_tsv_path_it_could_not_write_before_touching_a_device()
    {
        using var folder = new TempFolder();
        string missing = Path.Combine(folder.Path, "no such folder", "profile.tsv");
        var e = Assert.Throws<ArgumentException>(() => Invoke("profile", "--tsv", missing));
        Assert.Contains("--tsv", e.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => Invoke("profile", "--tsv", folder.Path));
        Assert.Contains("is a folder", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.GetDirectoryName(missing)));
    }

    [Fact]
    public void Profile_tsv_holds_every_op_and_step_figure_and_reads_back()
    {
        AutoResearch.Native.StreamProfiler.Row[] ops =
        [
            new("flash attention backward", 27.468, 8, 8.94e12, 0),
            new("GEMM mlp fc + norm + relu²", 7.02, 8, 4.4e12, 1.5e9),
            new("rmsnorm", 0.14, 1, 0, 5.4e8),
        ];
        string text = ProfileTsv.Format(ops, 131.94, 1.55, 272.7, 27082.6);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(ProfileTsv.Header, lines[0]);
        Assert.Equal(1 + ops.Length + 4, lines.Length);
        Assert.All(lines, l => Assert.Equal(5, l.Count(c => c == '\t')));
        var values = ProfileTsv.Read(text);
        foreach (var op in ops)
            Assert.Equal(op.Milliseconds, values[("op", op.Name)]);
        Assert.Equal(131.94, values[("step", "micro-step")]);
        Assert.Equal(1.55, values[("step", "optimizer-step")]);
        Assert.Equal(272.7, values[("step", "whole-step")]);
        Assert.Equal(27082.6, values[("memory", "peak")]);
        Assert.False(values.ContainsKey(("energy", "whole-step")));
        Assert.False(values.ContainsKey(("clock", "SM median")));
        // With the power measured: the mean energy of a whole step and the median SM clock, after the memory row.
        var power = new PowerSummary([190.0, 194.0], [0.27, 0.28], [new(1590, 0x4), new(1605, 0x4), new(1350, 0)], 700);
        string withPower = ProfileTsv.Format(ops, 131.94, 1.55, 272.7, 27082.6, power);
        Assert.StartsWith(text, withPower, StringComparison.Ordinal);
        var powerValues = ProfileTsv.Read(withPower);
        Assert.Equal(192.0, powerValues[("energy", "whole-step")], 12);
        Assert.Equal(1590.0, powerValues[("clock", "SM median")]);
        Assert.Throws<ArgumentException>(() => ProfileTsv.Format([new("a\tb", 1, 1, 0, 0)], 1, 1, 1, 1));
        Assert.Throws<FormatException>(() => ProfileTsv.Read("op\tx\t1\t1\t0\t0\n"));
    }

    [Fact]
    public void Results_add_writes_a_row_from_the_command_line()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        var (code, output, _) = Invoke("results", "add", "--status", "crash", "--description", "oom at depth 16", "--file", results, "--commit", "abc1234");
        Assert.Equal(0, code);
        Assert.Equal("abc1234\t0.000000\t0.0\tcrash\toom at depth 16", output.Trim());
        Assert.EndsWith("abc1234\t0.000000\t0.0\tcrash\toom at depth 16\n", File.ReadAllText(results), StringComparison.Ordinal);
    }
}

using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using AutoResearch.Runner.Sweep;
using AutoResearch.Runner.Training;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>`autoresearch paths` (no GPU), and the kernel paths in the sweep's table and train's start-up lines.</summary>
public class PathsCommandTests
{
    [Fact]
    public void Paths_lists_every_op_for_the_knobs_given_and_says_why_one_is_off_its_fast_path()
    {
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("paths", "--set", "Activation=swiglu", "--set", "AspectRatio=256");
        Assert.True(exit == 0, stderr);
        Assert.Contains("width 2048", stdout, StringComparison.Ordinal);
        Assert.Contains("AspectRatio=256", stdout, StringComparison.Ordinal);
        foreach (var op in new[] { "attention", "q, k projections", "v projection", "MLP", "value gate backward", "embedding backward", "norm + mix backward" })
            Assert.Contains("│ " + op + " ", stdout, StringComparison.Ordinal);
        Assert.Contains("not swiglu", stdout, StringComparison.Ordinal);
        Assert.Contains("rows of 2048 features, over the grouped kernel's 1024", stdout, StringComparison.Ordinal);
        Assert.Contains("4 op(s) off the fast path", stdout, StringComparison.Ordinal); // MLP, value gate (kv rows of 2048), embedding, norm + mix
    }

    [Fact]
    public void Paths_of_the_baseline_are_all_fast_and_bad_flags_are_refused()
    {
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("paths");
        Assert.True(exit == 0, stderr);
        Assert.Contains("Every op takes its fast path.", stdout, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("paths", "--set", "HeadDim=96");
        Assert.NotEqual(0, exit);
        Assert.Contains("HeadDim", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("paths", "--sweep", "--set", "Depth=4");
        Assert.NotEqual(0, exit);
        Assert.Contains("--sweep takes each configuration's own knobs", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("paths", "--configs", "nowhere.txt");
        Assert.NotEqual(0, exit);
        Assert.Contains("give it with --sweep", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("paths", "--device-batch", "2000000");
        Assert.NotEqual(0, exit);
        Assert.Contains("tokens a micro-batch", stderr, StringComparison.Ordinal);

        (exit, stdout, stderr) = DoctorCommandTests.RunCli("paths", "--depth", "4", "--set", "ValueEmbeds=none");
        Assert.True(exit == 0, stderr);
        Assert.Contains("depth 4", stdout, StringComparison.Ordinal);
        Assert.Contains("none (no layer has value embeddings)", stdout, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("paths", "--compute", "0");
        Assert.NotEqual(0, exit);
        Assert.Contains("--compute", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_sweep_table_has_a_row_a_configuration_with_its_ops_off_the_fast_path()
    {
        var configs = new[]
        {
            SweepConfig.Parse("baseline: @128"),
            SweepConfig.Parse("swiglu: Activation=swiglu"),
            SweepConfig.Parse("wide-kv: AspectRatio=256 HeadDim=64 @64"),
            SweepConfig.Parse("broken: HeadDim=96"),
        };
        var lines = PathsCommand.SweepTable(configs, 9).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.StartsWith('|')).ToArray();
        Assert.Equal(2 + configs.Length, lines.Length);
        int columns = lines[0].Count(ch => ch == '|');
        Assert.All(lines, l => Assert.Equal(columns, l.Count(ch => ch == '|')));
        Assert.EndsWith("| none |", lines[2], StringComparison.Ordinal);
        Assert.Contains("MLP: the fused epilogues compute relu² and GELU, not swiglu", lines[3], StringComparison.Ordinal);
        Assert.Contains("value gate backward: kv rows of 2048 features", lines[4], StringComparison.Ordinal);
        Assert.Contains("refused:", lines[5], StringComparison.Ordinal);
        Assert.Contains("HeadDim", lines[5], StringComparison.Ordinal);
    }

    [Fact]
    public void A_sweep_row_that_ran_lists_its_ops_off_the_fast_path_in_its_last_cell()
    {
        var config = SweepConfig.Parse("swiglu: Activation=swiglu");
        var shape = config.Knobs(2048).Shape(8192, 2048);
        var paths = KernelPaths.For(9, shape, config.DeviceBatch);
        var row = new SweepCommand.Row(config, shape, null, null, 120.0, 30000, paths, null);
        var lines = SweepCommand.Table([row]).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(lines[0].Count(ch => ch == '|'), lines[2].Count(ch => ch == '|'));
        Assert.Contains("swiglu 1408 cuBLAS", lines[2], StringComparison.Ordinal);
        Assert.EndsWith($"| {paths.Fallbacks()} |", lines[2].TrimEnd(), StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_prints_one_line_an_op_with_why_where_it_is_off_the_fast_path()
    {
        var swiglu = ModelShape.FromKnobs(8, 64, "SSSL", 8192, 2048, activation: Activation.SwiGlu);
        var paths = KernelPaths.For(9, swiglu, 128);
        var lines = ProfileCommand.PathLines(paths).ToList();
        Assert.Equal(paths.Rows().Count, lines.Count);
        Assert.Single(lines, l => l.Contains("(off the fast path:", StringComparison.Ordinal));
        Assert.StartsWith("MLP: cuBLAS GEMMs", lines.Single(l => l.Contains("(off the fast path:", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    [Fact]
    public void Train_names_the_ops_off_the_fast_path_at_start_up_and_says_nothing_for_the_baseline()
    {
        var baseline = ModelShape.FromKnobs(8, 64, "SSSL", 8192, 2048);
        Assert.Null(GpuTrainer.OffFastPathLine(KernelPaths.For(9, baseline, 128)));
        var gelu64 = ModelShape.FromKnobs(8, 64, "SSSL", 8192, 2048, 64, 2, 4.0, Activation.Gelu);
        string? line = GpuTrainer.OffFastPathLine(KernelPaths.For(9, gelu64, 128));
        Assert.NotNull(line);
        Assert.Contains("q, k projections: k: the GEMM needs a projection width", line, StringComparison.Ordinal);
        Assert.Contains("autoresearch paths", line, StringComparison.Ordinal);
    }
}

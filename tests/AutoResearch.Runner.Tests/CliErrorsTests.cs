using System.CommandLine;
using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>The command line's boundary: every error is one `autoresearch: error: ...` message on stderr and a non-zero exit.</summary>
public class CliErrorsTests
{
    /// <summary>Runs a command line through <see cref="CliErrors.Invoke(RootCommand, string[], TextWriter, TextWriter, CancellationToken)"/>, capturing both streams.</summary>
    internal static (int ExitCode, string Output, string Error) Invoke(RootCommand root, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliErrors.Invoke(root, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void A_parse_error_from_the_cli_starts_with_the_prefix_and_prints_no_help()
    {
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--bogus");
        Assert.NotEqual(0, exit);
        Assert.StartsWith("autoresearch: error: ", stderr, StringComparison.Ordinal);
        Assert.Contains("--bogus", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Usage:", stdout + stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("train", "--bogus")]
    [InlineData("train", "--depth", "many")]
    [InlineData("results", "add", "--status", "maybe", "--description", "x")]
    [InlineData("no-such-command")]
    // Options with a check of their own: a value that is not a number is the parser's error, not an exception out of the check.
    [InlineData("prepare", "--shards", "all")]
    [InlineData("prepare", "--vocab-size", "big")]
    [InlineData("prepare", "--val-fraction", "some")]
    [InlineData("profile", "--gemm-candidates", "auto")]
    [InlineData("profile", "--steps", "few")]
    [InlineData("parity", "--checkpoint", "a", "--tokens", "b", "--out", "c", "--start-step", "next")]
    [InlineData("tokenize", "--decode", "--stats")]
    public void A_parse_error_is_one_prefixed_message_without_the_help(params string[] args)
    {
        var (code, output, error) = Invoke(CommandLineRoot.Create(), args);

        Assert.Equal(CliErrors.UsageExitCode, code);
        Assert.StartsWith("autoresearch: error: ", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Usage:", error + output, StringComparison.Ordinal);
        Assert.DoesNotContain("Options:", error + output, StringComparison.Ordinal);
        Assert.Contains("--help", error, StringComparison.Ordinal);
        Assert.True(error.Trim().Split('\n').Length <= 2, error);
    }

    [Fact]
    public void An_argument_error_is_one_line_without_the_parameter_name_dotnet_appends()
    {
        var (code, _, error) = Invoke(CommandLineRoot.Create(), "train", "--device", "cpu", "--set", "Depth=0");
        Assert.Equal(CliErrors.FailureExitCode, code);
        Assert.Equal("autoresearch: error: Hyperparameter Depth = 0 is invalid: expected 1..64 layers.", error.Trim());

        var root = new RootCommand("test") { CliErrors.VerboseOption };
        var range = new Command("range");
        range.SetAction(int (_) => throw new ArgumentOutOfRangeException("vocabSize", 100, "the vocabulary must hold the 256 bytes"));
        var said = new Command("said");
        said.SetAction(int (_) => throw new ArgumentOutOfRangeException("ids", 9000, "token id 9000 is outside the vocabulary"));
        root.Subcommands.Add(range);
        root.Subcommands.Add(said);
        (code, _, error) = Invoke(root, "range");
        Assert.Equal(CliErrors.FailureExitCode, code);
        Assert.Equal("autoresearch: error: the vocabulary must hold the 256 bytes (got 100)", error.Trim());
        (_, _, error) = Invoke(root, "said");
        Assert.Equal("autoresearch: error: token id 9000 is outside the vocabulary", error.Trim());
    }

    [Fact]
    public void A_missing_native_library_is_one_paragraph_not_the_list_of_places_tried()
    {
        var attempts = Enumerable.Range(0, 20).Select(i => $"/folder{i}/libcuda.so.1: no such file").ToList();
        var root = new RootCommand("test") { CliErrors.VerboseOption };
        var gpu = new Command("gpu");
        gpu.SetAction(int (_) => throw new NativeLibraryNotFoundException("CUDA driver (libcuda)", attempts, null, "Install the NVIDIA driver."));
        root.Subcommands.Add(gpu);

        var (code, _, error) = Invoke(root, "gpu");

        Assert.Equal(CliErrors.FailureExitCode, code);
        Assert.Single(error.Trim().Split('\n'));
        Assert.StartsWith("autoresearch: error: CUDA driver (libcuda) could not be loaded", error, StringComparison.Ordinal);
        Assert.Contains("20 places", error, StringComparison.Ordinal);
        Assert.Contains("--verbose", error, StringComparison.Ordinal);
        Assert.Contains("--device cpu", error, StringComparison.Ordinal);

        // --verbose still lists them.
        (_, _, error) = Invoke(root, "gpu", "--verbose");
        Assert.Contains("/folder19/libcuda.so.1", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_without_a_gpu_says_so_in_one_line()
    {
        Assert.SkipWhen(AutoResearch.Testing.GpuProbe.Available, "a GPU is present: this test checks the machine without one");
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("profile");
        Assert.NotEqual(0, exit);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.StartsWith("autoresearch: error: ", stderr, StringComparison.Ordinal);
        Assert.Equal("", stdout);
    }
}

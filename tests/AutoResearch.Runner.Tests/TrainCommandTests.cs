using System.CommandLine;
using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class TrainCommandTests
{
    private static string Help(Command command)
    {
        var root = new RootCommand("test") { command };
        var output = new StringWriter();
        int code = root.Parse([command.Name, "--help"]).Invoke(new InvocationConfiguration { Output = output, EnableDefaultExceptionHandler = false });
        Assert.Equal(0, code);
        return output.ToString();
    }

    [Fact]
    public void Train_and_sample_help_list_every_option()
    {
        string train = Help(TrainCommand.Create());
        foreach (string option in (string[])["--device", "--time-budget", "--depth", "--device-batch", "--total-batch", "--eval-tokens", "--seq-len", "--cache", "--save"])
            Assert.Contains(option, train, StringComparison.Ordinal);
        Assert.Contains("2 with --device cpu", train, StringComparison.Ordinal);
        Assert.DoesNotContain("[default: 8]", train, StringComparison.Ordinal); // the default depends on --device
        string sample = Help(SampleCommand.Create());
        foreach (string option in (string[])["--checkpoint", "--prompt", "--tokens", "--temperature", "--top-k", "--seed", "--seq-len", "--window-pattern", "--cache"])
            Assert.Contains(option, sample, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_help_says_how_to_set_a_knob_and_where_they_are_listed()
    {
        string train = Help(TrainCommand.Create());
        Assert.Contains("--set", train, StringComparison.Ordinal);
        Assert.Contains("Name=Value", train, StringComparison.Ordinal);
        Assert.Contains("--set Depth=12", train, StringComparison.Ordinal);
        Assert.Contains("autoresearch knobs", train, StringComparison.Ordinal);
        foreach (var command in new[] { ProfileCommand.Create(), ParityCommand.Create() })
            Assert.Contains("--set", Help(command), StringComparison.Ordinal);
    }

    [Fact]
    public void Out_of_memory_names_the_allocation_the_free_memory_and_a_smaller_device_batch()
    {
        var e = new DeviceOutOfMemoryException("activations", 3L << 30, 1L << 30, 80L << 30);
        string message = TrainCommand.OutOfMemoryMessage(e, 128);
        Assert.Contains("'activations'", message, StringComparison.Ordinal);
        Assert.Contains("1024.0 MiB free", message, StringComparison.Ordinal);
        Assert.Contains("--device-batch 64", message, StringComparison.Ordinal);
        Assert.Contains("--depth", TrainCommand.OutOfMemoryMessage(e, 1), StringComparison.Ordinal);
        Assert.Contains("Recompute=mlp", message, StringComparison.Ordinal);
        Assert.DoesNotContain("Recompute", TrainCommand.OutOfMemoryMessage(e, 128, recomputesMlp: true), StringComparison.Ordinal);
    }

    [Fact]
    public void Seq_len_on_the_gpu_is_refused_before_anything_loads()
    {
        var (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--seq-len", "64", "--cache", Path.Combine(Path.GetTempPath(), "autoresearch-none"));
        Assert.NotEqual(0, exit);
        Assert.Contains("--seq-len is for --device cpu only", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--time-budget", "-5")]
    [InlineData("--time-budget", "0")]
    [InlineData("--time-budget", "Infinity")]
    [InlineData("--time-budget", "NaN")]
    [InlineData("--device-batch", "0")]
    [InlineData("--device-batch", "40000000")] // × T 64 is more tokens a step than TotalBatchSize holds
    [InlineData("--total-batch", "-1")]
    [InlineData("--eval-tokens", "0")]
    [InlineData("--eval-tokens", "-4096")]
    [InlineData("--seq-len", "0")]
    [InlineData("--depth", "0")]
    public void Nonsense_train_options_are_refused_naming_the_flag_before_anything_loads(string flag, string value)
    {
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", flag, value, "--cache", Path.Combine(Path.GetTempPath(), "autoresearch-none"));
        Assert.NotEqual(0, exit);
        Assert.StartsWith($"autoresearch: error: {flag} ", stderr, StringComparison.Ordinal);
        Assert.Contains(value, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", stderr, StringComparison.Ordinal); // no internal names (request.BudgetSeconds, TotalBatchSize)
        Assert.DoesNotContain("Hyperparameter", stderr, StringComparison.Ordinal);
        Assert.Equal("", stdout);
    }
}

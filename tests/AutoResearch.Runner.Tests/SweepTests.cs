using System.CommandLine;
using AutoResearch.Runner.Sweep;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>The sweep's configurations and its command line (the GPU stages run on a device only).</summary>
public class SweepTests
{
    private static int Invoke(params string[] args)
    {
        var root = new RootCommand("test");
        root.Subcommands.Add(SweepCommand.Create());
        return root.Parse(args).Invoke(new InvocationConfiguration { Output = new StringWriter(), Error = new StringWriter(), EnableDefaultExceptionHandler = false });
    }

    [Fact]
    public void The_built_in_sweep_spans_the_knobs_and_every_configuration_builds()
    {
        var configs = SweepConfig.Defaults;
        Assert.True(configs.Count >= 12);
        Assert.Equal(configs.Count, configs.Select(c => c.Name).Distinct().Count());
        var shapes = configs.Select(c => c.Knobs(2048).Shape(8192, 2048)).ToArray();
        Assert.Contains(shapes, s => s.HeadDim == 64);
        Assert.Contains(shapes, s => s.KvHeads < s.Heads);
        Assert.Contains(shapes, s => s.ModelDim == 2048);
        Assert.Contains(shapes, s => s.Depth == 2);
        Assert.Contains(shapes, s => s.Depth == 32);
        foreach (var activation in Enum.GetValues<Model.Activation>())
            Assert.Contains(shapes, s => s.Activation == activation);
        Assert.Contains(shapes, s => s.Windows.All(w => w == 2048));
        Assert.Contains(shapes, s => s.Windows[..^1].All(w => w == 256));
        Assert.Contains(shapes, s => s.MlpHidden == 2 * s.ModelDim);
        // One micro-batch a step, so a short train is quick.
        Assert.All(configs, c => Assert.Equal(c.DeviceBatch * 2048, c.Knobs(2048).TotalBatchSize));
    }

    [Fact]
    public void A_configuration_line_parses_its_knobs_and_rows()
    {
        var c = SweepConfig.Parse("wide: AspectRatio=256 KvHeads=4 @32");
        Assert.Equal("wide", c.Name);
        Assert.Equal(["AspectRatio=256", "KvHeads=4"], c.Sets);
        Assert.Equal(32, c.DeviceBatch);
        Assert.Equal(1024, c.Knobs(2048).ModelDim / 2); // width 2048
        Assert.Throws<FormatException>(() => SweepConfig.Parse("no colon here"));
        Assert.Throws<FormatException>(() => SweepConfig.Parse("bad: Depth=4 @0"));
    }

    [Fact]
    public void Unknown_names_and_bad_knobs_are_refused_before_any_gpu_work()
    {
        var e = Assert.Throws<ArgumentException>(() => Invoke("sweep", "--only", "nope"));
        Assert.Contains("no configuration named nope", e.Message);
        Assert.Contains("baseline", e.Message);
        using var folder = new TempFolder();
        string file = Path.Combine(folder.Path, "configs.txt");
        File.WriteAllText(file, "# a comment\nfine: Depth=4\nbroken: HeadDim=96\n");
        e = Assert.Throws<ArgumentException>(() => Invoke("sweep", "--configs", file));
        Assert.Contains("'broken'", e.Message);
        Assert.Contains("HeadDim", e.Message);
        e = Assert.Throws<ArgumentException>(() => Invoke("sweep", "--steps", "0"));
        Assert.Contains("--steps", e.Message);
    }

    [Fact]
    public void The_rows_of_a_line_come_from_at_rows_or_device_batch_size_and_total_batch_size_is_refused()
    {
        var c = SweepConfig.Parse("small: Depth=4 DeviceBatchSize=32");
        Assert.Equal(32, c.DeviceBatch);
        Assert.Equal(["Depth=4"], c.Sets);
        Assert.Equal(32, c.Knobs(2048).DeviceBatchSize);
        Assert.Equal(16, SweepConfig.Parse("same: devicebatchsize=16 @16").DeviceBatch);
        var both = Assert.Throws<FormatException>(() => SweepConfig.Parse("both: DeviceBatchSize=32 @64"));
        Assert.Contains("64 rows", both.Message, StringComparison.Ordinal);
        var total = Assert.Throws<FormatException>(() => SweepConfig.Parse("total: TotalBatchSize=65536"));
        Assert.Contains("'TotalBatchSize=65536' cannot be swept", total.Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => SweepConfig.Parse("bad: DeviceBatchSize=many"));
        var huge = Assert.Throws<ArgumentException>(() => SweepConfig.Parse("huge: @2000000").Knobs(2048));
        Assert.Contains("use fewer @rows", huge.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_short_window_beyond_the_parity_t_and_an_out_path_that_cannot_be_written_are_refused_before_any_gpu_work()
    {
        using var folder = new TempFolder();
        string file = Path.Combine(folder.Path, "configs.txt");
        File.WriteAllText(file, "short: WindowPattern=S ShortWindow=512\n");
        var e = Assert.Throws<ArgumentException>(() => Invoke("sweep", "--configs", file, "--parity-seq-len", "256"));
        Assert.Contains("'short'", e.Message, StringComparison.Ordinal);
        Assert.Contains("ShortWindow = 512", e.Message, StringComparison.Ordinal);

        var missing = Path.Combine(folder.Path, "no such folder", "sweep.md");
        var io = Assert.Throws<DirectoryNotFoundException>(() => Invoke("sweep", "--only", "baseline", "--out", missing));
        Assert.Contains("--out", io.Message, StringComparison.Ordinal);
        var dir = Assert.Throws<ArgumentException>(() => Invoke("sweep", "--only", "baseline", "--out", folder.Path));
        Assert.Contains("is a folder", dir.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_gpu_the_sweep_stops_at_once_with_one_paragraph()
    {
        Assert.SkipWhen(AutoResearch.Testing.GpuProbe.Available, "a GPU is present: this test checks the machine without one");
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("sweep");
        Assert.Equal(CliErrors.FailureExitCode, exit);
        Assert.Equal($"autoresearch: error: {AutoResearch.Runner.Training.GpuTrainer.NoDeviceMessage}", stderr.Trim());
        Assert.DoesNotContain("==", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_configuration_is_one_table_row_whatever_its_message_holds()
    {
        var config = SweepConfig.Parse("broken: Depth=2");
        var shape = config.Knobs(2048).Shape(8192, 2048);
        var row = new SweepCommand.Row(config, shape, null, null, double.NaN, double.NaN, null, "first line\n  second | line\n");
        var lines = SweepCommand.Table([row]).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Contains("failed: first line second / line |", lines[2], StringComparison.Ordinal);
    }
}

using System.Buffers.Binary;
using AutoResearch.Runner.Experiment;
using Spectre.Console;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class AnalyzeTests
{
    private const string Sample =
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n" +
        "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n" +
        "b2c3d4e\t0.993200\t44.2\tkeep\tincrease matrix lr\n" +
        "c3d4e5f\t1.005000\t44.0\tdiscard\tGeLU activation\n" +
        "d4e5f6a\t0.000000\t0.0\tcrash\tdouble width (OOM)\n" +
        "e5f6a7b\t0.990100\t44.1\tkeep\twarmdown 0.6\n" +
        "f6a7b8c\t0.991000\t44.1\tdiscard\tadam beta2 0.99\n" +
        "a7b8c9d\t0.980300\t47.3\tkeep\tdepth 9\n";

    [Fact]
    public void Analysis_counts_statuses_and_orders_improvements()
    {
        var analysis = new ResultsAnalysis(ResultsFile.Parse(Sample, "sample"));
        Assert.Equal((4, 2, 1), (analysis.KeepCount, analysis.DiscardCount, analysis.CrashCount));
        Assert.Equal([1, 2, 5, 7], analysis.Kept.Select(k => k.Number));
        Assert.True(double.IsNaN(analysis.Kept[0].Improvement));
        var best = analysis.BiggestImprovements(2);
        Assert.Equal(["depth 9", "increase matrix lr"], best.Select(k => k.Row.Description));
        Assert.Equal(0.0098, best[0].Improvement, 9);
        Assert.Equal(0.0047, best[1].Improvement, 9);
    }

    [Fact]
    public void Analyze_prints_tables_and_writes_a_png_of_the_requested_size()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        File.WriteAllText(results, Sample);
        string chart = folder.File("progress.png");
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });

        AnalyzeCommand.Run(results, chart, console);

        string text = output.ToString();
        Assert.Contains("warmdown 0.6", text, StringComparison.Ordinal);
        Assert.Contains("-0.009800", text, StringComparison.Ordinal);
        byte[] png = File.ReadAllBytes(chart);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.Equal(ProgressChart.DefaultWidth, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.Equal(ProgressChart.DefaultHeight, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        Assert.Equal(ProgressChart.DefaultWidth, bitmap.Width);
        Assert.Equal(ProgressChart.DefaultHeight, bitmap.Height);
        // Something green was drawn (the kept points): count strongly green pixels.
        int green = 0;
        for (int y = 0; y < bitmap.Height; y += 2)
            for (int x = 0; x < bitmap.Width; x += 2)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Green > 100 && c.Red < 60 && c.Blue < 60)
                    green++;
            }
        Assert.True(green > 20, $"only {green} green pixels");
    }

    [Fact]
    public void Analyze_of_a_missing_file_names_it()
    {
        using var folder = new TempFolder();
        var e = Assert.Throws<FileNotFoundException>(() => AnalyzeCommand.Run(folder.File("none.tsv"), folder.File("p.png"), AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(TextWriter.Null) })));
        Assert.Contains("none.tsv", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_chart_path_in_a_missing_folder_is_refused_before_any_table_is_printed()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        File.WriteAllText(results, "commit\tval_bpb\tmemory_gb\tstatus\tdescription\na1b2c3d\t0.99\t44.0\tkeep\tbaseline\n");
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        string chart = Path.Combine(folder.Path, "no-such-folder", "p.png");

        var e = Assert.Throws<DirectoryNotFoundException>(() => AnalyzeCommand.Run(results, chart, console));

        Assert.Contains("--out", e.Message, StringComparison.Ordinal);
        Assert.Contains("no-such-folder", e.Message, StringComparison.Ordinal);
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public void Only_crashes_still_draw_a_chart()
    {
        var analysis = new ResultsAnalysis(ResultsFile.Parse("commit\tval_bpb\tmemory_gb\tstatus\tdescription\na\t0.0\t0.0\tcrash\tx\n", "s"));
        byte[] png = ProgressChart.RenderPng(analysis, 400, 300);
        Assert.Equal(400, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
    }

    [Fact]
    public void Writing_the_chart_or_the_table_to_a_folder_names_it_and_asks_for_a_file()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        File.WriteAllText(results, Sample);

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("analyze", results, "--out", folder.Path);
        Assert.NotEqual(0, exit);
        Assert.Contains($"--out '{folder.Path}' is a folder", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Experiments", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Is a directory", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("results", "add", "--status", "crash", "--description", "x", "--file", folder.Path, "--commit", "abc1234");
        Assert.NotEqual(0, exit);
        Assert.Contains($"{folder.Path} is a folder", stderr, StringComparison.Ordinal);
    }

    private static string AnalyzeText(string table)
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        File.WriteAllText(results, table);
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("analyze", results, "--out", folder.File("progress.png"));
        Assert.True(exit == 0, stderr);
        return stdout;
    }

    [Fact]
    public void Analyze_signs_each_change_in_val_bpb_as_new_minus_old()
    {
        string text = AnalyzeText(Sample);

        // 0.997900 → 0.993200 is a decrease (better): shown as −0.004700, never +0.004700.
        Assert.Contains("-0.004700", text, StringComparison.Ordinal);
        Assert.Contains("-0.009800", text, StringComparison.Ordinal);
        Assert.DoesNotContain("+0.004700", text, StringComparison.Ordinal);
        Assert.DoesNotContain("+0.009800", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Analyze_lists_the_crash_rows()
    {
        string text = AnalyzeText(Sample + "b8c9d0e\t0.000000\t0.0\tcrash\tkilled after 10 minutes\n");

        Assert.Contains("double width (OOM)", text, StringComparison.Ordinal);
        Assert.Contains("killed after 10 minutes", text, StringComparison.Ordinal);
        Assert.Contains("d4e5f6a", text, StringComparison.Ordinal);
        Assert.Contains("b8c9d0e", text, StringComparison.Ordinal);
    }
}

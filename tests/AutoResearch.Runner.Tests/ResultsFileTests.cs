using AutoResearch.Runner.Experiment;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class ResultsFileTests
{
    private const string Header = "commit\tval_bpb\tmemory_gb\tstatus\tdescription";

    private static string WriteLog(TempFolder folder, double valBpb, double peakVramMb)
    {
        string path = folder.File("run.log");
        File.WriteAllText(path, "step 00953 (100.0%) | loss: 3.1\n" +
            new RunSummary(valBpb, 300.2, 326.0, peakVramMb, 39.8, 499.6, 953, 50.3, 8).Format());
        return path;
    }

    [Fact]
    public void First_keep_row_creates_the_header_and_takes_values_from_the_log()
    {
        using var folder = new TempFolder();
        string log = WriteLog(folder, 0.9979, 45060.2);
        string results = folder.File("results.tsv");
        ResultsCommand.AddRow(ExperimentStatus.Keep, "baseline", log, results, "a1b2c3d");
        // memory_gb = 45060.2 / 1024 = 44.004... -> 44.0
        Assert.Equal(Header + "\na1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n", File.ReadAllText(results));
    }

    [Fact]
    public void Discard_and_crash_rows_append_in_order()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        ResultsCommand.AddRow(ExperimentStatus.Keep, "baseline", WriteLog(folder, 0.9979, 45060.2), results, "a1b2c3d");
        ResultsCommand.AddRow(ExperimentStatus.Discard, "GeLU instead of relu^2", WriteLog(folder, 1.0051, 46182.4), results, "b2c3d4e");
        // a crashed run: the log has a traceback and no summary
        string crashLog = folder.File("crash.log");
        File.WriteAllText(crashLog, "step 00003 (0.0%) | loss: 9.01\nCUDA_ERROR_OUT_OF_MEMORY\n");
        ResultsCommand.AddRow(ExperimentStatus.Crash, "double width (OOM)", crashLog, results, "c3d4e5f");
        Assert.Equal(
            Header + "\n" +
            "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n" +
            "b2c3d4e\t1.005100\t45.1\tdiscard\tGeLU instead of relu^2\n" +
            "c3d4e5f\t0.000000\t0.0\tcrash\tdouble width (OOM)\n",
            File.ReadAllText(results));
        var rows = ResultsFile.Read(results);
        Assert.Equal(3, rows.Count);
        Assert.Equal(ExperimentStatus.Discard, rows[1].Status);
        Assert.Equal(1.0051, rows[1].ValBpb, 12);
    }

    [Fact]
    public void Crash_status_ignores_a_missing_log_and_any_summary()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        ResultsCommand.AddRow(ExperimentStatus.Crash, "killed after 10 minutes", folder.File("absent.log"), results, "d4e5f6a");
        ResultsCommand.AddRow(ExperimentStatus.Crash, "crashed in eval", WriteLog(folder, 0.99, 40000), results, "e5f6a7b");
        var rows = ResultsFile.Read(results);
        Assert.All(rows, r => Assert.Equal((0.0, 0.0), (r.ValBpb, r.MemoryGb)));
    }

    [Fact]
    public void Keep_with_a_log_without_summary_is_refused_and_the_file_is_untouched()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        string before = Header + "\na1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n";
        File.WriteAllText(results, before);
        string log = folder.File("run.log");
        File.WriteAllText(log, "Traceback\n");
        var e = Assert.Throws<ArgumentException>(() => ResultsCommand.AddRow(ExperimentStatus.Keep, "x", log, results, "b2c3d4e"));
        Assert.Contains("--status crash", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllText(results));
    }

    [Theory]
    [InlineData("has\ta tab")]
    [InlineData("two\nlines")]
    [InlineData("carriage\rreturn")]
    [InlineData("  ")]
    public void Bad_descriptions_are_refused(string description)
    {
        using var folder = new TempFolder();
        var e = Assert.Throws<ArgumentException>(() =>
            ResultsCommand.AddRow(ExperimentStatus.Crash, description, "run.log", folder.File("results.tsv"), "a1b2c3d"));
        Assert.Contains("--description", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(folder.File("results.tsv")));
    }

    [Fact]
    public void Missing_log_for_keep_names_the_file()
    {
        using var folder = new TempFolder();
        var e = Assert.Throws<FileNotFoundException>(() =>
            ResultsCommand.AddRow(ExperimentStatus.Keep, "x", folder.File("nope.log"), folder.File("results.tsv"), "a1b2c3d"));
        Assert.Contains("nope.log", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_status_is_refused() =>
        Assert.Contains("keep, discard or crash", Assert.Throws<ArgumentException>(() => ResultRow.ParseStatus("maybe")).Message, StringComparison.Ordinal);

    [Fact]
    public void Appending_to_a_file_that_is_not_a_results_table_fails_and_leaves_it_intact()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        File.WriteAllText(results, "something else entirely\n");
        Assert.Throws<FormatException>(() => ResultsCommand.AddRow(ExperimentStatus.Crash, "x", "run.log", results, "a1b2c3d"));
        Assert.Equal("something else entirely\n", File.ReadAllText(results));
    }

    [Fact]
    public void A_failing_write_leaves_the_old_file_and_no_temporary_behind()
    {
        using var folder = new TempFolder();
        string path = folder.File("results.tsv");
        File.WriteAllText(path, "old content\n");
        Assert.Throws<IOException>(() => AtomicFile.WriteText(path, writer =>
        {
            writer.Write(new string('x', 100_000)); // partly flushed before the failure
            writer.Flush();
            throw new IOException("disk full (simulated)");
        }));
        Assert.Equal("old content\n", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void A_folder_that_takes_no_new_file_is_named_with_the_file_asked_for_not_the_temporary_one()
    {
        // /proc exists but no file can be created in it, whoever runs the test (root too, unlike a read-only folder).
        Assert.SkipUnless(Directory.Exists("/proc/self"), "needs Linux's /proc");
        var error = Assert.Throws<IOException>(() => AtomicFile.WriteText("/proc/progress.png", writer => writer.Write("x")));
        Assert.Contains("/proc/progress.png", error.Message);
        Assert.DoesNotContain(".tmp", error.Message);
        Assert.False(File.Exists("/proc/progress.png"));
    }

    [Fact]
    public void A_file_without_trailing_newline_gets_one_before_the_new_row()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        File.WriteAllText(results, Header + "\na1b2c3d\t0.997900\t44.0\tkeep\tbaseline");
        ResultsCommand.AddRow(ExperimentStatus.Crash, "oom", "run.log", results, "b2c3d4e");
        Assert.Equal(2, ResultsFile.Read(results).Count);
    }

    [Fact]
    public async Task Twelve_concurrent_results_add_keep_every_row()
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");

        var runs = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => Task.Run(() => DoctorCommandTests.RunCli("results", "add", "--status", "crash",
            "--description", $"run {i}", "--file", results, "--commit", $"abc{i:D4}"), TestContext.Current.CancellationToken)));

        Assert.All(runs, r => Assert.True(r.ExitCode == 0, r.Stderr));
        var rows = ResultsFile.Read(results);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => $"run {i}").Order(StringComparer.Ordinal), rows.Select(r => r.Description).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("NaN\t44.0\tkeep", "val_bpb is 'NaN'")]
    [InlineData("Infinity\t44.0\tdiscard", "val_bpb is 'Infinity'")]
    [InlineData("-0.9\t44.0\tkeep", "val_bpb is '-0.9'")]
    [InlineData("0.000000\t0.0\tkeep", "val_bpb is '0.000000'")]
    [InlineData("0.99\tNaN\tkeep", "memory_gb is 'NaN'")]
    [InlineData("0.0\t-1\tcrash", "memory_gb is '-1'")]
    public void A_row_whose_numbers_are_not_a_result_is_refused_naming_the_line_and_column(string numbersAndStatus, string message)
    {
        string text = Header + "\na1b2c3d\t0.997900\t44.0\tkeep\tbaseline\nb2c3d4e\t" + numbersAndStatus + "\tedited by hand\n";

        var e = Assert.Throws<FormatException>(() => ResultsFile.Parse(text, "results.tsv"));

        Assert.StartsWith("results.tsv: line 3", e.Message, StringComparison.Ordinal);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        // A crash row's val_bpb is no result and is not checked.
        Assert.Single(ResultsFile.Parse(Header + "\na1b2c3d\tNaN\t0.0\tcrash\toom\n", "results.tsv"));
    }

    [Theory]
    [InlineData("nan")]
    [InlineData("NaN")]
    [InlineData("-0.5")]
    [InlineData("Infinity")]
    [InlineData("0.000000")]
    public void A_summary_whose_val_bpb_is_not_a_result_is_refused_and_the_file_is_untouched(string valBpb)
    {
        using var folder = new TempFolder();
        string results = folder.File("results.tsv");
        string before = Header + "\na1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n";
        File.WriteAllText(results, before);
        string log = folder.File("run.log");
        File.WriteAllText(log, new RunSummary(0.99, 300.2, 326.0, 45000, 39.8, 499.6, 953, 50.3, 8).Format().Replace("0.990000", valBpb, StringComparison.Ordinal));

        var (exit, _, stderr) = DoctorCommandTests.RunCli("results", "add", "--status", "keep", "--description", "diverged", "--log", log, "--file", results, "--commit", "b2c3d4e");

        Assert.NotEqual(0, exit);
        Assert.Contains("val_bpb", stderr, StringComparison.Ordinal);
        Assert.Contains(log, stderr, StringComparison.Ordinal);
        Assert.Contains("--status crash", stderr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllText(results));
    }
}

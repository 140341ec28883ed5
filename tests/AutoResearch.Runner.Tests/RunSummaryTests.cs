using AutoResearch.Runner.Experiment;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class RunSummaryTests
{
    private static readonly RunSummary Reference = new(0.9979, 300.1, 325.9, 45060.2, 39.8, 499.6, 953, 50.3, 8);

    [Fact]
    public void Format_matches_the_spec_block_character_for_character()
    {
        // The block as written in SPEC §9.
        const string expected =
            "---\n" +
            "val_bpb:          0.997900\n" +
            "training_seconds: 300.1\n" +
            "total_seconds:    325.9\n" +
            "peak_vram_mb:     45060.2\n" +
            "mfu_percent:      39.80\n" +
            "total_tokens_M:   499.6\n" +
            "num_steps:        953\n" +
            "num_params_M:     50.3\n" +
            "depth:            8\n";
        Assert.Equal(expected, Reference.Format());
    }

    [Fact]
    public void Parse_round_trips_random_summaries_inside_a_noisy_log()
    {
        int seed = 7;
        var random = new Random(seed);
        for (int trial = 0; trial < 50; trial++)
        {
            var summary = new RunSummary(
                Math.Round(random.NextDouble() * 2, 6), Math.Round(random.NextDouble() * 400, 1), Math.Round(random.NextDouble() * 500, 1),
                Math.Round(random.NextDouble() * 80_000, 1), Math.Round(random.NextDouble() * 60, 2), Math.Round(random.NextDouble() * 900, 1),
                random.Next(0, 5000), Math.Round(random.NextDouble() * 200, 1), random.Next(1, 40));
            string log = "loading data\n---\nnot a summary\n\rstep 00001 (0.0%) | loss: 9.0\rstep 00002 (0.1%) | loss: 8.9    \n" + summary.Format();
            Assert.True(summary == RunSummary.ParseLog(log), $"seed {seed} trial {trial}: {summary}");
        }
    }

    [Fact]
    public void A_log_without_summary_parses_as_null()
    {
        Assert.Null(RunSummary.ParseLog("step 00010 (3.0%) | loss: 5.1\nTraceback: CUDA out of memory\n"));
        Assert.Null(RunSummary.ParseLog(""));
        Assert.Null(RunSummary.ParseLog("FAIL\n---\n"));
    }

    [Fact]
    public void A_summary_missing_a_key_is_an_error_naming_the_key_and_file()
    {
        string log = Reference.Format().Replace("num_steps:        953\n", "", StringComparison.Ordinal);
        var e = Assert.Throws<FormatException>(() => RunSummary.ParseLog(log, "run.log"));
        Assert.Contains("run.log", e.Message, StringComparison.Ordinal);
        Assert.Contains("num_steps", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_summary_with_a_bad_value_is_an_error()
    {
        string log = Reference.Format().Replace("0.997900", "nan?", StringComparison.Ordinal);
        var e = Assert.Throws<FormatException>(() => RunSummary.ParseLog(log, "run.log"));
        Assert.Contains("val_bpb", e.Message, StringComparison.Ordinal);
    }
}

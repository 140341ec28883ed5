using AutoResearch.Runner.Experiment;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class TrainingClockTests
{
    [Fact]
    public void Steps_0_to_10_are_not_counted_and_later_steps_accumulate()
    {
        var clock = new TrainingClock(tokensPerStep: 1000, flopsPerToken: 1, budgetSeconds: 100);
        for (int step = 0; step <= 10; step++)
        {
            Assert.Equal(0, clock.Progress);
            Assert.False(clock.CompleteStep(50.0)); // huge warm-up steps still count nothing
        }
        Assert.Equal(0, clock.TrainingSeconds);
        Assert.Equal(11, clock.Step);
        Assert.False(clock.CompleteStep(30)); // step 11
        Assert.Equal(30, clock.TrainingSeconds, 12);
        Assert.Equal(0.3, clock.Progress, 12);
        Assert.Equal(70, clock.RemainingSeconds, 12);
        Assert.Equal(1, clock.CountedSteps);
    }

    [Fact]
    public void Stops_after_the_step_that_reaches_the_budget_and_progress_is_capped_at_one()
    {
        int seed = 1234;
        var random = new Random(seed);
        double budget = 5.0;
        var clock = new TrainingClock(1, 1, budget);
        double expectedCounted = 0;
        int steps = 0;
        bool stopped = false;
        while (!stopped)
        {
            double seconds = 0.05 + random.NextDouble() * 0.2;
            // progress is read before the step, from what was counted so far
            Assert.Equal(Math.Min(expectedCounted / budget, 1), clock.Progress, 12);
            stopped = clock.CompleteStep(seconds);
            if (steps > 10)
                expectedCounted += seconds;
            steps++;
            Assert.True(steps < 10_000, $"seed {seed}: never stopped");
            Assert.Equal(stopped, steps - 1 > 10 && expectedCounted >= budget);
        }
        Assert.True(expectedCounted >= budget && expectedCounted - budget < 0.25, $"seed {seed}");
        Assert.Equal(expectedCounted, clock.TrainingSeconds, 9);
        Assert.Equal(steps, clock.Step);
        Assert.Equal(steps - 11, clock.CountedSteps);
        Assert.Equal(0, clock.RemainingSeconds);
    }

    [Fact]
    public void A_tiny_budget_still_runs_the_eleven_warm_up_steps_and_one_counted_step()
    {
        var clock = new TrainingClock(1, 1, budgetSeconds: 1e-9);
        int steps = 0;
        while (!clock.CompleteStep(0.01))
            steps++;
        Assert.Equal(11, steps); // stopped after step index 11
        Assert.Equal(1, clock.Progress);
    }

    [Fact]
    public void Mfu_and_throughput_use_counted_steps_only()
    {
        const long tokens = 524_288;
        const double flopsPerToken = 3e8;
        var clock = new TrainingClock(tokens, flopsPerToken, budgetSeconds: 1000, peakFlopsPerSecond: 1e15);
        for (int i = 0; i < 11; i++)
            clock.CompleteStep(10); // slow warm-up must not drag MFU down
        for (int i = 0; i < 4; i++)
            clock.CompleteStep(0.5);
        // 4 steps × 524288 tokens × 3e8 FLOPs in 2 s = 3.145728e14 FLOP/s = 31.45728 % of 1e15
        Assert.Equal(31.45728, clock.MfuPercent, 9);
        Assert.Equal(31.45728, clock.StepMfuPercent(0.5), 9);
        Assert.Equal(1_048_576, clock.TokensPerSecond(0.5), 6);
        Assert.Equal(15 * 0.524288, clock.TotalTokensMillions, 12);
    }

    [Fact]
    public void Mfu_is_zero_before_any_counted_step() =>
        Assert.Equal(0, new TrainingClock(1, 1).MfuPercent);

    [Theory]
    [InlineData(524_288, 128, 2048, 2)]
    [InlineData(524_288, 64, 2048, 4)]
    [InlineData(262_144, 128, 2048, 1)]
    public void Gradient_accumulation_divides_total_batch(int total, int device, int t, int expected) =>
        Assert.Equal(expected, TrainingClock.GradientAccumulationSteps(total, device, t));

    [Fact]
    public void Gradient_accumulation_that_does_not_divide_names_the_values()
    {
        var e = Assert.Throws<ArgumentException>(() => TrainingClock.GradientAccumulationSteps(500_000, 128, 2048));
        Assert.Contains("500000", e.Message, StringComparison.Ordinal);
        Assert.Contains("262144", e.Message, StringComparison.Ordinal);
        Assert.Contains("DeviceBatchSize", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Default_hyperparameters_give_two_micro_steps() =>
        Assert.Equal(2, TrainingClock.GradientAccumulationSteps(Hyperparameters.Default.TotalBatchSize, Hyperparameters.Default.DeviceBatchSize));

    [Theory]
    [InlineData(double.NaN, true)]
    [InlineData(100.0001, true)]
    [InlineData(double.PositiveInfinity, true)]
    [InlineData(100.0, false)]
    [InlineData(3.2, false)]
    public void Fast_fail_on_nan_or_loss_above_100(double loss, bool fail) =>
        Assert.Equal(fail, TrainingClock.IsFastFail(loss));

    [Fact]
    public void Negative_or_nan_step_time_is_rejected()
    {
        var clock = new TrainingClock(1, 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.CompleteStep(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.CompleteStep(double.NaN));
    }

    [Fact]
    public void A_step_budget_runs_exactly_its_steps_with_progress_following_the_step()
    {
        var clock = new TrainingClock(1000, 1e6, budgetSeconds: 0.001) { StepBudget = 20 };
        var progress = new List<double>();
        bool stop = false;
        while (!stop)
        {
            progress.Add(clock.Progress);
            stop = clock.CompleteStep(1.0); // each step far over the time budget: the steps, not the clock, decide
        }
        Assert.Equal(20, clock.Step);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => i / 20.0), progress);
        Assert.Equal(9, clock.CountedSteps); // steps 11–19 are counted for the MFU
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainingClock(1000, 1e6) { StepBudget = 0 });
    }
}


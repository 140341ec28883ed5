using Xunit;

namespace AutoResearch.Optim.Tests;

public class TrainingScheduleTests
{
    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(0.5, 1.0)]   // the warm-down starts at 1 − 0.5
    [InlineData(0.75, 0.5)]  // halfway through the warm-down to 0
    [InlineData(1.0, 0.0)]
    public void Default_learning_rate_multiplier_is_flat_then_decays_linearly_to_zero(double progress, double expected)
        => Assert.Equal(expected, TrainingSchedule.LearningRateMultiplier(progress), 12);

    [Fact]
    public void Warm_up_ramps_linearly_and_final_fraction_is_reached_at_the_end()
    {
        Assert.Equal(0.5, TrainingSchedule.LearningRateMultiplier(0.05, warmupRatio: 0.1), 12);
        Assert.Equal(1.0, TrainingSchedule.LearningRateMultiplier(0.1, warmupRatio: 0.1), 12);
        Assert.Equal(0.1, TrainingSchedule.LearningRateMultiplier(1.0, warmdownRatio: 0.4, finalLrFraction: 0.1), 12);
        // 0.8 is half-way through a 0.4 warm-down from 1 to 0.1: 0.55.
        Assert.Equal(0.55, TrainingSchedule.LearningRateMultiplier(0.8, warmdownRatio: 0.4, finalLrFraction: 0.1), 12);
    }

    [Theory]
    [InlineData(0, 0.85)]
    [InlineData(150, 0.90)]
    [InlineData(300, 0.95)]
    [InlineData(5000, 0.95)]
    public void Muon_momentum_warms_up_over_300_steps(int step, double expected)
        => Assert.Equal(expected, TrainingSchedule.MuonMomentum(step), 12);

    [Fact]
    public void Muon_weight_decay_falls_linearly_with_progress()
    {
        Assert.Equal(0.2, TrainingSchedule.MuonWeightDecay(0), 12);
        Assert.Equal(0.05, TrainingSchedule.MuonWeightDecay(0.75), 12);
        Assert.Equal(0.0, TrainingSchedule.MuonWeightDecay(1), 12);
    }
}

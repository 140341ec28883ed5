using AutoResearch.Runner.Experiment;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class ScheduleAndHyperparameterTests
{
    [Fact]
    public void Defaults_match_the_spec_baseline()
    {
        var h = Hyperparameters.Default;
        Assert.Equal((8, 64, 128, "SSSL"), (h.Depth, h.AspectRatio, h.HeadDim, h.WindowPattern));
        Assert.Equal(524_288, h.TotalBatchSize);
        Assert.Equal(128, h.DeviceBatchSize);
        Assert.Equal((0.6, 0.004, 0.04, 0.5), (h.EmbeddingLr, h.UnembeddingLr, h.MatrixLr, h.ScalarLr));
        Assert.Equal((0.8, 0.95), (h.AdamBeta1, h.AdamBeta2));
        Assert.Equal((0.2, 0.0, 0.5, 0.0), (h.WeightDecay, h.WarmupRatio, h.WarmdownRatio, h.FinalLrFrac));
        Assert.Equal(512, h.ModelDim);
        Assert.Equal(4, h.NumHeads);
        Assert.Same(h, h.Validate());
    }

    [Fact]
    public void Constants_are_the_evaluation_contract()
    {
        Assert.Equal(2048, ExperimentConstants.MaxSeqLen);
        Assert.Equal(300, ExperimentConstants.TimeBudgetSeconds);
        Assert.Equal(20_971_520, ExperimentConstants.EvalTokens);
        Assert.Equal(8192, ExperimentConstants.VocabSize);
    }

    [Fact]
    public void Overrides_with_with_leave_the_default_unchanged_and_round_model_dim_up()
    {
        var deeper = Hyperparameters.Default with { Depth = 9, AspectRatio = 57 };
        Assert.Equal(640, deeper.ModelDim); // 513 rounded up to a multiple of 128
        Assert.Equal(5, deeper.NumHeads);
        Assert.Equal(8, Hyperparameters.Default.Depth);
    }

    [Fact]
    public void Invalid_knobs_are_named_in_the_error()
    {
        var e = Assert.Throws<ArgumentException>(() => (Hyperparameters.Default with { WindowPattern = "SSXL" }).Validate());
        Assert.Contains("WindowPattern", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => (Hyperparameters.Default with { WarmdownRatio = 1.5 }).Validate());
        Assert.Contains("WarmdownRatio", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The lr multiplier the training loop takes for these knobs.</summary>
    private static double Lrm(double progress, Hyperparameters h) => Optim.TrainingSchedule.LearningRateMultiplier(progress, h.WarmupRatio, h.WarmdownRatio, h.FinalLrFrac);

    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(0.49, 1.0)]
    [InlineData(0.5, 1.0)]
    [InlineData(0.75, 0.5)]
    [InlineData(0.9, 0.2)]
    [InlineData(1.0, 0.0)]
    public void Lr_multiplier_is_flat_then_linear_to_zero_over_the_warmdown(double progress, double expected) =>
        Assert.Equal(expected, Lrm(progress, Hyperparameters.Default), 12);

    [Fact]
    public void Lr_multiplier_with_warmup_and_final_fraction()
    {
        var h = Hyperparameters.Default with { WarmupRatio = 0.1, WarmdownRatio = 0.4, FinalLrFrac = 0.1 };
        Assert.Equal(0.5, Lrm(0.05, h), 12);
        Assert.Equal(1.0, Lrm(0.3, h), 12);
        // halfway through the warm-down: 0.5·1 + 0.5·0.1
        Assert.Equal(0.55, Lrm(0.8, h), 12);
        Assert.Equal(0.1, Lrm(1.0, h), 12);
        Assert.Equal(0.1, Lrm(1.0, h with { WarmdownRatio = 0 }), 12);
    }

    [Fact]
    public void Muon_momentum_ramps_over_300_steps_and_weight_decay_falls_with_progress()
    {
        Assert.Equal(0.85, Optim.TrainingSchedule.MuonMomentum(0), 12);
        Assert.Equal(0.90, Optim.TrainingSchedule.MuonMomentum(150), 12);
        Assert.Equal(0.95, Optim.TrainingSchedule.MuonMomentum(300), 12);
        Assert.Equal(0.95, Optim.TrainingSchedule.MuonMomentum(5000), 12);
        Assert.Equal(0.2, Optim.TrainingSchedule.MuonWeightDecay(0, Hyperparameters.Default.WeightDecay), 12);
        Assert.Equal(0.05, Optim.TrainingSchedule.MuonWeightDecay(0.75, Hyperparameters.Default.WeightDecay), 12);
    }

    [Fact]
    public void Debiased_ema_of_a_constant_is_that_constant_and_tracks_the_recurrence()
    {
        var ema = new DebiasedEma();
        Assert.True(double.IsNaN(ema.Value));
        Assert.Equal(4.0, ema.Update(4.0), 12); // debiasing removes the pull towards the zero start
        Assert.Equal(4.0, ema.Update(4.0), 12);
        // after 4 then 2: s = 0.9·0.1·4 + ... computed by hand: s1 = 0.4, s2 = 0.36 + 0.2 = 0.56, /(1 − 0.81) = 2.947368...
        var fresh = new DebiasedEma();
        fresh.Update(4.0);
        Assert.Equal(0.56 / 0.19, fresh.Update(2.0), 12);
    }

    [Fact]
    public void Progress_line_is_one_rewritten_line_with_every_field()
    {
        string line = ProgressLine.Format(step: 42, progress: 0.135, smoothedLoss: 4.1234564, lrMultiplier: 1, stepSeconds: 0.3124,
            tokensPerSecond: 1_680_410.4, mfuPercent: 39.84, epoch: 1, remainingSeconds: 259.4);
        Assert.StartsWith("\rstep 00042 (13.5%) | loss: 4.123456 | lrm: 1.00 | dt: 312ms | tok/sec: 1,680,410 | mfu: 39.8% | epoch: 1 | remaining: 259s", line, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", line, StringComparison.Ordinal);
        Assert.EndsWith("   ", line, StringComparison.Ordinal);
    }
}

namespace AutoResearch.Runner.Experiment;

/// <summary>The schedules of SPEC §7 with this experiment's knobs: the pure functions of <see cref="Optim.TrainingSchedule"/>.</summary>
public static class TrainingSchedule
{
    /// <summary>lr multiplier: warm-up ramp, 1.0, then the linear warm-down to FinalLrFrac at progress 1.</summary>
    public static double LearningRateMultiplier(double progress, Hyperparameters hyperparameters)
    {
        ArgumentNullException.ThrowIfNull(hyperparameters);
        return Optim.TrainingSchedule.LearningRateMultiplier(progress, hyperparameters.WarmupRatio, hyperparameters.WarmdownRatio, hyperparameters.FinalLrFrac);
    }

    /// <summary>Muon momentum at a step: 0.85 → 0.95 over the first 300 steps.</summary>
    public static double MuonMomentum(int step) => Optim.TrainingSchedule.MuonMomentum(step);

    /// <summary>Muon weight decay: WeightDecay × (1 − progress).</summary>
    public static double MuonWeightDecay(double progress, Hyperparameters hyperparameters)
    {
        ArgumentNullException.ThrowIfNull(hyperparameters);
        return Optim.TrainingSchedule.MuonWeightDecay(progress, hyperparameters.WeightDecay);
    }
}

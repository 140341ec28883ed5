namespace AutoResearch.Optim;

/// <summary>
/// The schedules of SPEC §7 as pure functions of the training progress (training seconds over the budget, computed before
/// the step by the training clock) or the step number; the knobs come from the experiment's hyperparameters.
/// </summary>
public static class TrainingSchedule
{
    /// <summary>
    /// The learning-rate multiplier: a linear ramp from 0 over the warm-up fraction (when it is above 0), 1.0 until
    /// 1 − warmdown_ratio, then linear to final_lr_frac at progress 1.
    /// </summary>
    public static double LearningRateMultiplier(double progress, double warmupRatio = 0, double warmdownRatio = 0.5, double finalLrFraction = 0)
    {
        if (warmupRatio > 0 && progress < warmupRatio)
            return progress / warmupRatio;
        if (progress < 1 - warmdownRatio || (warmdownRatio > 0 && progress == 1 - warmdownRatio))
            return 1.0;
        if (warmdownRatio <= 0)
            return finalLrFraction;
        double intoWarmdown = (progress - (1 - warmdownRatio)) / warmdownRatio;
        return 1.0 + (finalLrFraction - 1.0) * Math.Min(intoWarmdown, 1);
    }

    /// <summary>Muon momentum: linear from 0.85 to 0.95 over the first 300 steps, then 0.95.</summary>
    public static double MuonMomentum(int step) => 0.85 + 0.10 * Math.Min(step / 300.0, 1);

    /// <summary>Muon weight decay: 0.2·(1 − progress) (the base is a knob).</summary>
    public static double MuonWeightDecay(double progress, double baseWeightDecay = 0.2) => baseWeightDecay * (1 - progress);
}

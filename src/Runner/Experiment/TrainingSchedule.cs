namespace AutoResearch.Runner.Experiment;

/// <summary>The schedules of SPEC §7 as functions of progress (fraction of the time budget) or step.</summary>
public static class TrainingSchedule
{
    /// <summary>Muon momentum ramps linearly from 0.85 to 0.95 over this many steps.</summary>
    public const int MomentumRampSteps = 300;

    /// <summary>
    /// lr multiplier: linear ramp over WarmupRatio (if &gt; 0), 1.0 until 1 − WarmdownRatio, then linear down to
    /// FinalLrFrac at progress 1.
    /// </summary>
    public static double LearningRateMultiplier(double progress, Hyperparameters hyperparameters)
    {
        ArgumentNullException.ThrowIfNull(hyperparameters);
        double warmup = hyperparameters.WarmupRatio, warmdown = hyperparameters.WarmdownRatio, final = hyperparameters.FinalLrFrac;
        if (progress < warmup)
            return progress / warmup;
        if (progress < 1.0 - warmdown)
            return 1.0;
        if (warmdown <= 0)
            return final;
        double cooldown = Math.Max(0, 1.0 - progress) / warmdown;
        return cooldown + (1.0 - cooldown) * final;
    }

    /// <summary>Muon momentum at a step: 0.85 → 0.95 over the first 300 steps.</summary>
    public static double MuonMomentum(int step)
    {
        double fraction = Math.Min((double)step / MomentumRampSteps, 1.0);
        return (1.0 - fraction) * 0.85 + fraction * 0.95;
    }

    /// <summary>Muon weight decay: WeightDecay × (1 − progress).</summary>
    public static double MuonWeightDecay(double progress, Hyperparameters hyperparameters)
    {
        ArgumentNullException.ThrowIfNull(hyperparameters);
        return hyperparameters.WeightDecay * (1.0 - progress);
    }
}

namespace AutoResearch.Runner.Experiment;

/// <summary>
/// The time-budget arithmetic of SPEC §7. The loop asks <see cref="Progress"/> before a step (it drives the lr and
/// weight-decay schedules), times the step with the device synchronised at both ends, then calls
/// <see cref="CompleteStep"/>, which answers whether to stop. Steps 0–10 are warm-up: not added to
/// <see cref="TrainingSeconds"/> and not counted in MFU.
/// </summary>
public sealed class TrainingClock
{
    private readonly double budgetSeconds;
    private readonly long tokensPerStep;
    private readonly double flopsPerToken;
    private readonly double peakFlopsPerSecond;

    /// <param name="tokensPerStep">Tokens per optimizer step (TOTAL_BATCH_SIZE).</param>
    /// <param name="flopsPerToken">Training FLOPs per token (SPEC §5's count, from the model).</param>
    /// <param name="budgetSeconds">Counted training time after which training stops.</param>
    /// <param name="peakFlopsPerSecond">MFU denominator.</param>
    public TrainingClock(long tokensPerStep, double flopsPerToken,
        double budgetSeconds = ExperimentConstants.TimeBudgetSeconds,
        double peakFlopsPerSecond = ExperimentConstants.PeakFlopsPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerStep);
        ArgumentOutOfRangeException.ThrowIfNegative(flopsPerToken);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetSeconds);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(peakFlopsPerSecond);
        this.tokensPerStep = tokensPerStep;
        this.flopsPerToken = flopsPerToken;
        this.budgetSeconds = budgetSeconds;
        this.peakFlopsPerSecond = peakFlopsPerSecond;
    }

    /// <summary>
    /// When set, training runs exactly this many optimizer steps and <see cref="Progress"/> is step / StepBudget: the
    /// schedules then depend on the step, not the clock, so two runs of different speed take the same steps (an equal-step
    /// comparison). The time budget is then not a stopping rule; the counted seconds still give the MFU.
    /// </summary>
    public int? StepBudget
    {
        get;
        init => field = value is null or > 0 ? value : throw new ArgumentOutOfRangeException(nameof(StepBudget), value, "a step budget must be at least 1 step");
    }

    /// <summary>Index of the step about to run (0 before the first); after training, the number of steps run.</summary>
    public int Step { get; private set; }

    /// <summary>Sum of the times of counted steps (those with index &gt; 10).</summary>
    public double TrainingSeconds { get; private set; }

    /// <summary>Steps whose time was counted (index &gt; 10).</summary>
    public int CountedSteps { get; private set; }

    /// <summary>Time budget in seconds.</summary>
    public double BudgetSeconds => budgetSeconds;

    /// <summary>min(training_seconds / budget, 1), or step / StepBudget: read before the step.</summary>
    public double Progress => StepBudget is { } steps ? Math.Min((double)Step / steps, 1.0) : Math.Min(TrainingSeconds / budgetSeconds, 1.0);

    /// <summary>Budget left, never negative (with a step budget: the seconds the remaining steps take at the mean step so far).</summary>
    public double RemainingSeconds => StepBudget is { } steps
        ? CountedSteps > 0 ? TrainingSeconds / CountedSteps * Math.Max(0, steps - Step) : 0
        : Math.Max(0, budgetSeconds - TrainingSeconds);

    /// <summary>Whether a step's time counts towards the budget: steps 0–10 do not.</summary>
    public static bool IsCounted(int step) => step >= ExperimentConstants.UncountedSteps;

    /// <summary>Records the step just run (its synchronised wall time) and returns true when training must stop.</summary>
    public bool CompleteStep(double stepSeconds)
    {
        if (!(stepSeconds >= 0) || double.IsInfinity(stepSeconds))
            throw new ArgumentOutOfRangeException(nameof(stepSeconds), stepSeconds, "Step time must be a finite, non-negative number of seconds.");
        int step = Step;
        if (IsCounted(step))
        {
            TrainingSeconds += stepSeconds;
            CountedSteps++;
        }
        Step = step + 1;
        if (StepBudget is { } steps)
            return Step >= steps;
        return IsCounted(step) && TrainingSeconds >= budgetSeconds;
    }

    /// <summary>Throughput of one step: tokens per optimizer step / step time.</summary>
    public double TokensPerSecond(double stepSeconds) => stepSeconds > 0 ? tokensPerStep / stepSeconds : 0;

    /// <summary>MFU of one step, percent of peak.</summary>
    public double StepMfuPercent(double stepSeconds) =>
        stepSeconds > 0 ? 100.0 * flopsPerToken * tokensPerStep / stepSeconds / peakFlopsPerSecond : 0;

    /// <summary>MFU over the counted steps (after step 10), percent of peak: the summary's mfu_percent.</summary>
    public double MfuPercent => TrainingSeconds > 0
        ? 100.0 * flopsPerToken * tokensPerStep * CountedSteps / TrainingSeconds / peakFlopsPerSecond
        : 0;

    /// <summary>Tokens trained in millions, num_steps × total batch / 1e6: the summary's total_tokens_M.</summary>
    public double TotalTokensMillions => (double)Step * tokensPerStep / 1e6;

    /// <summary>
    /// Micro-steps per optimizer step: total batch / (device batch × T). Throws when it does not divide evenly,
    /// naming the three values.
    /// </summary>
    public static int GradientAccumulationSteps(int totalBatchSize, int deviceBatchSize, int sequenceLength = ExperimentConstants.MaxSeqLen)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalBatchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(deviceBatchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequenceLength);
        long tokensPerMicroStep = (long)deviceBatchSize * sequenceLength;
        if (totalBatchSize % tokensPerMicroStep != 0)
            throw new ArgumentException(
                $"TotalBatchSize ({totalBatchSize} tokens) must be a multiple of DeviceBatchSize × sequence length " +
                $"({deviceBatchSize} × {sequenceLength} = {tokensPerMicroStep} tokens): change one of TotalBatchSize or DeviceBatchSize.",
                nameof(totalBatchSize));
        return (int)(totalBatchSize / tokensPerMicroStep);
    }

    /// <summary>Fast-fail rule: a NaN loss or one above 100 ends the run with FAIL.</summary>
    public static bool IsFastFail(double loss) => double.IsNaN(loss) || loss > ExperimentConstants.FastFailLoss;
}

namespace AutoResearch.Runner.Experiment;

/// <summary>
/// The evaluation contract (SPEC §1, §7, §9): fixed so that every run's val_bpb is comparable. These are NOT knobs;
/// changing one silently makes new results incomparable with old ones.
/// </summary>
public static class ExperimentConstants
{
    /// <summary>MAX_SEQ_LEN: context length for training and evaluation (T).</summary>
    public const int MaxSeqLen = 2048;

    /// <summary>TIME_BUDGET: seconds of counted training time (SPEC §7).</summary>
    public const double TimeBudgetSeconds = 300;

    /// <summary>EVAL_TOKENS: tokens scored in the final evaluation, 40 × 524,288.</summary>
    public const long EvalTokens = 40L * 524_288;

    /// <summary>VOCAB_SIZE: tokenizer size including the 4 special tokens.</summary>
    public const int VocabSize = 8192;

    /// <summary>Steps 0..UncountedSteps-1 are not counted in training time or MFU (compilation, warm-up): steps 0–10.</summary>
    public const int UncountedSteps = 11;

    /// <summary>H100 dense bf16 peak, the MFU denominator.</summary>
    public const double PeakFlopsPerSecond = 989.5e12;

    /// <summary>A training loss above this (or NaN) fails the run at once.</summary>
    public const double FastFailLoss = 100;
}

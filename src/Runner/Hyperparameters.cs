namespace AutoResearch.Runner;

/// <summary>
/// The knobs an agent changes between experiments (SPEC §5–7), with the baseline defaults. The command line can override
/// the common ones (--depth, --device-batch, ...). The evaluation contract is not here: see <see cref="Constants"/>.
/// </summary>
public sealed record Hyperparameters
{
    public int Depth { get; init; } = 8;
    public int AspectRatio { get; init; } = 64;
    public string WindowPattern { get; init; } = "SSSL";
    public int TotalBatchTokens { get; init; } = 1 << 19;
    public int DeviceBatch { get; init; } = 128;
    public double EmbeddingLearningRate { get; init; } = 0.6;
    public double UnembeddingLearningRate { get; init; } = 0.004;
    public double MatrixLearningRate { get; init; } = 0.04;
    public double ScalarLearningRate { get; init; } = 0.5;
    public double AdamBeta1 { get; init; } = 0.8;
    public double AdamBeta2 { get; init; } = 0.95;
    public double WeightDecay { get; init; } = 0.2;
    public double WarmupRatio { get; init; }
    public double WarmdownRatio { get; init; } = 0.5;
    public double FinalLearningRateFraction { get; init; }
    public int Seed { get; init; } = 42;

    public static Hyperparameters Default { get; } = new();
}

/// <summary>The fixed constants of SPEC §1: the evaluation contract, never changed silently.</summary>
public static class Constants
{
    public const int MaxSeqLen = 2048;
    public const double TimeBudgetSeconds = 300;
    public const long EvalTokens = 40L * 524_288;
    public const int VocabSize = 8192;

    /// <summary>H100 dense bf16 peak used for MFU (SPEC §9).</summary>
    public const double PeakFlops = 989.5e12;
}

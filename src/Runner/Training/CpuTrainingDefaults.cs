namespace AutoResearch.Runner.Training;

/// <summary>
/// The reduced configuration of `train --device cpu`, small enough for the fp64 reference to take tens of steps in ~20 s on a
/// couple of cores. Width is roundup(depth × 64, HeadDim) = 128: one head of 128 (two of 64 with --set HeadDim=64).
/// Each value is the default of its option with --device cpu; the options, or --set on the knob, override it.
/// </summary>
public static class CpuTrainingDefaults
{
    /// <summary>Layers (--depth).</summary>
    public const int Depth = 2;

    /// <summary>Tokens per row (--seq-len).</summary>
    public const int SeqLen = 64;

    /// <summary>Rows per micro-batch (--device-batch); the total batch defaults to one micro-batch.</summary>
    public const int DeviceBatch = 4;

    /// <summary>Validation tokens scored at the end (--eval-tokens).</summary>
    public const long EvalTokens = 4096;
}

namespace AutoResearch.Runner;

/// <summary>
/// The knobs of one experiment: what an agent changes between runs. Defaults are the SPEC baseline (§5, §6, §7).
/// Change a default here, or override per run: <c>Hyperparameters.Default with { Depth = 12 }</c>.
/// The evaluation contract (sequence length, time budget, eval tokens, vocabulary) is NOT here: see ExperimentConstants.
/// </summary>
public sealed record Hyperparameters
{
    /// <summary>The SPEC baseline.</summary>
    public static Hyperparameters Default { get; } = new();

    // ---- model shape (SPEC §5) ----
    /// <summary>DEPTH: number of transformer layers.</summary>
    public int Depth { get; init; } = 8;
    /// <summary>ASPECT_RATIO: model_dim = roundup(Depth × AspectRatio, HeadDim).</summary>
    public int AspectRatio { get; init; } = 64;
    /// <summary>HEAD_DIM: size of one attention head.</summary>
    public int HeadDim { get; init; } = 128;
    /// <summary>WINDOW_PATTERN: per layer, repeated; S = half context, L = full context (last layer is always L).</summary>
    public string WindowPattern { get; init; } = "SSSL";

    // ---- batch (SPEC §7) ----
    /// <summary>TOTAL_BATCH_SIZE: tokens per optimizer step (2^19).</summary>
    public int TotalBatchSize { get; init; } = 1 << 19;
    /// <summary>DEVICE_BATCH_SIZE: rows of MAX_SEQ_LEN tokens per micro-step.</summary>
    public int DeviceBatchSize { get; init; } = 128;

    // ---- optimizer (SPEC §6) ----
    /// <summary>EMBEDDING_LR: AdamW lr of wte and the value-embedding tables (scaled by (model_dim/768)^-0.5).</summary>
    public double EmbeddingLr { get; init; } = 0.6;
    /// <summary>UNEMBEDDING_LR: AdamW lr of lm_head (scaled by (model_dim/768)^-0.5).</summary>
    public double UnembeddingLr { get; init; } = 0.004;
    /// <summary>MATRIX_LR: Muon lr of every matrix in the blocks.</summary>
    public double MatrixLr { get; init; } = 0.04;
    /// <summary>SCALAR_LR: AdamW lr of x0_lambda (resid_lambda uses 0.01 × this); not scaled.</summary>
    public double ScalarLr { get; init; } = 0.5;
    /// <summary>ADAM_BETAS: (beta1, beta2) of the AdamW groups.</summary>
    public (double Beta1, double Beta2) AdamBetas { get; init; } = (0.8, 0.95);
    /// <summary>WEIGHT_DECAY: Muon cautious weight decay at progress 0 (decays linearly to 0 at progress 1).</summary>
    public double WeightDecay { get; init; } = 0.2;

    // ---- schedule (SPEC §7), as fractions of the time budget ----
    /// <summary>WARMUP_RATIO: fraction of the budget spent ramping the lr up linearly.</summary>
    public double WarmupRatio { get; init; }
    /// <summary>WARMDOWN_RATIO: final fraction of the budget over which the lr falls linearly to FinalLrFrac.</summary>
    public double WarmdownRatio { get; init; } = 0.5;
    /// <summary>FINAL_LR_FRAC: lr multiplier reached at progress 1.</summary>
    public double FinalLrFrac { get; init; }

    /// <summary>model_dim = roundup(Depth × AspectRatio, HeadDim); 512 for the baseline.</summary>
    public int ModelDim => (Depth * AspectRatio + HeadDim - 1) / HeadDim * HeadDim;

    /// <summary>Attention heads = ModelDim / HeadDim; 4 for the baseline.</summary>
    public int NumHeads => ModelDim / HeadDim;

    /// <summary>Checks every knob for a usable value; throws naming the knob and what was expected.</summary>
    public Hyperparameters Validate()
    {
        Require(Depth > 0, nameof(Depth), Depth, "a positive layer count");
        Require(AspectRatio > 0, nameof(AspectRatio), AspectRatio, "a positive integer");
        Require(HeadDim > 0 && HeadDim % 2 == 0, nameof(HeadDim), HeadDim, "a positive even integer (rotary splits heads in halves)");
        Require(!string.IsNullOrEmpty(WindowPattern) && WindowPattern.AsSpan().IndexOfAnyExcept("SL") < 0,
            nameof(WindowPattern), WindowPattern, "a non-empty string of 'S' and 'L'");
        Require(TotalBatchSize > 0, nameof(TotalBatchSize), TotalBatchSize, "a positive token count");
        Require(DeviceBatchSize > 0, nameof(DeviceBatchSize), DeviceBatchSize, "a positive row count");
        Require(EmbeddingLr >= 0 && UnembeddingLr >= 0 && MatrixLr >= 0 && ScalarLr >= 0,
            "learning rates", $"{EmbeddingLr}, {UnembeddingLr}, {MatrixLr}, {ScalarLr}", "non-negative values");
        Require(AdamBetas.Beta1 is >= 0 and < 1 && AdamBetas.Beta2 is >= 0 and < 1, nameof(AdamBetas), AdamBetas, "betas in [0, 1)");
        Require(WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "a non-negative value");
        Require(WarmupRatio is >= 0 and <= 1, nameof(WarmupRatio), WarmupRatio, "a fraction in [0, 1]");
        Require(WarmdownRatio is >= 0 and <= 1, nameof(WarmdownRatio), WarmdownRatio, "a fraction in [0, 1]");
        Require(WarmupRatio + WarmdownRatio <= 1, "WarmupRatio + WarmdownRatio", WarmupRatio + WarmdownRatio, "at most 1");
        Require(FinalLrFrac >= 0, nameof(FinalLrFrac), FinalLrFrac, "a non-negative value");
        return this;
    }

    private static void Require(bool ok, string name, object value, string expected)
    {
        if (!ok)
            throw new ArgumentException($"Hyperparameter {name} = {value} is invalid: expected {expected}.", name);
    }
}

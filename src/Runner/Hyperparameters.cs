using AutoResearch.Model;
using AutoResearch.Optim;

namespace AutoResearch.Runner;

/// <summary>
/// The knobs of one experiment: what an agent changes between runs. Defaults are the SPEC baseline (§5, §6, §7). Change a
/// default here, or override per run without editing code: <c>train --set Depth=12 --set HeadDim=64</c> (<see cref="Knobs"/>;
/// <c>autoresearch knobs</c> lists them), or in code <c>Hyperparameters.Default with { Depth = 12 }</c>. Every knob reaches the
/// model through <see cref="Shape"/> (one <see cref="ModelShape"/>: the CPU reference, the GPU model and its kernels' compile-time
/// constants), the optimizer through <see cref="Optimizer"/>, or the loop and schedules directly.
/// The evaluation contract (sequence length, time budget, eval tokens, vocabulary) is NOT here: see ExperimentConstants.
/// </summary>
public sealed record Hyperparameters
{
    /// <summary>The SPEC baseline.</summary>
    public static Hyperparameters Default { get; } = new();

    // ---- model shape (SPEC §5) ----
    [Knob("Transformer layers", "1..64")]
    public int Depth { get; init; } = 8;
    [Knob("Width = roundup(Depth × AspectRatio, HeadDim)", $"width ≤ 4096")]
    public int AspectRatio { get; init; } = 64;
    [Knob("Size of one attention head", "64 or 128")]
    public int HeadDim { get; init; } = 128;
    [Knob("Key/value heads (grouped-query attention); 0 = as many as the query heads", "0 or a divisor of the heads")]
    public int KvHeads { get; init; }
    [Knob("MLP hidden width as a multiple of the model width (⅔ of it for swiglu), rounded to 64 (128 for swiglu)", "(0, 16]")]
    public double MlpRatio { get; init; } = 4;
    [Knob("MLP activation", "relu2, gelu (tanh form), swiglu")]
    public string Activation { get; init; } = "relu2";
    [Knob("Per-layer attention windows: S short, L whole context, repeated; the last layer is always L", "a string of S and L")]
    public string WindowPattern { get; init; } = "SSSL";
    [Knob("Tokens an S layer sees back; 0 = half the context (1024)", "0..T")]
    public int ShortWindow { get; init; }
    [Knob("Layers with a gated value embedding: alternate (every other, ending with the last), all, none, or a V/- pattern repeated", "alternate, all, none, [V-]+")]
    public string ValueEmbeds { get; init; } = "alternate";
    [Knob("Logit soft cap z → cap·tanh(z/cap); 0 = off", "≥ 0")]
    public double SoftCap { get; init; } = 15;
    [Knob("Rotary embedding base θ (inv_freq = θ^(−2j/HeadDim))", "> 1")]
    public double RotaryBase { get; init; } = 10000;

    // ---- batch (SPEC §7) ----
    [Knob("Tokens per optimizer step (2^19)", "a multiple of DeviceBatchSize × T")]
    public int TotalBatchSize { get; init; } = 1 << 19;
    [Knob("Rows of T tokens per micro-step (--device-batch)", "≥ 1, what fits in memory")]
    public int DeviceBatchSize { get; init; } = 128;
    [Knob("GPU memory for time: mlp recomputes each layer's MLP activation in the backward instead of keeping it (the same computation; at the baseline on an H200 27.1 → 19.7 GB, 6 % slower); none keeps everything", "none, mlp")]
    public string Recompute { get; init; } = "none";

    // ---- optimizer (SPEC §6) ----
    [Knob("AdamW lr of wte and the value embeddings (× (width/768)^-0.5)", "≥ 0")]
    public double EmbeddingLr { get; init; } = 0.6;
    [Knob("AdamW lr of lm_head (× (width/768)^-0.5)", "≥ 0")]
    public double UnembeddingLr { get; init; } = 0.004;
    [Knob("Muon lr of every matrix in the blocks", "≥ 0")]
    public double MatrixLr { get; init; } = 0.04;
    [Knob("AdamW lr of x0_lambdas (resid_lambdas: 0.01 × this); not scaled", "≥ 0")]
    public double ScalarLr { get; init; } = 0.5;
    [Knob("AdamW beta1", "[0, 1)")]
    public double AdamBeta1 { get; init; } = 0.8;
    [Knob("AdamW beta2", "[0, 1)")]
    public double AdamBeta2 { get; init; } = 0.95;
    [Knob("Muon cautious weight decay at progress 0 (falls linearly to 0)", "≥ 0")]
    public double WeightDecay { get; init; } = 0.2;
    [Knob("Where the optimizer rounds: fp32 (fp32 masters and moments, the Muon update in fp32) or reference (the reference's: bf16 wte and value embeddings with bf16 Adam moments, the bf16 Muon update with bf16 lr and weight decay); docs/precision.md", "fp32, reference")]
    public string Precision { get; init; } = "reference";
    [Knob("Seed of the initial weights", "any integer")]
    public int Seed { get; init; } = 42;

    // ---- schedule (SPEC §7), as fractions of the time budget ----
    [Knob("Fraction of the budget ramping the lr up", "[0, 1]")]
    public double WarmupRatio { get; init; }
    [Knob("Final fraction of the budget over which the lr falls to FinalLrFrac", "[0, 1]")]
    public double WarmdownRatio { get; init; } = 0.5;
    [Knob("lr multiplier reached at the end", "≥ 0")]
    public double FinalLrFrac { get; init; }

    /// <summary>model_dim = roundup(Depth × AspectRatio, HeadDim); 512 for the baseline.</summary>
    public int ModelDim => (Depth * AspectRatio + HeadDim - 1) / HeadDim * HeadDim;

    /// <summary>Attention heads = ModelDim / HeadDim; 4 for the baseline.</summary>
    public int NumHeads => ModelDim / HeadDim;

    /// <summary>Whether the Recompute knob asks for the MLP activation to be recomputed in the backward.</summary>
    public bool RecomputesMlp => Recompute.Trim().Equals("mlp", StringComparison.OrdinalIgnoreCase);

    /// <summary>The Recompute knob's values.</summary>
    public static IReadOnlyList<string> RecomputeNames { get; } = ["none", "mlp"];

    /// <summary>The deepest model the knobs accept (the sweep covers up to 32).</summary>
    public const int MaxDepth = 64;

    /// <summary>The model these knobs describe, for a vocabulary and T (the shape knobs are checked there too).</summary>
    public ModelShape Shape(int vocabSize, int seqLen)
        => ModelShape.FromKnobs(Depth, AspectRatio, WindowPattern, vocabSize, seqLen, HeadDim, KvHeads, MlpRatio, Model.Activations.Parse(Activation),
            SoftCap, RotaryBase, ShortWindow, ValueEmbeds);

    /// <summary>The optimizer's settings from these knobs (SPEC §6).</summary>
    public OptimizerSettings Optimizer(int modelDim)
        => new(modelDim, UnembeddingLr, EmbeddingLr, ScalarLr, MatrixLr, AdamBeta1, AdamBeta2, Precision: OptimizerPrecisions.Parse(Precision));

    /// <summary>Checks every knob for a usable value; throws naming the knob and what was expected.</summary>
    public Hyperparameters Validate()
    {
        Require(Depth is >= 1 and <= MaxDepth, nameof(Depth), Depth, $"1..{MaxDepth} layers");
        Require(AspectRatio > 0, nameof(AspectRatio), AspectRatio, "a positive integer");
        Require(ModelShape.SupportedHeadDims.Contains(HeadDim), nameof(HeadDim), HeadDim,
            $"one of {string.Join(", ", ModelShape.SupportedHeadDims)} (the attention kernels' head sizes; 256 is not built: its tiles would not fit in shared memory at speed)");
        Require((long)Depth * AspectRatio <= ModelShape.MaxModelDim, "Depth × AspectRatio", $"{Depth} × {AspectRatio}",
            $"a width of at most {ModelShape.MaxModelDim}");
        Require(KvHeads >= 0 && (KvHeads == 0 || (KvHeads <= NumHeads && NumHeads % KvHeads == 0)), nameof(KvHeads), KvHeads,
            NumHeads == 1 ? "0 or 1 (the model has one head)" : $"0 (as many as the heads) or a divisor of the {NumHeads} heads");
        Require(MlpRatio > 0 && MlpRatio <= 16, nameof(MlpRatio), MlpRatio, "a number in (0, 16]");
        Require(Model.Activations.Names.Contains(Activation.ToLowerInvariant()), nameof(Activation), Activation,
            $"one of {string.Join(", ", Model.Activations.Names)}");
        // Either case, as the model (and the reference, which upper-cases the pattern) reads it, and as --window-pattern takes it.
        Require(!string.IsNullOrEmpty(WindowPattern) && WindowPattern.AsSpan().IndexOfAnyExcept("SLsl") < 0,
            nameof(WindowPattern), WindowPattern, "a non-empty string of 'S' and 'L' (either case)");
        Require(ShortWindow >= 0, nameof(ShortWindow), ShortWindow, "0 (half the context) or a positive token count");
        ModelShape.ValueEmbeddingLayers(ValueEmbeds, Depth); // throws naming the knob
        Require(SoftCap >= 0 && double.IsFinite(SoftCap), nameof(SoftCap), SoftCap, "0 (off) or a positive cap");
        Require(RotaryBase > 1 && double.IsFinite(RotaryBase), nameof(RotaryBase), RotaryBase, "a finite number above 1");
        Require(TotalBatchSize > 0, nameof(TotalBatchSize), TotalBatchSize, "a positive token count");
        Require(DeviceBatchSize > 0, nameof(DeviceBatchSize), DeviceBatchSize, "a positive row count (--device-batch)");
        Require(RecomputeNames.Contains(Recompute.Trim().ToLowerInvariant()), nameof(Recompute), Recompute, $"one of {string.Join(", ", RecomputeNames)}");
        foreach (var (name, lr) in new[] { (nameof(EmbeddingLr), EmbeddingLr), (nameof(UnembeddingLr), UnembeddingLr), (nameof(MatrixLr), MatrixLr), (nameof(ScalarLr), ScalarLr) })
            Require(lr >= 0 && double.IsFinite(lr), name, lr, "a finite non-negative learning rate");
        Require(AdamBeta1 is >= 0 and < 1, nameof(AdamBeta1), AdamBeta1, "a beta in [0, 1)");
        Require(AdamBeta2 is >= 0 and < 1, nameof(AdamBeta2), AdamBeta2, "a beta in [0, 1)");
        Require(OptimizerPrecisions.Names.Contains(Precision.Trim().ToLowerInvariant()), nameof(Precision), Precision,
            $"one of {string.Join(", ", OptimizerPrecisions.Names)}");
        Require(WeightDecay >= 0 && double.IsFinite(WeightDecay), nameof(WeightDecay), WeightDecay, "a finite non-negative value");
        Require(WarmupRatio is >= 0 and <= 1, nameof(WarmupRatio), WarmupRatio, "a fraction in [0, 1]");
        Require(WarmdownRatio is >= 0 and <= 1, nameof(WarmdownRatio), WarmdownRatio, "a fraction in [0, 1]");
        Require(WarmupRatio + WarmdownRatio <= 1, "WarmupRatio + WarmdownRatio", WarmupRatio + WarmdownRatio, "at most 1");
        Require(FinalLrFrac >= 0 && double.IsFinite(FinalLrFrac), nameof(FinalLrFrac), FinalLrFrac, "a finite non-negative value");
        return this;
    }

    private static void Require(bool ok, string name, object value, string expected)
    {
        if (!ok)
            throw new ArgumentException($"Hyperparameter {name} = {value} is invalid: expected {expected}.", name);
    }
}

namespace AutoResearch.Model.Gpu;

/// <summary>One op's kernel path: the op, the path it takes, and, where that is not the fastest path the model has for the op,
/// why (the shape, the device or a flag).</summary>
public sealed record KernelPath(string Op, string Path, string? Fallback = null)
{
    /// <summary>Whether the op takes its fastest path.</summary>
    public bool Fast => Fallback is null;
}

/// <summary>
/// Which kernels <see cref="GpuGpt"/> runs for a shape, a batch and a device generation, decided before any device work: our
/// GEMMs with fused epilogues or cuBLAS and separate passes, the grouped or per-token table gradients, one-pass or two-pass norm
/// backward, and what the forward keeps for the backward. The model itself decides from these (the same predicates), so the
/// report is what runs; <c>profile</c>, <c>sweep</c> and <c>paths</c> print it, and a shape that leaves a fast path says which
/// and why.
/// </summary>
public sealed record KernelPaths
{
    /// <summary>The compute capability's major number the paths were decided for (9: Hopper, where our GEMMs and attention run).</summary>
    public required int ComputeMajor { get; init; }

    /// <summary>The MLP's fc and proj-gradient GEMMs are ours with the activation (and the norm) in their epilogue.</summary>
    public required bool FusedMlp { get; init; }

    /// <summary>Why the MLP is not fused (null when it is).</summary>
    public string? MlpFallback { get; init; }

    /// <summary>q's projection is our GEMM with rotary + QK-norm in its epilogue.</summary>
    public required bool FusedQ { get; init; }

    /// <summary>k's projection likewise.</summary>
    public required bool FusedK { get; init; }

    /// <summary>Why q's (k's) projection is not fused, or null.</summary>
    public string? QFallback { get; init; }

    /// <inheritdoc cref="QFallback"/>
    public string? KFallback { get; init; }

    /// <summary>v's product runs in the q and k kernel's launch (the kernel built to take it, <see cref="MlpGemm.RotaryTakesV"/>).</summary>
    public bool VInQkLaunch { get; init; }

    /// <summary>The attention kernels are the flash ones (else the one-warp-per-query oracle, <see cref="AttentionNaive"/>).</summary>
    public bool FlashAttention { get; init; } = true;

    /// <summary>The value embeddings' gradient is added in grouped token order (kv rows of at most <see cref="ValueGate.MaxGroupedWidth"/>).</summary>
    public required bool GroupedValueGate { get; init; }

    /// <summary>Whether any layer has value embeddings (else there is no value gate at all).</summary>
    public required bool HasValueEmbeddings { get; init; }

    /// <summary>wte's gradient is added in grouped token order (rows of at most <see cref="Embedding.MaxGroupedWidth"/>).</summary>
    public required bool GroupedEmbedding { get; init; }

    /// <summary>A layer's attention norm and residual mix backward are one pass (<see cref="RmsNorm.FusesNormMixBackward"/>).</summary>
    public required bool FusedNormMixBackward { get; init; }

    /// <summary>The norm backward kernels hold two chunks a lane (<see cref="RmsNorm.TakesNarrowBackward"/>).</summary>
    public required bool NarrowNormBackward { get; init; }

    /// <summary>Each layer's mixed input m is kept (<see cref="GpuActivations.KeepsMix"/>), else recomputed in the backward.</summary>
    public required bool MixKept { get; init; }

    /// <summary>Layers that keep h1 = norm(m) (<see cref="GpuActivations.KeptH1Layers"/>); the others recompute it.</summary>
    public required int KeptH1Layers { get; init; }

    /// <summary>Layers of the model.</summary>
    public required int Depth { get; init; }

    /// <summary>The MLP's activations are recomputed in the backward (the Recompute knob), not kept per layer.</summary>
    public required bool RecomputeMlp { get; init; }

    /// <summary>Model width, head size, query and kv heads, and the activation, for the report's wording.</summary>
    public required int Width { get; init; }

    /// <inheritdoc cref="Width"/>
    public required int HeadDim { get; init; }

    /// <inheritdoc cref="HeadDim"/>
    public required int Heads { get; init; }

    /// <inheritdoc cref="HeadDim"/>
    public required int KvHeads { get; init; }

    /// <inheritdoc cref="HeadDim"/>
    public required Activation Activation { get; init; }

    /// <summary>Whether the backward groups the token positions by id: only where a grouped kernel reads the order.</summary>
    public bool GroupsTokens => GroupedEmbedding || (GroupedValueGate && HasValueEmbeddings);

    /// <summary>
    /// The paths for <paramref name="shape"/> at <paramref name="batch"/> rows on a device of compute capability
    /// <paramref name="computeMajor"/>.<paramref name="fusedMlp"/> and <paramref name="fusedQk"/> false ask for cuBLAS (profile's
    /// --cublas-mlp, --cublas-qk); <paramref name="vInQkLaunch"/> is known only once the q k kernel is loaded (its build),
    /// false before.
    /// </summary>
    public static KernelPaths For(int computeMajor, ModelShape shape, int batch, bool fusedMlp = true, bool fusedQk = true, bool recomputeMlp = false,
        bool vInQkLaunch = false, bool flashAttention = true)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        long tokens = (long)batch * shape.SeqLen;
        bool hopper = computeMajor == 9;
        string? mlpFallback = !fusedMlp ? "cuBLAS asked for (profile --cublas-mlp)"
            : !MlpGemm.SupportsActivation(shape.Activation) ? $"the fused epilogues compute relu² and GELU, not {shape.Activation.Name()}"
            : !hopper ? NotHopper(computeMajor)
            : MlpGemm.ShapeProblem(tokens, shape.ModelDim, shape.MlpHidden) is { } mlpProblem ? $"the GEMM needs {mlpProblem}"
            : null;
        string? qFallback = RotaryFallback(computeMajor, shape, tokens, shape.ModelDim, fusedQk);
        string? kFallback = RotaryFallback(computeMajor, shape, tokens, shape.KvDim, fusedQk);
        bool mlp = mlpFallback is null;
        return new KernelPaths
        {
            ComputeMajor = computeMajor,
            FusedMlp = mlp,
            MlpFallback = mlpFallback,
            FusedQ = qFallback is null,
            FusedK = kFallback is null,
            QFallback = qFallback,
            KFallback = kFallback,
            VInQkLaunch = vInQkLaunch && qFallback is null && kFallback is null,
            FlashAttention = flashAttention,
            GroupedValueGate = ValueGate.TakesGroupedOrder(shape.KvHeads, shape.HeadDim),
            HasValueEmbeddings = shape.HasValueEmbedding.Any(v => v),
            GroupedEmbedding = Embedding.TakesGroupedOrder(shape.ModelDim),
            FusedNormMixBackward = RmsNorm.FusesNormMixBackward(shape.ModelDim),
            NarrowNormBackward = RmsNorm.TakesNarrowBackward(shape.ModelDim),
            MixKept = GpuActivations.KeepsMix(shape, mlp),
            KeptH1Layers = GpuActivations.KeptH1Layers(shape, mlp),
            Depth = shape.Depth,
            RecomputeMlp = recomputeMlp,
            Width = shape.ModelDim,
            HeadDim = shape.HeadDim,
            Heads = shape.Heads,
            KvHeads = shape.KvHeads,
            Activation = shape.Activation,
        };
    }

    /// <summary>Why a projection of <paramref name="outFeatures"/> (q: the width; k: kv heads × head size) over
    /// <paramref name="tokens"/> tokens does not take the rotary GEMM, or null when it does.</summary>
    public static string? RotaryFallback(int computeMajor, ModelShape shape, long tokens, int outFeatures, bool fusedQk = true)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return !fusedQk ? "cuBLAS asked for (profile --cublas-qk)"
            : computeMajor != 9 ? NotHopper(computeMajor)
            : MlpGemm.RotaryProblem(tokens, shape.ModelDim, outFeatures, shape.HeadDim) is { } problem ? $"the GEMM needs {problem}"
            : null;
    }

    private static string NotHopper(int computeMajor) => $"our GEMM kernels need compute 9.x (wgmma, TMA); this device is {computeMajor}.x";

    /// <summary>One row per op, in the order a step runs them.</summary>
    public IReadOnlyList<KernelPath> Rows()
    {
        string act = Activation.Name();
        string heads = $"{Heads} q / {KvHeads} kv heads of {HeadDim}";
        var rows = new List<KernelPath>
        {
            !FlashAttention ? new("attention", $"naive (one warp a query), {heads}", "the naive kernels asked for (profile --naive-attention)")
            : ComputeMajor == 9 ? new("attention", $"flash (TMA + wgmma), {heads}")
            : new("attention", $"flash (TMA + wgmma), {heads}: cannot run here", NotHopper(ComputeMajor).Replace("our GEMM kernels", "the flash kernels", StringComparison.Ordinal)),
        };
        string qkPath = "our GEMM with rotary + QK-norm in the epilogue";
        rows.Add((FusedQ, FusedK) switch
        {
            (true, true) => new("q, k projections", qkPath + ", q and k in one launch"),
            (true, false) => new("q, k projections", "q: " + qkPath + "; k: cuBLAS + a rotary + QK-norm pass", "k: " + KFallback),
            (false, true) => new("q, k projections", "k: " + qkPath + "; q: cuBLAS + a rotary + QK-norm pass", "q: " + QFallback),
            _ => new("q, k projections", "cuBLAS + a rotary + QK-norm pass",
                QFallback == KFallback ? QFallback : $"q: {QFallback}; k: {KFallback}"),
        });
        // cuBLAS for v is the default build (QK_GEMM_TAKES_V 0: it measured faster), not a fallback.
        rows.Add(new("v projection", VInQkLaunch ? "in the q k GEMM's launch" : "cuBLAS"));
        rows.Add(FusedMlp
            ? new("MLP", $"our GEMMs with the norm and {act} in the fc epilogue, {act}'s backward in the proj gradient's")
            : new("MLP", $"cuBLAS GEMMs + norm and {act} passes", MlpFallback));
        rows.Add(HasValueEmbeddings
            ? GroupedValueGate
                ? new("value gate backward", $"tokens grouped by id, each run's sum added once (kv rows ≤ {ValueGate.MaxGroupedWidth})")
                : new("value gate backward", "an atomic add a token", $"kv rows of {KvHeads * HeadDim} features, over the grouped kernel's {ValueGate.MaxGroupedWidth}")
            : new("value gate backward", "none (no layer has value embeddings)"));
        int width = Width;
        rows.Add(GroupedEmbedding
            ? new("embedding backward", $"tokens grouped by id, each run's sum added once (rows ≤ {Embedding.MaxGroupedWidth})")
            : new("embedding backward", "an atomic add a token", $"rows of {width} features, over the grouped kernel's {Embedding.MaxGroupedWidth}"));
        rows.Add(new("token grouping", GroupsTokens ? "runs once a backward (a counting sort)" : "skipped (no grouped kernel reads it)"));
        rows.Add(NarrowNormBackward
            ? new("rmsnorm backward", $"two 8-feature chunks a lane in registers (rows ≤ {RmsNorm.NarrowBackwardWidth})")
            : new("rmsnorm backward", "the general kernel"));
        rows.Add(FusedNormMixBackward
            ? new("norm + mix backward", $"one pass (rows ≤ {RmsNorm.FusedBackwardMaxWidth})" + (MixKept ? "" : ", m recomputed from x and x0"))
            : new("norm + mix backward", "the norm's backward, then the mix's (g rounded to bf16 between)",
                $"rows of {width} features, over the fused kernel's {RmsNorm.FusedBackwardMaxWidth}"));
        string h1 = KeptH1Layers == Depth ? "h1 of every layer" : KeptH1Layers == 0 ? "no h1 (recomputed)" : $"h1 of {KeptH1Layers} of {Depth} layers (the others recomputed)";
        rows.Add(new("kept for the backward",
            $"{h1}; {(MixKept ? "m of every layer" : "no m (recomputed)")}; {(RecomputeMlp ? "one MLP activation buffer for all layers (each recomputed in the backward: the Recompute knob)" : "the MLP activations of every layer")}"));
        return rows;
    }

    /// <summary>The ops off their fastest path, "op: why" each, joined by "; " ("" when none is).</summary>
    public string Fallbacks() => string.Join("; ", Rows().Where(r => !r.Fast).Select(r => $"{r.Op}: {r.Fallback}"));
}

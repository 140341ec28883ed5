namespace AutoResearch.Model;

/// <summary>
/// Everything that fixes the model's function and sizes (SPEC §5 and the research knobs): depth, width, query and key/value
/// heads and their size, the MLP's hidden width and activation, the logits' soft cap, the rotary base, the vocabulary, the
/// sequence length, and per layer its attention window and whether it has a value embedding. The CPU reference, the GPU model
/// (and the compile-time constants of its kernels), checkpoints and the FLOP count all read it; it is built once, by
/// <see cref="FromKnobs"/>, from the experiment's knobs.
/// </summary>
public sealed record ModelShape
{
    /// <summary>Head sizes the GPU kernels are built for (flash attention, rotary, value gate: NVRTC -DHEAD_DIM).</summary>
    public static IReadOnlyList<int> SupportedHeadDims { get; } = [64, 128];

    /// <summary>The widest model the row kernels take (the norms keep a row in one warp's registers).</summary>
    public const int MaxModelDim = 4096;

    /// <summary>Channels of the normed input that feed the value-embedding gate.</summary>
    public const int ValueGateWidth = 32;

    public required int Depth { get; init; }
    /// <summary>C: the residual width, = Heads × HeadDim.</summary>
    public required int ModelDim { get; init; }
    /// <summary>H: query heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads (grouped-query attention when fewer than <see cref="Heads"/>; they divide it).</summary>
    public required int KvHeads { get; init; }
    /// <summary>D: the size of one head.</summary>
    public required int HeadDim { get; init; }
    /// <summary>The MLP's hidden width (the c_proj input; c_fc has twice as many rows when the activation is gated).</summary>
    public required int MlpHidden { get; init; }
    public required Activation Activation { get; init; }
    /// <summary>z → cap·tanh(z/cap) on the logits; 0 = no cap.</summary>
    public required double SoftCap { get; init; }
    /// <summary>The rotary embedding's base θ: inv_freq[j] = θ^(−2j/D).</summary>
    public required double RotaryBase { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>T: tokens per row.</summary>
    public required int SeqLen { get; init; }
    /// <summary>Per layer: query t sees keys t − W ≤ s ≤ t.</summary>
    public required int[] Windows { get; init; }
    /// <summary>Per layer: whether v gets the gated value embedding.</summary>
    public required bool[] HasValueEmbedding { get; init; }

    /// <summary>Width of k and v: KvHeads × HeadDim.</summary>
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => Heads / KvHeads;

    /// <summary>Rows of c_fc: the hidden width, twice it for a gated activation ([gate | up]).</summary>
    public int FcRows => Activation.IsGated() ? 2 * MlpHidden : MlpHidden;

    /// <summary>Columns of q | k | v side by side: C + 2·KvDim.</summary>
    public int QkvDim => ModelDim + 2 * KvDim;

    /// <summary>
    /// The shape from the knobs. Width = roundup(depth × aspectRatio, headDim); heads = width / headDim; kvHeads 0 means as
    /// many as heads; windows from a pattern of S (shortWindow tokens, 0 = half the context) and L (the whole context),
    /// repeated, the last layer always L; value embeddings on the layers <paramref name="valueEmbeds"/> names ("alternate",
    /// the reference's: every other layer ending with the last; "all"; "none"; or a pattern of V and - repeated over the
    /// layers). A value out of range throws naming its knob and what is supported.
    /// </summary>
    public static ModelShape FromKnobs(int depth, int aspectRatio, string windowPattern, int vocabSize, int seqLen, int headDim = 128,
        int kvHeads = 0, double mlpRatio = 4, Activation activation = Activation.Relu2, double softCap = 15, double rotaryBase = 10000,
        int shortWindow = 0, string valueEmbeds = "alternate")
    {
        Require(depth >= 1, "Depth", depth, "at least 1");
        Require(aspectRatio >= 1, "AspectRatio", aspectRatio, "at least 1");
        Require(SupportedHeadDims.Contains(headDim), "HeadDim", headDim, $"one of {string.Join(", ", SupportedHeadDims)} (the attention kernels' head sizes)");
        Require(vocabSize >= 2, "vocabulary", vocabSize, "at least 2 tokens");
        Require(seqLen >= 1, "sequence length", seqLen, "at least 1");
        long width = ((long)depth * aspectRatio + headDim - 1) / headDim * headDim;
        Require(width <= MaxModelDim, "Depth × AspectRatio", $"{depth} × {aspectRatio} (width {width})", $"a width of at most {MaxModelDim}");
        int modelDim = (int)width, heads = modelDim / headDim;
        int kv = kvHeads == 0 ? heads : kvHeads;
        Require(kv >= 1 && kv <= heads && heads % kv == 0, "KvHeads", kvHeads, $"0 (= heads) or a divisor of the {heads} heads");
        Require(mlpRatio > 0 && mlpRatio <= 16 && double.IsFinite(mlpRatio), "MlpRatio", mlpRatio, "a number in (0, 16]");
        Require(softCap >= 0 && double.IsFinite(softCap), "SoftCap", softCap, "0 (off) or a positive cap");
        Require(rotaryBase > 1 && double.IsFinite(rotaryBase), "RotaryBase", rotaryBase, "a finite number above 1");
        int shortTokens = shortWindow == 0 ? Math.Max(1, seqLen / 2) : shortWindow;
        Require(shortWindow >= 0 && shortTokens <= seqLen, "ShortWindow", shortWindow, $"0 (half the context) or 1..{seqLen} tokens");
        Require(!string.IsNullOrEmpty(windowPattern) && windowPattern.AsSpan().IndexOfAnyExcept("SLsl") < 0, "WindowPattern", windowPattern,
            "a non-empty string of S (short window) and L (whole context)");
        var windows = new int[depth];
        for (int i = 0; i < depth; i++)
        {
            bool isLong = i == depth - 1 || char.ToUpperInvariant(windowPattern[i % windowPattern.Length]) == 'L';
            windows[i] = isLong ? seqLen : shortTokens;
        }
        return new ModelShape
        {
            Depth = depth,
            ModelDim = modelDim,
            Heads = heads,
            KvHeads = kv,
            HeadDim = headDim,
            MlpHidden = activation.HiddenWidth(modelDim, mlpRatio),
            Activation = activation,
            SoftCap = softCap,
            RotaryBase = rotaryBase,
            VocabSize = vocabSize,
            SeqLen = seqLen,
            Windows = windows,
            HasValueEmbedding = ValueEmbeddingLayers(valueEmbeds, depth),
        };
    }

    /// <summary>The names the ValueEmbeds knob takes besides a V/- pattern.</summary>
    public static IReadOnlyList<string> ValueEmbeddingPresets { get; } = ["alternate", "all", "none"];

    /// <summary>Which layers get a value embedding (see <see cref="FromKnobs"/>).</summary>
    public static bool[] ValueEmbeddingLayers(string pattern, int depth)
    {
        Require(!string.IsNullOrEmpty(pattern), "ValueEmbeds", pattern, "alternate, all, none, or a pattern of V and -");
        var layers = new bool[depth];
        for (int i = 0; i < depth; i++)
        {
            layers[i] = pattern.ToLowerInvariant() switch
            {
                "alternate" => i % 2 == (depth - 1) % 2,
                "all" => true,
                "none" => false,
                _ when pattern.AsSpan().IndexOfAnyExcept("Vv-") < 0 => char.ToUpperInvariant(pattern[i % pattern.Length]) == 'V',
                _ => throw new ArgumentException($"Hyperparameter ValueEmbeds = '{pattern}' is invalid: expected alternate, all, none, or a pattern of V (a value embedding) and - (none) repeated over the layers."),
            };
        }
        return layers;
    }

    /// <summary>
    /// Every parameter tensor in the reference's names and order, with its shape (rows × cols, weights out × in): the layout
    /// shared by the CPU reference, the GPU model and checkpoints. c_q, c_k and c_v follow each other (the GPU model takes
    /// them as one [C + 2·KvDim, C] weight in the backward).
    /// </summary>
    public IReadOnlyList<(string Name, int Rows, int Cols)> ParameterShapes()
    {
        var list = new List<(string, int, int)> { ("transformer.wte.weight", VocabSize, ModelDim) };
        for (int i = 0; i < Depth; i++)
        {
            list.Add(($"transformer.h.{i}.attn.c_q.weight", ModelDim, ModelDim));
            list.Add(($"transformer.h.{i}.attn.c_k.weight", KvDim, ModelDim));
            list.Add(($"transformer.h.{i}.attn.c_v.weight", KvDim, ModelDim));
            list.Add(($"transformer.h.{i}.attn.c_proj.weight", ModelDim, ModelDim));
            if (HasValueEmbedding[i])
                list.Add(($"transformer.h.{i}.attn.ve_gate.weight", KvHeads, ValueGateWidth));
            list.Add(($"transformer.h.{i}.mlp.c_fc.weight", FcRows, ModelDim));
            list.Add(($"transformer.h.{i}.mlp.c_proj.weight", ModelDim, MlpHidden));
        }
        list.Add(("lm_head.weight", VocabSize, ModelDim));
        list.Add(("resid_lambdas", Depth, 1));
        list.Add(("x0_lambdas", Depth, 1));
        for (int i = 0; i < Depth; i++)
        {
            if (HasValueEmbedding[i])
                list.Add(($"value_embeds.{i}.weight", VocabSize, KvDim));
        }
        return list;
    }

    /// <summary>Parameters in all.</summary>
    public long ParameterCount => ParameterShapes().Sum(p => (long)p.Rows * p.Cols);

    /// <summary>
    /// The FLOPs per token used for MFU (SPEC §5, extended to the knobs): 6 × (all parameters − wte − value embeddings −
    /// lambdas) plus Σ_layers 12 · heads · head_dim · min(W, T) (query heads: grouped-query attention does the same products).
    /// </summary>
    public double FlopsPerToken()
    {
        long matrices = ParameterShapes()
            .Where(p => !(p.Name == "transformer.wte.weight" || p.Name.StartsWith("value_embeds.", StringComparison.Ordinal)
                || p.Name.EndsWith("lambdas", StringComparison.Ordinal)))
            .Sum(p => (long)p.Rows * p.Cols);
        return 6.0 * matrices + Windows.Sum(w => 12.0 * Heads * HeadDim * Math.Min(w, SeqLen));
    }

    /// <summary>One line for logs: depth, width, heads, MLP, windows and value-embedding layers.</summary>
    public string Describe()
    {
        string heads = KvHeads == Heads ? $"{Heads} heads of {HeadDim}" : $"{Heads} query / {KvHeads} kv heads of {HeadDim}";
        string windows = string.Join("", Windows.Select(w => w == SeqLen ? 'L' : 'S'));
        int shortWindow = Windows.FirstOrDefault(w => w != SeqLen, SeqLen);
        string ve = string.Join("", HasValueEmbedding.Select(v => v ? 'V' : '-'));
        return $"depth {Depth}, width {ModelDim}, {heads}, MLP {Activation.Name()} {MlpHidden}, windows {windows} (S = {shortWindow}), "
            + $"value embeddings {ve}, soft cap {(SoftCap == 0 ? "off" : SoftCap.ToString(System.Globalization.CultureInfo.InvariantCulture))}, "
            + $"rotary base {RotaryBase.ToString(System.Globalization.CultureInfo.InvariantCulture)}, T {SeqLen}, vocabulary {VocabSize}";
    }

    private static void Require(bool ok, string knob, object value, string expected)
    {
        if (!ok)
            throw new ArgumentException($"Hyperparameter {knob} = {value} is invalid: expected {expected}.");
    }
}

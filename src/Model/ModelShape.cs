namespace AutoResearch.Model;

/// <summary>
/// The sizes of the model (SPEC §5): depth, width, heads of 128, vocabulary, sequence length, and per layer its
/// attention window and whether it has a value embedding.
/// </summary>
public sealed record ModelShape(int Depth, int ModelDim, int Heads, int VocabSize, int SeqLen, int[] Windows, bool[] HasValueEmbedding)
{
    public const int HeadDim = 128;

    public int MlpDim => 4 * ModelDim;

    /// <summary>The baseline-style shape from the knobs: windows from a pattern of S (half context) and L (full), the last layer L.</summary>
    public static ModelShape FromKnobs(int depth, int aspectRatio, string windowPattern, int vocabSize, int seqLen)
    {
        ArgumentException.ThrowIfNullOrEmpty(windowPattern);
        int modelDim = (depth * aspectRatio + HeadDim - 1) / HeadDim * HeadDim;
        var windows = new int[depth];
        var hasVe = new bool[depth];
        for (int i = 0; i < depth; i++)
        {
            char kind = i == depth - 1 ? 'L' : char.ToUpperInvariant(windowPattern[i % windowPattern.Length]);
            windows[i] = kind switch
            {
                'L' => seqLen,
                'S' => seqLen / 2,
                _ => throw new ArgumentException($"window pattern '{windowPattern}' has '{kind}': only S (half context) and L (full) are known", nameof(windowPattern)),
            };
            hasVe[i] = i % 2 == (depth - 1) % 2;
        }
        return new ModelShape(depth, modelDim, modelDim / HeadDim, vocabSize, seqLen, windows, hasVe);
    }

    /// <summary>
    /// Every parameter tensor in the reference's names and order, with its shape (rows × cols, weights out × in): the layout
    /// shared by the CPU reference, the GPU model and checkpoints.
    /// </summary>
    public IReadOnlyList<(string Name, int Rows, int Cols)> ParameterShapes()
    {
        var list = new List<(string, int, int)> { ("transformer.wte.weight", VocabSize, ModelDim) };
        for (int i = 0; i < Depth; i++)
        {
            list.Add(($"transformer.h.{i}.attn.c_q.weight", ModelDim, ModelDim));
            list.Add(($"transformer.h.{i}.attn.c_k.weight", ModelDim, ModelDim));
            list.Add(($"transformer.h.{i}.attn.c_v.weight", ModelDim, ModelDim));
            list.Add(($"transformer.h.{i}.attn.c_proj.weight", ModelDim, ModelDim));
            if (HasValueEmbedding[i])
                list.Add(($"transformer.h.{i}.attn.ve_gate.weight", Heads, ValueGateWidth));
            list.Add(($"transformer.h.{i}.mlp.c_fc.weight", MlpDim, ModelDim));
            list.Add(($"transformer.h.{i}.mlp.c_proj.weight", ModelDim, MlpDim));
        }
        list.Add(("lm_head.weight", VocabSize, ModelDim));
        list.Add(("resid_lambdas", Depth, 1));
        list.Add(("x0_lambdas", Depth, 1));
        for (int i = 0; i < Depth; i++)
        {
            if (HasValueEmbedding[i])
                list.Add(($"value_embeds.{i}.weight", VocabSize, ModelDim));
        }
        return list;
    }

    /// <summary>
    /// The FLOPs per token used for MFU (SPEC §5): 6 × (all parameters − wte − value embeddings − lambdas) plus
    /// Σ_layers 12 · heads · head_dim · min(W, T).
    /// </summary>
    public double FlopsPerToken()
    {
        long matrices = ParameterShapes()
            .Where(p => !(p.Name == "transformer.wte.weight" || p.Name.StartsWith("value_embeds.", StringComparison.Ordinal)
                || p.Name.EndsWith("lambdas", StringComparison.Ordinal)))
            .Sum(p => (long)p.Rows * p.Cols);
        return 6.0 * matrices + Windows.Sum(w => 12.0 * Heads * HeadDim * Math.Min(w, SeqLen));
    }

    /// <summary>Channels of the normed input that feed the value-embedding gate.</summary>
    public const int ValueGateWidth = 32;
}

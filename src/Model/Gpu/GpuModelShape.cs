namespace AutoResearch.Model.Gpu;

/// <summary>
/// The sizes the GPU model needs (SPEC §5): depth, width, heads of 128, vocabulary, sequence length, and per layer its
/// attention window and whether it has a value embedding.
/// </summary>
public sealed record GpuModelShape(int Depth, int ModelDim, int Heads, int VocabSize, int SeqLen, int[] Windows, bool[] HasValueEmbedding)
{
    public const int HeadDim = 128;

    public int MlpDim => 4 * ModelDim;

    /// <summary>The baseline-style shape from the knobs: windows from a pattern of S (half context) and L (full), the last layer L.</summary>
    public static GpuModelShape FromKnobs(int depth, int aspectRatio, string windowPattern, int vocabSize, int seqLen)
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
        return new GpuModelShape(depth, modelDim, modelDim / HeadDim, vocabSize, seqLen, windows, hasVe);
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model;

/// <summary>
/// The rotary embedding's cos/sin table as the reference builds it (SPEC §5): in fp32, inv_freq[j] = 1 / base^(2j/D),
/// θ = t·inv_freq[j] (one fp32 product), cos θ and sin θ, then rounded to bf16; the forward and the backward both use the
/// rounded values. The CPU reference and the GPU kernels read this one table, so they rotate by the same numbers.
/// Layout [T, D]: cos θ_j at [t, j] and sin θ_j at [t, D/2 + j], j &lt; D/2 (fp32 holding bf16 values).
/// </summary>
public static class RotaryTable
{
    public static float[] CosSin(int seqLen, int headDim, double rotaryBase)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        if (headDim <= 0 || headDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the head size must be positive and even (rotary splits heads in halves)");
        int half = headDim / 2;
        float theta = (float)rotaryBase;
        var invFreq = new float[half];
        for (int j = 0; j < half; j++)
            invFreq[j] = 1.0f / MathF.Pow(theta, (2 * j) / (float)headDim);
        var table = new float[(long)seqLen * headDim];
        for (int t = 0; t < seqLen; t++)
        {
            for (int j = 0; j < half; j++)
            {
                float angle = t * invFreq[j]; // fp32 product, as torch.outer does it
                table[(long)t * headDim + j] = Bf16.Round((float)Math.Cos(angle));
                table[(long)t * headDim + half + j] = Bf16.Round((float)Math.Sin(angle));
            }
        }
        return table;
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model;

/// <summary>
/// The rotary embedding's cos/sin table as the reference builds it (SPEC §5): in fp32, inv_freq[j] = 1 / base^(2j/D),
/// θ = t·inv_freq[j] (one fp32 product), cos θ and sin θ, then rounded to bf16; the forward and the backward both use the
/// rounded values. The CPU reference reads this table and the GPU kernels the same values packed (<see cref="Bf16Pairs"/>),
/// so they rotate by the same numbers. Layout [T, D]: cos θ_j at [t, j] and sin θ_j at [t, D/2 + j], j &lt; D/2 (fp32 holding
/// bf16 values).
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

    /// <summary>
    /// The same values as <see cref="CosSin"/>'s table, packed as every GPU kernel reads them (rotary.cu, the q/k GEMM's
    /// epilogue, the flash backward's k epilogue: a column's cos and sin in one load, half the bytes): [T, D/2] of 32 bits, bf16 cos θ_j in the low half and bf16 sin θ_j in the high half (exact: the table holds bf16 values).
    /// </summary>
    public static uint[] Bf16Pairs(float[] cosSin, int seqLen, int headDim)
    {
        ArgumentNullException.ThrowIfNull(cosSin);
        if ((long)seqLen * headDim != cosSin.Length)
            throw new ArgumentException($"a rotary table of T {seqLen} × D {headDim} has {(long)seqLen * headDim} values; got {cosSin.Length}", nameof(cosSin));
        int half = headDim / 2;
        var pairs = new uint[(long)seqLen * half];
        for (int t = 0; t < seqLen; t++)
        {
            for (int j = 0; j < half; j++)
            {
                uint cos = Bf16.FromFloat(cosSin[(long)t * headDim + j]), sin = Bf16.FromFloat(cosSin[(long)t * headDim + half + j]);
                pairs[(long)t * half + j] = cos | (sin << 16);
            }
        }
        return pairs;
    }
}

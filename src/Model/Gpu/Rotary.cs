using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/rotary.cu: rotary embedding fused with QK-norm (head dim 128), in place.</summary>
public sealed class Rotary
{
    public const int HeadDim = 128;

    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;

    public Rotary(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load("rotary.cu");
        _forward = module.GetKernel("rotary_qknorm_forward");
        _backward = module.GetKernel("rotary_qknorm_backward");
    }

    /// <summary>
    /// The [T, 128] table the kernels read: cos θ_j at [t, j] and sin θ_j at [t, 64 + j], θ_j = t·base^(−2j/128), computed in
    /// fp64 and stored fp32.
    /// </summary>
    public static float[] CosSinTable(int seqLen, double theta = 10000)
    {
        var table = new float[seqLen * HeadDim];
        for (int t = 0; t < seqLen; t++)
        {
            for (int j = 0; j < HeadDim / 2; j++)
            {
                double angle = t * Math.Pow(theta, -2.0 * j / HeadDim);
                table[t * HeadDim + j] = (float)Math.Cos(angle);
                table[t * HeadDim + HeadDim / 2 + j] = (float)Math.Sin(angle);
            }
        }
        return table;
    }

    /// <summary>x ← norm(rotate(x)) per (token, head) vector; rstd kept for backward. rows = B·T·H.</summary>
    public void Forward(ulong x /* [B·T, H, 128] bf16, in place */, ulong cosSin /* [T, 128] fp32 */, int rows, int heads, int seqLen,
        ulong rstd /* [B·T·H] fp32 */, CudaStream stream)
        => _forward.Launch(KernelLaunch.RowBlocks(rows), KernelLaunch.RowBlock, 0, stream, x, cosSin, rstd, rows, heads, seqLen);

    /// <summary>dy ← dL/dx from dy = dL/dy, the forward output y and rstd.</summary>
    /// <param name="dyRowStride">Elements from one token's row of dy to the next (0: dense, H·128).</param>
    /// <param name="dyAccumulator">When not 0, dL/dy is read from the flash backward's fp32 dq accumulator
    /// (returned by <see cref="IAttentionKernels.Backward"/>) instead of dy; the result still goes to dy.</param>
    public void Backward(ulong y /* [B·T, H, 128] bf16 */, ulong rstd /* [B·T·H] fp32 */, ulong dy /* [B·T, H, 128] bf16, in place */,
        ulong cosSin, int rows, int heads, int seqLen, CudaStream stream, int dyRowStride = 0, ulong dyAccumulator = 0)
        => _backward.Launch(KernelLaunch.RowBlocks(rows), KernelLaunch.RowBlock, 0, stream, y, rstd, dy, cosSin, rows, heads, seqLen,
            (long)(dyRowStride == 0 ? heads * 128 : dyRowStride), dyAccumulator);
}

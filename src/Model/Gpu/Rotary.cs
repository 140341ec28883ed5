using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/rotary.cu: rotary embedding fused with QK-norm, in place, for one head size (compiled with
/// -DHEAD_DIM). The rotary table is <see cref="RotaryTable.Bf16Pairs"/>'s (cos, sin) pairs, uploaded by the caller.
/// </summary>
public sealed class Rotary
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source(int headDim) => new("rotary.cu", [$"-DHEAD_DIM={headDim}"]);

    public Rotary(KernelCache kernels, int headDim)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        if (!ModelShape.SupportedHeadDims.Contains(headDim))
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"the rotary kernels are built for head sizes {string.Join(", ", ModelShape.SupportedHeadDims)}");
        HeadDim = headDim;
        var module = kernels.Load(Source(headDim));
        _forward = module.GetKernel("rotary_qknorm_forward");
        _backward = module.GetKernel("rotary_qknorm_backward");
        // The kernel file says how many vectors a 256-thread block covers; a version of it from before that export (the
        // kernel benchmarks' --before) took one vector per warp.
        RowsPerBlock = module.TryReadInt32("rotary_rows_per_block") ?? KernelLaunch.RowsPerBlock;
    }

    public int HeadDim { get; }

    /// <summary>Vectors (rows of D) one block of <see cref="KernelLaunch.RowBlock"/> threads handles.</summary>
    public int RowsPerBlock { get; }

    private uint Blocks(int rows) => Dim3.Blocks(rows, RowsPerBlock);

    // 16-byte loads and stores of every vector.
    private static void RequireAligned(ulong pointer, string name)
    {
        if (pointer % 16 != 0)
            throw new ArgumentException($"{name} must be 16-byte aligned for the rotary kernels; got 0x{pointer:x}", name);
    }

    /// <summary>x ← norm(rotate(x)) per (token, head) vector; rstd kept for backward. rows = B·T·heads.</summary>
    public void Forward(ulong x /* [B·T, heads, D] bf16, in place */, ulong cosSinPairs /* [T, D/2] bf16 pairs */, int rows, int heads,
        int seqLen, ulong rstd /* [B·T·heads] fp32 */, CudaStream stream)
    {
        RequireAligned(x, nameof(x));
        RequireAligned(cosSinPairs, nameof(cosSinPairs));
        _forward.Launch(Blocks(rows), KernelLaunch.RowBlock, 0, stream, x, cosSinPairs, rstd, rows, heads, seqLen);
    }

    /// <summary>dy ← dL/dx from dy = dL/dy, the forward output y and rstd.</summary>
    /// <param name="dyRowStride">Elements from one token's row of dy to the next (0: dense, heads·D).</param>
    /// <param name="dyAccumulator">When not 0, dL/dy is read from the flash backward's fp32 dq accumulator
    /// (returned by <see cref="IAttentionKernels.Backward"/>) instead of dy; the result still goes to dy.</param>
    public void Backward(ulong y /* [B·T, heads, D] bf16 */, ulong rstd /* [B·T·heads] fp32 */, ulong dy /* [B·T, heads, D] bf16, in place */,
        ulong cosSinPairs /* [T, D/2] bf16 pairs */, int rows, int heads, int seqLen, CudaStream stream, int dyRowStride = 0,
        ulong dyAccumulator = 0)
    {
        RequireAligned(y, nameof(y));
        RequireAligned(cosSinPairs, nameof(cosSinPairs));
        RequireAligned(dy, nameof(dy));
        if (dyRowStride != 0)
            KernelLaunch.RequireMultipleOf8(dyRowStride, nameof(dyRowStride));
        _backward.Launch(Blocks(rows), KernelLaunch.RowBlock, 0, stream, y, rstd, dy, cosSinPairs, rows, heads, seqLen,
            (long)(dyRowStride == 0 ? heads * HeadDim : dyRowStride), dyAccumulator);
    }
}

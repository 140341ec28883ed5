using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/rmsnorm.cu: RMSNorm, the residual mix fused with it, and their backward passes.</summary>
public sealed class RmsNorm
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _mixForward;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _backwardNarrow;
    private readonly CudaKernel _mixBackward;
    private readonly CudaKernel _apply;
    private readonly CudaKernel _normMixBackward;
    private readonly CudaKernel _normMixBackwardNarrow;
    private readonly int _multiprocessors;

    /// <summary>Widest row the fused <see cref="NormMixBackward"/> takes (features kept in registers).</summary>
    public const int FusedBackwardMaxWidth = 1024;

    /// <summary>Widest row <see cref="Backward"/> runs on its narrow kernel (rmsnorm_backward_512: two 8-feature chunks a lane
    /// in registers, 56 registers a thread against the general kernel's 96).</summary>
    public const int NarrowBackwardWidth = 512;

    /// <summary>Whether <see cref="NormMixBackward"/> runs as one pass for rows of <paramref name="width"/> features (else the
    /// norm's and the mix's backward one after the other).</summary>
    public static bool FusesNormMixBackward(int width) => width <= FusedBackwardMaxWidth;

    /// <summary>Whether rows of <paramref name="width"/> features take the backward kernels with two chunks a lane in registers.</summary>
    public static bool TakesNarrowBackward(int width) => width <= NarrowBackwardWidth;

    /// <summary>The whole kernel file, every kernel in one NVRTC run (<c>compile-kernel</c>).</summary>
    public static KernelSource Source() => new("rmsnorm.cu");

    /// <summary>
    /// The three compiles this launcher loads (<c>-DRMSNORM_PART=1..3</c>: the forward passes with the residual mix's backward,
    /// the norm's backward, the fused norm + mix backward): compiled side by side on a cold start, each takes a part of the
    /// whole file's time, which was a start-up's longest compile.
    /// </summary>
    public static IReadOnlyList<KernelSource> Sources() => [Part(1), Part(2), Part(3)];

    private static KernelSource Part(int part) => new("rmsnorm.cu", [$"-DRMSNORM_PART={part}"]);

    public RmsNorm(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var forward = kernels.Load(Part(1));
        _forward = forward.GetKernel("rmsnorm_forward");
        _mixForward = forward.GetKernel("residual_mix_rmsnorm_forward");
        _mixBackward = forward.GetKernel("residual_mix_backward");
        _apply = forward.GetKernel("rmsnorm_apply");
        var backward = kernels.Load(Part(2));
        _backward = backward.GetKernel("rmsnorm_backward");
        _backwardNarrow = backward.GetKernel("rmsnorm_backward_512");
        var normMix = kernels.Load(Part(3));
        _normMixBackward = normMix.GetKernel("rmsnorm_mix_backward");
        _normMixBackwardNarrow = normMix.GetKernel("rmsnorm_mix_backward_512");
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    /// <summary>y = norm(x), rstd kept for backward. With y = 0 only rstd is written (for a GEMM that applies the norm as a row
    /// scale and reads x itself).</summary>
    public void Forward(ulong x /* [n, c] bf16 */, int n, int c, ulong y /* [n, c] bf16 */, ulong rstd /* [n] fp32 */, CudaStream stream)
    {
        CheckWidth(c);
        _forward.Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, x, y, rstd, n, c);
    }

    /// <summary>m = bf16(resid_lambdas[layer]·x + x0_lambdas[layer]·x0); h = norm(m).</summary>
    public void MixForward(ulong x /* [n, c] bf16 */, ulong x0 /* [n, c] bf16 */, ulong residLambdas /* [depth] fp32 */, ulong x0Lambdas /* [depth] fp32 */,
        int layer, int n, int c, ulong mixed /* [n, c] bf16 */, ulong h /* [n, c] bf16 */, ulong rstd /* [n] fp32 */, CudaStream stream)
    {
        CheckWidth(c);
        _mixForward.Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, x, x0, residLambdas, x0Lambdas, layer, mixed, h, rstd, n, c);
    }

    /// <summary>y = x·rstd from a kept rstd: a norm's output recomputed instead of stored.</summary>
    public void Apply(ulong x /* [n, c] bf16 */, ulong rstd /* [n] fp32 */, int n, int c, ulong y /* [n, c] bf16 */, CudaStream stream)
    {
        CheckWidth(c);
        _apply.Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, x, rstd, y, n, c);
    }

    /// <summary>dx = (or +=) rstd·(dy − x̂·mean(dy·x̂)), summed in fp32 and rounded once. dy is fp32, or bf16 with
    /// <paramref name="dyType"/> = Bf16 (a gradient that left a bf16 GEMM, as under the reference's autocast); dx is fp32, or bf16
    /// with <paramref name="dxType"/> = Bf16 (the residual gradient, bf16 as in the reference). dx may be dy itself (same type: the
    /// embedding norm's backward runs in place on the bf16 x0 gradient).</summary>
    /// <param name="dyScaledByRstd">dy arrives as rstd·dy (the gradient of a GEMM that applied the norm as a row scale, e.g.
    /// <see cref="MlpGemm"/>'s): dx (+)= dy' − rstd²·x·mean(dy'·x), the same dx.</param>
    public void Backward(ulong x /* [n, c] bf16 */, ulong rstd /* [n] fp32 */, ulong dy /* [n, c] */, int n, int c, ulong dx /* [n, c] */,
        bool accumulate, CudaStream stream, ElementType dyType = ElementType.F32, ElementType dxType = ElementType.F32,
        bool dyScaledByRstd = false)
    {
        CheckWidth(c);
        if (dx == dy && dxType != dyType)
            throw new ArgumentException($"dx may be dy itself only with the same element type (dy {dyType}, dx {dxType}).", nameof(dx));
        // Rows of up to 512 features take the kernel whose registers hold two chunks a lane, not four (twice the blocks an SM).
        (TakesNarrowBackward(c) ? _backwardNarrow : _backward).Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, x, rstd, dy, dx,
            accumulate ? 1 : 0, n, c, dyType == ElementType.Bf16 ? 1 : 0, dxType == ElementType.Bf16 ? 1 : 0, dyScaledByRstd ? 1 : 0);
    }

    /// <summary>
    /// From g = dL/dm (bf16): dx = rl·g (bf16; may alias g), dx0 += xl·g (bf16, the sum in fp32), and the two lambdas' gradients
    /// accumulated.
    /// With dx = 0 (layer 0, whose x is x0 itself) the whole gradient joins x0's: dx0 += xl·g, then += rl·g.
    /// </summary>
    public void MixBackward(ulong g /* [n, c] bf16 */, ulong x /* [n, c] bf16 */, ulong x0 /* [n, c] bf16 */, ulong residLambdas, ulong x0Lambdas, int layer,
        long count, ulong dx /* [n, c] bf16, or 0 */, ulong dx0 /* [n, c] bf16, accumulated */, ulong dResidLambdas /* [depth] fp32 */,
        ulong dX0Lambdas /* [depth] fp32 */, CudaStream stream)
        => _mixBackward.Launch(KernelLaunch.ElementwiseBlocks(count, _multiprocessors), KernelLaunch.RowBlock, 0, stream,
            g, x, x0, residLambdas, x0Lambdas, layer, dx, dx0, dResidLambdas, dX0Lambdas, count);

    /// <summary>
    /// A layer's first norm and its residual mix backward in one pass (m = mix, h = norm(m)): gt = g + the norm's backward of
    /// dy = dL/dh (bf16), in fp32; then g = rl·gt (bf16, in place), dx0 += xl·gt, and the lambdas' gradients accumulated. With
    /// <paramref name="foldIntoX0"/> (layer 0, whose x is x0 itself) dx0 += xl·gt, then += rl·gt, and g is not written (dead).
    /// Equals <see cref="Backward"/> (accumulating into g) followed by <see cref="MixBackward"/>, with one read of g instead of
    /// two and gt not rounded to bf16 between them. Rows of up to <see cref="FusedBackwardMaxWidth"/> features; wider rows take
    /// the two kernels, which round gt to bf16 in g between them (and leave it there when folding). With m = 0 the fused kernel recomputes m from x and x0 (bit for bit the forward's), so m need not be kept.
    /// </summary>
    public void NormMixBackward(ulong m /* [n, c] bf16 */, ulong rstd /* [n] fp32 */, ulong dy /* [n, c] bf16 */, ulong g /* [n, c] bf16 */,
        ulong x /* [n, c] bf16 */, ulong x0 /* [n, c] bf16 */, ulong residLambdas, ulong x0Lambdas, int layer, int n, int c,
        ulong dx0 /* [n, c] bf16, accumulated */, ulong dResidLambdas, ulong dX0Lambdas, CudaStream stream, bool foldIntoX0 = false)
    {
        CheckWidth(c);
        if (!FusesNormMixBackward(c))
        {
            if (m == 0)
                throw new ArgumentException($"rows wider than {FusedBackwardMaxWidth} features ({c}) need the kept mix m; only the fused kernel recomputes it.", nameof(m));
            Backward(m, rstd, dy, n, c, g, accumulate: true, stream, ElementType.Bf16, ElementType.Bf16);
            MixBackward(g, x, x0, residLambdas, x0Lambdas, layer, (long)n * c, foldIntoX0 ? 0 : g, dx0, dResidLambdas, dX0Lambdas, stream);
            return;
        }
        // A bounded grid (the lambdas' sums take one atomic per block); each warp strides over rows.
        uint blocks = Math.Min(KernelLaunch.RowBlocks(n), 8u * (uint)_multiprocessors);
        // Rows of up to 512 features take the kernel whose registers hold two chunks a lane, as Backward does.
        (TakesNarrowBackward(c) ? _normMixBackwardNarrow : _normMixBackward).Launch(blocks, KernelLaunch.RowBlock, 0, stream, m, rstd, dy, g, x, x0, residLambdas, x0Lambdas, layer,
            dx0, dResidLambdas, dX0Lambdas, foldIntoX0 ? 1 : 0, n, c);
    }

    private static void CheckWidth(int c)
    {
        KernelLaunch.RequireMultipleOf8(c, nameof(c));
        if (c > 4096)
            throw new ArgumentOutOfRangeException(nameof(c), c, "the norm kernels take rows of at most 4096 features");
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/cross_entropy.cu: soft-capped cross-entropy over a chunk of bf16 logits (fp32 math), with its gradient.</summary>
public sealed class CrossEntropy
{
    /// <summary>The soft cap of SPEC §5: logits = 15·tanh(logits/15).</summary>
    public const float SoftCap = 15f;

    private readonly CudaKernel _loss;
    private readonly CudaKernel _sum;

    public CrossEntropy(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load("cross_entropy.cu");
        _loss = module.GetKernel("softcap_cross_entropy");
        _sum = module.GetKernel("sum_f32");
    }

    /// <summary>
    /// Per-row losses (0 for target −1) and, unless <paramref name="dlogits"/> is 0, dL/dlogits·<paramref name="gradScale"/> in bf16.
    /// </summary>
    public void Forward(ulong logits /* [rows, vocab] bf16 */, ulong targets /* [rows] int32 */, int rows, int vocab, float gradScale,
        ulong losses /* [rows] fp32 */, ulong dlogits /* [rows, vocab] bf16 or 0 */, CudaStream stream, float cap = SoftCap)
        => _loss.Launch((uint)rows, KernelLaunch.RowBlock, 0, stream, logits, targets, rows, vocab, cap, gradScale, losses, dlogits);

    /// <summary>total[0] += Σ values (the caller zeroes total first).</summary>
    public void Sum(ulong values /* [count] fp32 */, long count, ulong total /* [1] fp32 */, CudaStream stream)
        => _sum.Launch(KernelLaunch.ElementwiseBlocks(count), KernelLaunch.RowBlock, 0, stream, values, count, total);
}

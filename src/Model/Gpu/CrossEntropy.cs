using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/cross_entropy.cu: cross-entropy over a chunk of bf16 logits (fp32 math), soft-capped (z = cap·tanh(l/cap))
/// or, with cap 0, plain; with its gradient.
/// </summary>
public sealed class CrossEntropy
{
    /// <summary>The soft cap of SPEC §5: logits = 15·tanh(logits/15).</summary>
    public const float SoftCap = 15f;

    private readonly CudaKernel _loss;
    private readonly CudaKernel _plainLoss;
    private readonly CudaKernel _sum;
    private readonly int _multiprocessors;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source() => new("cross_entropy.cu");

    public CrossEntropy(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load(Source());
        _loss = module.GetKernel("softcap_cross_entropy");
        _plainLoss = module.GetKernel("plain_cross_entropy");
        _sum = module.GetKernel("sum_f32");
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    /// <summary>
    /// Per-row losses (0 for target −1) and, unless <paramref name="dlogits"/> is 0, dL/dlogits·<paramref name="gradScale"/> in bf16.
    /// </summary>
    public void Forward(ulong logits /* [rows, vocab] bf16 */, ulong targets /* [rows] int32 */, int rows, int vocab, float gradScale,
        ulong losses /* [rows] fp32 */, ulong dlogits /* [rows, vocab] bf16 or 0 */, CudaStream stream, float cap = SoftCap)
    {
        if (!(cap >= 0) || float.IsInfinity(cap))
            throw new ArgumentOutOfRangeException(nameof(cap), cap, "the soft cap must be 0 (off) or a positive finite number");
        if (cap == 0)
            _plainLoss.Launch((uint)rows, KernelLaunch.RowBlock, 0, stream, logits, targets, rows, vocab, gradScale, losses, dlogits);
        else
            _loss.Launch((uint)rows, KernelLaunch.RowBlock, 0, stream, logits, targets, rows, vocab, cap, gradScale, losses, dlogits);
    }

    /// <summary>total[0] += Σ values (the caller zeroes total first).</summary>
    public void Sum(ulong values /* [count] fp32 */, long count, ulong total /* [1] fp32 */, CudaStream stream)
        => _sum.Launch(KernelLaunch.ElementwiseBlocks(count, _multiprocessors), KernelLaunch.RowBlock, 0, stream, values, count, total);
}

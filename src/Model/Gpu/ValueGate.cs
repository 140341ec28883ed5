using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/value_gate.cu: v += 2·sigmoid(x[:, :32]·Wgᵀ)·VE[ids] per head, and its gradients.</summary>
public sealed class ValueGate
{
    public const int GateWidth = 32;
    public const int MaxHeads = 8;

    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;

    public ValueGate(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load("value_gate.cu");
        _forward = module.GetKernel("value_gate_forward");
        _backward = module.GetKernel("value_gate_backward");
    }

    public void Forward(ulong x /* [n, c] bf16 */, ulong wg /* [heads, 32] bf16 */, ulong ids /* [n] int32 */, ulong ve /* [vocab, heads·128] bf16 */,
        int n, int heads, int c, ulong v /* [n, heads·128] bf16, updated */, ulong gate /* [n, heads] fp32 */, CudaStream stream)
    {
        Check(heads, c);
        _forward.Launch(KernelLaunch.RowBlocks((long)n * heads), KernelLaunch.RowBlock, 0, stream, x, wg, ids, ve, v, gate, n, heads, c);
    }

    /// <summary>dve += g·dv (scatter), dwg += Σ dz·x, dx[:, :32] += Σ_h dz·wg; all fp32, accumulated.</summary>
    public void Backward(ulong gate /* [n, heads] fp32 */, ulong dv /* [n, heads·128] bf16 */, ulong ids, ulong ve, ulong x, ulong wg,
        int n, int heads, int c, ulong dve /* [vocab, heads·128] fp32 */, ulong dwg /* [heads, 32] fp32 */, ulong dx /* [n, c] fp32 */, CudaStream stream,
        int dvRowStride = 0)
    {
        Check(heads, c);
        KernelLaunch.RequireAligned(dve, 16, nameof(dve));
        KernelLaunch.RequireAligned(dv, 8, nameof(dv));
        if (dvRowStride % 4 != 0)
            throw new ArgumentException($"dvRowStride must be a multiple of 4 (8-byte reads), got {dvRowStride}.", nameof(dvRowStride));
        _backward.Launch(Math.Min(KernelLaunch.RowBlocks(n), 132u * 16), KernelLaunch.RowBlock, 0, stream, gate, dv, ids, ve, x, wg, dve, dwg, dx, n, heads, c,
            (long)(dvRowStride == 0 ? heads * 128 : dvRowStride));
    }

    private static void Check(int heads, int c)
    {
        if (heads < 1 || heads > MaxHeads)
            throw new ArgumentOutOfRangeException(nameof(heads), heads, $"the value gate kernels take 1..{MaxHeads} heads");
        if (c < GateWidth)
            throw new ArgumentOutOfRangeException(nameof(c), c, $"the model width must be at least the gate width {GateWidth}");
    }
}

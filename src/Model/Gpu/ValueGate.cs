using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/value_gate.cu: v += 2·sigmoid(x[:, :32]·Wgᵀ)·VE[ids] per kv head, and its gradients; compiled for one
/// head size and kv-head count (-DHEAD_DIM, -DGATE_HEADS), so any number of heads a model has works.
/// </summary>
public sealed class ValueGate
{
    public const int GateWidth = ModelShape.ValueGateWidth;

    /// <summary>The widest kv row (kv heads × head size) <see cref="Backward"/> takes in grouped order (a run's sum in registers,
    /// a lane's share of the row); wider rows are added to dve a token at a time.</summary>
    public const int MaxGroupedWidth = 1024;

    /// <summary>Whether <see cref="Backward"/> takes kv rows of <paramref name="kvHeads"/> heads of <paramref name="headDim"/> in
    /// grouped order when given one.</summary>
    public static bool TakesGroupedOrder(int kvHeads, int headDim) => kvHeads * headDim <= MaxGroupedWidth;

    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _backwardGrouped;
    private readonly int _multiprocessors;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source(int headDim, int kvHeads) => new("value_gate.cu", [$"-DHEAD_DIM={headDim}", $"-DGATE_HEADS={kvHeads}"]);

    public ValueGate(KernelCache kernels, int headDim, int kvHeads)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        if (!ModelShape.SupportedHeadDims.Contains(headDim))
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"the value gate kernels are built for head sizes {string.Join(", ", ModelShape.SupportedHeadDims)}");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        HeadDim = headDim;
        KvHeads = kvHeads;
        var module = kernels.Load(Source(headDim, kvHeads));
        _forward = module.GetKernel("value_gate_forward");
        _backward = module.GetKernel("value_gate_backward");
        _backwardGrouped = module.GetKernel("value_gate_backward_grouped");
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    public int HeadDim { get; }

    public int KvHeads { get; }

    public void Forward(ulong x /* [n, c] bf16 */, ulong wg /* [KV, 32] bf16 */, ulong ids /* [n] int32 */, ulong ve /* [vocab, KV·D] bf16 */,
        int n, int c, ulong v /* [n, KV·D] bf16, updated */, ulong gate /* [n, KV] fp32 */, CudaStream stream)
    {
        Check(c);
        KernelLaunch.RequireAligned(v, 16, nameof(v)); // rows move in 16-byte chunks
        KernelLaunch.RequireAligned(ve, 16, nameof(ve));
        _forward.Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, x, wg, ids, ve, v, gate, n, c);
    }

    /// <summary>dve += g·dv (scatter) and dwg += Σ dz·x, fp32, accumulated; dx[:, :32] += Σ_h dz·wg into the bf16 dx (the sum in
    /// fp32, rounded once). With <paramref name="order"/> (<see cref="Embedding.GroupTokens"/> of these ids) and kv rows of at most
    /// <see cref="MaxGroupedWidth"/> features, dve's share of each run of equal ids is summed in registers and added once (on at
    /// most <paramref name="maxBlocks"/> blocks where that is positive).</summary>
    public void Backward(ulong gate /* [n, KV] fp32 */, ulong dv /* [n, KV·D] bf16 */, ulong ids, ulong ve, ulong x, ulong wg,
        int n, int c, ulong dve /* [vocab, KV·D] fp32 */, ulong dwg /* [KV, 32] fp32 */, ulong dx /* [n, c] bf16 */, CudaStream stream,
        int dvRowStride = 0, ulong order = 0 /* [n] int32, or none */, int maxBlocks = 0)
    {
        Check(c);
        KernelLaunch.RequireAligned(dve, 16, nameof(dve));
        KernelLaunch.RequireAligned(dv, 2 * HeadDim / 32, nameof(dv));
        if (dvRowStride % (HeadDim / 32) != 0)
            throw new ArgumentException($"dvRowStride must be a multiple of {HeadDim / 32} (vector reads of a lane's features), got {dvRowStride}.", nameof(dvRowStride));
        long stride = dvRowStride == 0 ? KvHeads * HeadDim : dvRowStride;
        if (order != 0 && TakesGroupedOrder(KvHeads, HeadDim))
            _backwardGrouped.Launch(Embedding.GroupedBlocks(n, _multiprocessors, maxBlocks), KernelLaunch.RowBlock, 0, stream, order, gate, dv, ids, ve, x, wg,
                dve, dwg, dx, n, c, stride);
        else
            _backward.Launch(Math.Min(KernelLaunch.RowBlocks(n), 16u * (uint)_multiprocessors), KernelLaunch.RowBlock, 0, stream, gate, dv, ids, ve, x, wg,
                dve, dwg, dx, n, c, stride);
    }

    private static void Check(int c)
    {
        if (c < GateWidth)
            throw new ArgumentOutOfRangeException(nameof(c), c, $"the model width must be at least the gate width {GateWidth}");
    }
}

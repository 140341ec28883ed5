using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/attention_naive.cu: one warp per query, fp32, any kv grouping; the GPU oracle for the flash kernels.</summary>
public sealed class AttentionNaive : IAttentionKernels
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _finish;
    private readonly int _multiprocessors;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source(int headDim) => new("attention_naive.cu", [$"-DHEAD_DIM={headDim}"]);

    public AttentionNaive(KernelCache kernels, int headDim = 128)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        FlashAttention.CheckHeadDim(headDim);
        HeadDim = headDim;
        var module = kernels.Load(Source(headDim));
        _forward = module.GetKernel("naive_attention_forward");
        _backward = module.GetKernel("naive_attention_backward");
        _finish = module.GetKernel("naive_attention_finish");
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    public int HeadDim { get; }

    /// <summary>fp32 dq [B·T, H, D], then dk and dv [B·T, KV, D].</summary>
    public long BackwardScratchBytes(int batch, int seqLen, int heads, int kvHeads)
        => (long)batch * seqLen * (heads + 2L * kvHeads) * HeadDim * sizeof(float);

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int kvHeads, int window, ulong o, ulong lse, CudaStream stream)
    {
        FlashAttention.CheckHeads(heads, kvHeads);
        _forward.Launch(KernelLaunch.RowBlocks((long)batch * seqLen * heads), KernelLaunch.RowBlock, 0, stream, q, k, v, o, lse, batch, seqLen, heads, kvHeads, window);
    }

    /// <summary>False: the caller runs k's rotary backward itself.</summary>
    public bool FusesKRotaryBackward => false;

    /// <summary>Always writes dq (its fp32 scratch holds dq, dk and dv together).</summary>
    public ulong Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int kvHeads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream, int gradRowStride = 0, bool leaveDqAccumulated = false,
        KRotaryBackward? kRotary = null, bool prepared = false, int accumulator = 0, bool zeroNextAccumulator = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (kRotary is not null)
            throw new NotSupportedException("the naive attention backward does not apply k's rotary backward; run Rotary.Backward on dk after it (FusesKRotaryBackward is false)");
        FlashAttention.CheckHeads(heads, kvHeads);
        long countQ = (long)batch * seqLen * heads * HeadDim, countKv = (long)batch * seqLen * kvHeads * HeadDim;
        stream.Device.MakeCurrent();
        Cuda.cuMemsetD32Async(scratch, 0, (nuint)(countQ + 2 * countKv), stream.Handle).Check();
        _backward.Launch(KernelLaunch.RowBlocks((long)batch * seqLen * heads), KernelLaunch.RowBlock, 0, stream, q, k, v, o, dout, lse, scratch,
            batch, seqLen, heads, kvHeads, window);
        long qStride = gradRowStride == 0 ? (long)heads * HeadDim : gradRowStride;
        long kvStride = gradRowStride == 0 ? (long)kvHeads * HeadDim : gradRowStride;
        _finish.Launch(KernelLaunch.ElementwiseBlocks(countQ, _multiprocessors), KernelLaunch.RowBlock, 0, stream, scratch, dq, dk, dv, countQ, countKv,
            heads, kvHeads, qStride, kvStride);
        return 0;
    }
}

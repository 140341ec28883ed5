using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for the tensor-core flash attention: the forward of kernels/flash_forward.cu and the backward of
/// kernels/flash_backward.cu (prepare D and the fp32 dq accumulator, one CTA per key block, then dq to bf16).
/// The attention the model uses.
/// </summary>
public sealed class FlashAttention : IAttentionKernels
{
    /// <summary>Keys per backward CTA (two warpgroups of 64); query blocks are 64 rows.</summary>
    private const int KeyBlock = 128;
    private const int QueryBlock = 64;
    /// <summary>Threads per backward CTA: two math warpgroups and one for the TMA producer and the dQ writer.</summary>
    private const int BackwardThreads = 384;
    /// <summary>K and V (128 × 128 bf16 each), two stages each of Q and dO (64 × 128 bf16), two dSᵀ buffers (128 × 64 bf16), two dQ
    /// staging tiles (64 × 128 fp32), two stages of lse and D (64 fp32 each), nine mbarriers, and 1 KB to align the tiles to 1024
    /// bytes (BACKWARD_SMEM in the kernel).</summary>
    private const int BackwardSharedBytes = 2 * KeyBlock * 128 * 2 + 4 * QueryBlock * 128 * 2 + 2 * KeyBlock * QueryBlock * 2
        + 2 * QueryBlock * 128 * 4 + 4 * QueryBlock * 4 + 9 * 8 + 1024;

    private readonly FlashForward _forward;
    private readonly CudaKernel _prepare;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _finish;

    public FlashAttention(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        _forward = new FlashForward(kernels);
        var module = kernels.Load("flash_backward.cu");
        _prepare = module.GetKernel("flash_attention_backward_prepare");
        _backward = module.GetKernel("flash_attention_backward");
        _finish = module.GetKernel("flash_attention_backward_finish");
        _backward.SetMaxDynamicSharedMemory(BackwardSharedBytes);
    }

    /// <summary>D [B, H, T] and the dq accumulator [B, H, T, 128] (each row's columns permuted: dq_column in kernels/common.cuh),
    /// both fp32; the accumulator starts at a 256-byte boundary (the kernels access it 16 bytes at a time).</summary>
    public long BackwardScratchBytes(int batch, int seqLen, int heads) => DqAccumOffset((long)batch * seqLen * heads) + 4L * batch * seqLen * heads * 128;

    private static long DqAccumOffset(long rows) => (rows * sizeof(float) + 255) / 256 * 256;

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o, ulong lse, CudaStream stream)
        => _forward.Forward(q, k, v, batch, seqLen, heads, window, o, lse, stream);

    /// <summary>The fp32 dq accumulator inside <paramref name="scratch"/>: [B, H, T, 128], each row's columns permuted (dq_column
    /// in kernels/common.cuh).</summary>
    private static ulong DqAccumulator(ulong scratch, int batch, int seqLen, int heads) => scratch + (ulong)DqAccumOffset((long)batch * seqLen * heads);

    /// <summary>The backward; with <paramref name="leaveDqAccumulated"/>, dq stays in the fp32 accumulator (whose address it
    /// returns) and dq is not written.</summary>
    public ulong Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream, int gradRowStride = 0, bool leaveDqAccumulated = false)
    {
        long gradStride = gradRowStride == 0 ? (long)heads * 128 : gradRowStride;
        long rows = (long)batch * seqLen * heads;
        ulong d = scratch, dqAccum = DqAccumulator(scratch, batch, seqLen, heads);
        _prepare.Launch(KernelLaunch.RowBlocks(rows), KernelLaunch.RowBlock, 0, stream, o, dout, d, dqAccum, batch, seqLen, heads);
        long columns = (long)heads * 128;
        ReadOnlySpan<TensorMap> maps =
        [
            TensorMap.Bf16SwizzledBatched(q, batch, seqLen, columns, QueryBlock, 64),
            TensorMap.Bf16SwizzledBatched(k, batch, seqLen, columns, KeyBlock, 64),
            TensorMap.Bf16SwizzledBatched(v, batch, seqLen, columns, KeyBlock, 64),
            TensorMap.Bf16SwizzledBatched(dout, batch, seqLen, columns, QueryBlock, 64),
        ];
        _backward.Launch(new Dim3(Dim3.Blocks(seqLen, KeyBlock), (uint)(batch * heads)), BackwardThreads, BackwardSharedBytes, stream,
            maps, lse, d, dqAccum, dk, dv, batch, seqLen, heads, window, gradStride);
        if (leaveDqAccumulated)
            return dqAccum;
        _finish.Launch(KernelLaunch.ElementwiseBlocks(rows * 128), KernelLaunch.RowBlock, 0, stream, dqAccum, dq, rows * 128, seqLen, heads, gradStride);
        return 0;
    }
}

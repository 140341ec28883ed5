using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Causal sliding-window attention (head dim 128) as the model calls it: q, k, v, o, dout, dq, dk, dv are [B, T, H, 128] bf16;
/// lse is [B, H, T] fp32 (natural-log log-sum-exp of the scaled scores, written by the forward, read by the backward).
/// </summary>
public interface IAttentionKernels
{
    /// <summary>Device scratch bytes the backward needs for this batch.</summary>
    long BackwardScratchBytes(int batch, int seqLen, int heads);

    void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o, ulong lse, CudaStream stream);

    /// <summary>
    /// dq, dk, dv from the forward's tensors and dout. <paramref name="gradRowStride"/>: elements from one token's row of dq, dk, dv
    /// to the next (0: dense, H·128); e.g. 3·H·128 when they are the thirds of one [B·T, 3·H·128] matrix.
    /// </summary>
    /// <param name="leaveDqAccumulated">The caller can read dq from an fp32 accumulator (the rotary backward can): kernels that
    /// keep one in <paramref name="scratch"/> may leave dq there instead of writing <paramref name="dq"/>.</param>
    /// <returns>0 when dq was written; else the device address of the fp32 accumulator holding it: [B, H, T, 128], each row's
    /// columns permuted (dq_column in kernels/common.cuh).</returns>
    ulong Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream, int gradRowStride = 0, bool leaveDqAccumulated = false);
}

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
    void Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream, int gradRowStride = 0);
}

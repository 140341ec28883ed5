using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Causal sliding-window attention with grouped-query heads, for one head size D (<see cref="HeadDim"/>), as the model calls it:
/// q, o, dout, dq are [B, T, H, D] bf16; k, v, dk, dv are [B, T, KV, D] bf16 (query head h reads kv head h / (H / KV)); lse is
/// [B, H, T] fp32 (natural-log log-sum-exp of the scaled scores, written by the forward, read by the backward).
/// </summary>
public interface IAttentionKernels
{
    /// <summary>The head size the kernels were built for.</summary>
    int HeadDim { get; }

    /// <summary>Device scratch bytes the backward needs for this batch.</summary>
    long BackwardScratchBytes(int batch, int seqLen, int heads, int kvHeads);

    void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int kvHeads, int window, ulong o, ulong lse, CudaStream stream);

    /// <summary>
    /// dq, dk, dv from the forward's tensors and dout. <paramref name="gradRowStride"/>: elements from one token's row of dq, dk,
    /// dv to the next when they are parts of one [B·T, H·D + 2·KV·D] matrix; 0: each dense (H·D for dq, KV·D for dk and dv).
    /// </summary>
    /// <param name="leaveDqAccumulated">The caller can read dq from an fp32 accumulator (the rotary backward can): kernels that
    /// keep one in <paramref name="scratch"/> may leave dq there instead of writing <paramref name="dq"/>.</param>
    /// <param name="kRotary">When given (only where <see cref="FusesKRotaryBackward"/>), k is the rotary + QK-norm forward's
    /// output and dk is written already through that op's backward (<see cref="Rotary.Backward"/> for k): dL/dx of k's
    /// projection, computed from dk in fp32.</param>
    /// <param name="prepared">The caller ran <see cref="PrepareBackward"/> with the same o, dout, shape and scratch on this
    /// stream since the scratch was last used: the backward does not run it again.</param>
    /// <param name="accumulator">For kernels that keep dq accumulators in <paramref name="scratch"/> (<see
    /// cref="AlternatesAccumulators"/>): which one, 0 or 1.</param>
    /// <param name="zeroNextAccumulator">Such kernels also zero the other accumulator, for the next backward on this scratch
    /// (prepared with accumulatorZeroed: true).</param>
    /// <returns>0 when dq was written; else the device address of the fp32 accumulator holding it: [B, H, T, D], each row's
    /// columns permuted (dq_column in kernels/common.cuh).</returns>
    ulong Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int kvHeads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream, int gradRowStride = 0, bool leaveDqAccumulated = false,
        KRotaryBackward? kRotary = null, bool prepared = false, int accumulator = 0, bool zeroNextAccumulator = false);

    /// <summary>
    /// The part of the backward that reads only o and dout (the flash kernels: D = Σ_d o·dout a row, and the fp32 dq accumulator
    /// and tile counter zeroed in <paramref name="scratch"/>), for a caller that runs it apart, before
    /// <see cref="Backward"/> with prepared: true, so that a profile times it apart. Kernels without such a step do nothing.
    /// </summary>
    void PrepareBackward(ulong o, ulong dout, int batch, int seqLen, int heads, ulong scratch, CudaStream stream, int accumulator = 0,
        bool accumulatorZeroed = false)
    {
    }

    /// <summary>Whether the backward keeps two dq accumulators in its scratch and can zero one while it adds to the other (the
    /// accumulator, zeroNextAccumulator and accumulatorZeroed arguments); other kernels ignore those arguments.</summary>
    bool AlternatesAccumulators => false;

    /// <summary>Whether <see cref="Backward"/> takes a <see cref="KRotaryBackward"/> (applies k's rotary + QK-norm backward to
    /// dk as it writes it).</summary>
    bool FusesKRotaryBackward { get; }
}

/// <summary>What the attention backward needs to apply k's rotary + QK-norm backward to dk: k's rstd from the forward
/// ([B·T·KV] fp32) and the rotary table as bf16 (cos, sin) pairs ([T, D/2] of 32 bits, <see cref="RotaryTable.Bf16Pairs"/>).</summary>
public readonly record struct KRotaryBackward(ulong Rstd, ulong CosSinPairs);

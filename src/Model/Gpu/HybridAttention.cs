using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>The flash (tensor-core) forward with the naive backward: the attention the model uses until a flash backward lands.</summary>
public sealed class HybridAttention(KernelCache kernels) : IAttentionKernels
{
    private readonly FlashForward _forward = new(kernels);
    private readonly AttentionNaive _naive = new(kernels);

    public long BackwardScratchBytes(int batch, int seqLen, int heads) => _naive.BackwardScratchBytes(batch, seqLen, heads);

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o, ulong lse, CudaStream stream)
        => _forward.Forward(q, k, v, batch, seqLen, heads, window, o, lse, stream);

    public void Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream)
        => _naive.Backward(q, k, v, o, dout, lse, batch, seqLen, heads, window, dq, dk, dv, scratch, stream);
}

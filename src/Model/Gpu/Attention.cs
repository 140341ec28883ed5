using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Placeholder for the launcher of kernels/attention.cu (causal sliding-window flash attention, head dim 128), which is being
/// written on its own branch; the API below is the one the model is written against.
/// </summary>
public sealed class Attention : IAttentionKernels
{
    public Attention(KernelCache kernels) => ArgumentNullException.ThrowIfNull(kernels);

    public static long ScratchBytes(int batch, int seqLen, int heads) => 4L * batch * seqLen * heads * (1 + 128);

    public long BackwardScratchBytes(int batch, int seqLen, int heads) => ScratchBytes(batch, seqLen, heads);

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o, ulong lse, CudaStream stream)
        => throw new NotSupportedException("the attention kernels are not merged yet");

    public void Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream)
        => throw new NotSupportedException("the attention kernels are not merged yet");
}

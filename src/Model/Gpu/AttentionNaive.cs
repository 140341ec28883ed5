using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/attention_naive.cu: one warp per query, fp32; the GPU oracle for the flash kernels.</summary>
public sealed class AttentionNaive : IAttentionKernels
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _finish;

    public AttentionNaive(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load("attention_naive.cu");
        _forward = module.GetKernel("naive_attention_forward");
        _backward = module.GetKernel("naive_attention_backward");
        _finish = module.GetKernel("naive_attention_finish");
    }

    public long BackwardScratchBytes(int batch, int seqLen, int heads) => 3L * batch * seqLen * heads * 128 * sizeof(float);

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o, ulong lse, CudaStream stream)
        => _forward.Launch(KernelLaunch.RowBlocks((long)batch * seqLen * heads), KernelLaunch.RowBlock, 0, stream, q, k, v, o, lse, batch, seqLen, heads, window);

    /// <summary>Always writes dq (its fp32 scratch holds dq, dk and dv together).</summary>
    public ulong Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream, int gradRowStride = 0, bool leaveDqAccumulated = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        long count = (long)batch * seqLen * heads * 128;
        stream.Device.MakeCurrent();
        Cuda.cuMemsetD32Async(scratch, 0, (nuint)(3 * count), stream.Handle).Check();
        _backward.Launch(KernelLaunch.RowBlocks((long)batch * seqLen * heads), KernelLaunch.RowBlock, 0, stream, q, k, v, o, dout, lse, scratch, batch, seqLen, heads, window);
        _finish.Launch(KernelLaunch.ElementwiseBlocks(count), KernelLaunch.RowBlock, 0, stream, scratch, dq, dk, dv, count, heads,
            (long)(gradRowStride == 0 ? heads * 128 : gradRowStride));
        return 0;
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/relu_square.cu: s = relu(u)² and du = ds·2·relu(u) = ds·2·sqrt(s), from the output s.</summary>
public sealed class ReluSquare
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;

    public ReluSquare(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load("relu_square.cu");
        _forward = module.GetKernel("relu_square_forward");
        _backward = module.GetKernel("relu_square_backward");
    }

    public void Forward(ulong u /* [count] bf16 */, long count, ulong s /* [count] bf16 */, CudaStream stream)
    {
        Check(count);
        _forward.Launch(KernelLaunch.ElementwiseBlocks(count, 8), KernelLaunch.RowBlock, 0, stream, u, s, count);
    }

    public void Backward(ulong s /* [count] bf16: the forward's output */, ulong ds /* [count] bf16 */, long count, ulong du /* [count] bf16, may alias ds */, CudaStream stream)
    {
        Check(count);
        _backward.Launch(KernelLaunch.ElementwiseBlocks(count, 8), KernelLaunch.RowBlock, 0, stream, s, ds, du, count);
    }

    private static void Check(long count)
    {
        if (count <= 0 || count % 8 != 0)
            throw new ArgumentException($"relu² needs a positive element count that is a multiple of 8; got {count}.", nameof(count));
    }
}

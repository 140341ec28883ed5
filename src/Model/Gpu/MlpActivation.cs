using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/mlp_activation.cu: the MLP's activation as element-wise passes (relu², GELU, SwiGLU), for the MLP on
/// cuBLAS GEMMs. What the backward needs from the forward differs: relu² takes its own output s (relu(u) = sqrt(s)), GELU the
/// pre-activation u, SwiGLU the [gate | up] pre-activation z (<see cref="KeepsPreActivation"/>).
/// </summary>
public sealed class MlpActivation
{
    private readonly CudaKernel _relu2Forward;
    private readonly CudaKernel _relu2Backward;
    private readonly CudaKernel _geluForward;
    private readonly CudaKernel _geluBackward;
    private readonly CudaKernel _swigluForward;
    private readonly CudaKernel _swigluBackward;
    private readonly int _multiprocessors;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source() => new("mlp_activation.cu");

    public MlpActivation(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load(Source());
        _relu2Forward = module.GetKernel("relu2_forward");
        _relu2Backward = module.GetKernel("relu2_backward");
        _geluForward = module.GetKernel("gelu_forward");
        _geluBackward = module.GetKernel("gelu_backward");
        _swigluForward = module.GetKernel("swiglu_forward");
        _swigluBackward = module.GetKernel("swiglu_backward");
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    /// <summary>Whether the backward reads the pre-activation (GELU, SwiGLU) rather than the output s (relu²).</summary>
    public static bool KeepsPreActivation(Activation activation) => activation != Activation.Relu2;

    /// <summary>s [n, hidden] = act(u); u is [n, hidden], or [n, 2·hidden] = [gate | up] for SwiGLU. s may not alias u.</summary>
    public void Forward(Activation activation, ulong u, long n, int hidden, ulong s, CudaStream stream)
    {
        long count = Check(n, hidden);
        uint blocks = KernelLaunch.ElementwiseBlocks(count, _multiprocessors, 8);
        switch (activation)
        {
            case Activation.Relu2:
                _relu2Forward.Launch(blocks, KernelLaunch.RowBlock, 0, stream, u, s, count);
                break;
            case Activation.Gelu:
                _geluForward.Launch(blocks, KernelLaunch.RowBlock, 0, stream, u, s, count);
                break;
            case Activation.SwiGlu:
                _swigluForward.Launch(blocks, KernelLaunch.RowBlock, 0, stream, u, s, n, hidden);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation");
        }
    }

    /// <summary>
    /// du = dL/du from ds = dL/ds [n, hidden] and what the forward kept: s for relu² (du [n, hidden], may alias ds), u for
    /// GELU (du [n, hidden], may alias u or ds), z for SwiGLU (du [n, 2·hidden], may alias z).
    /// </summary>
    public void Backward(Activation activation, ulong kept, ulong ds, long n, int hidden, ulong du, CudaStream stream)
    {
        long count = Check(n, hidden);
        uint blocks = KernelLaunch.ElementwiseBlocks(count, _multiprocessors, 8);
        switch (activation)
        {
            case Activation.Relu2:
                _relu2Backward.Launch(blocks, KernelLaunch.RowBlock, 0, stream, kept, ds, du, count);
                break;
            case Activation.Gelu:
                _geluBackward.Launch(blocks, KernelLaunch.RowBlock, 0, stream, kept, ds, du, count);
                break;
            case Activation.SwiGlu:
                _swigluBackward.Launch(blocks, KernelLaunch.RowBlock, 0, stream, kept, ds, du, n, hidden);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation");
        }
    }

    private static long Check(long n, int hidden)
    {
        if (n <= 0 || hidden <= 0 || hidden % 8 != 0)
            throw new ArgumentException($"the activation kernels need n > 0 and a hidden width that is a positive multiple of 8 (16-byte accesses); got n {n}, hidden {hidden}.");
        return n * hidden;
    }
}

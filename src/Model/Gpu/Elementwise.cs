using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/elementwise.cu: fp32 → bf16 casts and fp32 adds.</summary>
public sealed class Elementwise
{
    private readonly CudaKernel _cast;
    private readonly CudaKernel _add;

    public Elementwise(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load("elementwise.cu");
        _cast = module.GetKernel("cast_f32_to_bf16");
        _add = module.GetKernel("add_f32");
    }

    public void CastToBf16(ulong source /* [count] fp32 */, long count, ulong destination /* [count] bf16 */, CudaStream stream)
        => _cast.Launch(KernelLaunch.ElementwiseBlocks(count), KernelLaunch.RowBlock, 0, stream, source, destination, count);

    public void Add(ulong destination /* [count] fp32, += */, ulong source /* [count] fp32 */, long count, CudaStream stream)
        => _add.Launch(KernelLaunch.ElementwiseBlocks(count), KernelLaunch.RowBlock, 0, stream, destination, source, count);
}

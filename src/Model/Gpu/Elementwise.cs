using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/elementwise.cu: fp32 → bf16 casts (the parameters' bf16 copies).</summary>
public sealed class Elementwise
{
    private readonly CudaKernel _cast;
    private readonly int _multiprocessors;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source() => new("elementwise.cu");

    public Elementwise(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        _cast = kernels.Load(Source()).GetKernel("cast_f32_to_bf16");
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    public void CastToBf16(ulong source /* [count] fp32 */, long count, ulong destination /* [count] bf16 */, CudaStream stream)
        => _cast.Launch(KernelLaunch.ElementwiseBlocks(count, _multiprocessors), KernelLaunch.RowBlock, 0, stream, source, destination, count);
}

using System.Collections.Concurrent;
using AutoResearch.Native;
using AutoResearch.Runner.Training;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// The device the kernel benchmarks of this process share (opened on first use, kept until the process ends): one stream,
/// cuBLAS (each GEMM shape's algorithm the fastest of the trainer's 8 cuBLASLt candidates, as in training), and one kernel
/// cache per kernel folder ("current", "before"), all writing cubins to one cache folder (keyed by
/// source, headers and options, so two folders never share a cubin). The first use also measures the device's peaks.
/// </summary>
public sealed class BenchGpu
{
    private static readonly Lazy<BenchGpu> Instance = new(() => new BenchGpu());
    private readonly ConcurrentDictionary<string, KernelCache> _caches = new(StringComparer.Ordinal);

    private BenchGpu()
    {
        Device = CudaDevice.Open(0);
        Stream = new CudaStream(Device);
        Blas = new Blas(Device, Stream) { TuneCandidates = GpuTrainer.GemmCandidates };
        Peaks = DevicePeaks.MeasureOnce(Device, Stream, Blas);
    }

    public static BenchGpu Shared => Instance.Value;

    public CudaDevice Device { get; }

    public CudaStream Stream { get; }

    public Blas Blas { get; }

    public DevicePeaks Peaks { get; }

    /// <summary>The kernel cache for a folder of .cu files, cubins under <paramref name="cubinDirectory"/>.</summary>
    public KernelCache Kernels(string kernelDirectory, string cubinDirectory)
        => _caches.GetOrAdd($"{Path.GetFullPath(kernelDirectory)}\n{Path.GetFullPath(cubinDirectory)}",
            _ => new KernelCache(Device, kernelDirectory, cubinDirectory));
}

using AutoResearch.Native;

namespace AutoResearch.Testing;

/// <summary>
/// The device shared by a test process's GPU tests (opened on first use), a stream, cuBLAS, and a kernel cache in a
/// private temporary folder so the tests never touch the user's cache.
/// </summary>
public static class TestGpu
{
    private static readonly Lazy<CudaDevice> LazyDevice = new(() => CudaDevice.Open(0));
    private static readonly Lazy<CudaStream> LazyStream = new(() => new CudaStream(Device));
    private static readonly Lazy<Blas> LazyBlas = new(() => new Blas(Device, Stream));
    private static readonly Lazy<KernelCache> LazyKernels = new(() => new KernelCache(Device, KernelCache.DefaultKernelDirectory, NewTempDirectory("kernels")));

    public static CudaDevice Device => LazyDevice.Value;

    public static CudaStream Stream => LazyStream.Value;

    public static Blas Blas => LazyBlas.Value;

    public static KernelCache Kernels => LazyKernels.Value;

    /// <summary>A fresh empty folder under the system temp folder.</summary>
    public static string NewTempDirectory(string prefix)
    {
        var path = Path.Combine(Path.GetTempPath(), $"autoresearch-test-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }
}

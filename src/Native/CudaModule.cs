using System.Collections.Concurrent;

namespace AutoResearch.Native;

/// <summary>An owned loaded module (<c>cuModuleLoadData</c> on a cubin or PTX image).</summary>
public sealed unsafe class CudaModule : IDisposable
{
    private readonly CudaDevice _device;
    private readonly ConcurrentDictionary<string, CudaKernel> _kernels = new(StringComparer.Ordinal);
    private IntPtr _handle;

    public CudaModule(CudaDevice device, ReadOnlySpan<byte> image, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        Name = name;
        device.MakeCurrent();
        fixed (byte* p = image)
        {
            var status = Cuda.cuModuleLoadData(out _handle, p);
            if (status != CUresult.CUDA_SUCCESS)
                status.Check($"cuModuleLoadData({name})");
        }
    }

    public string Name { get; }

    public CudaKernel GetKernel(string kernelName)
    {
        ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
        _device.MakeCurrent();
        var status = Cuda.cuModuleGetFunction(out IntPtr f, _handle, kernelName);
        if (status == CUresult.CUDA_ERROR_NOT_FOUND)
            throw new InvalidOperationException($"kernel '{kernelName}' is not in module {Name} (is it declared extern \"C\" __global__?)");
        status.Check($"cuModuleGetFunction({Name}, {kernelName})");
        var kernel = new CudaKernel(_device, f, kernelName);
        _kernels.TryAdd(kernelName, kernel);
        return kernel;
    }

    /// <summary>The kernels asked for so far (<see cref="GetKernel"/>), by name.</summary>
    public IReadOnlyList<CudaKernel> Kernels => [.. _kernels.Values.OrderBy(k => k.Name, StringComparer.Ordinal)];

    /// <summary>
    /// The value of a 32-bit integer the module exports (<c>extern "C" __constant__ int name = ...;</c>): how a kernel file
    /// tells its launcher a size it computes at compile time (e.g. its dynamic shared memory), so the host never mirrors it.
    /// </summary>
    public int ReadInt32(string name)
        => TryReadInt32(name) ?? throw new InvalidOperationException($"module {Name} exports no '{name}' (declare it extern \"C\" __constant__ int)");

    /// <summary>
    /// As <see cref="ReadInt32(string)"/>, or null when the module does not export <paramref name="name"/>: for a launcher
    /// that also runs an older version of its kernel file (the kernel benchmarks' before/after), which predates the value.
    /// </summary>
    public int? TryReadInt32(string name)
    {
        ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
        _device.MakeCurrent();
        var status = Cuda.cuModuleGetGlobal_v2(out ulong address, out nuint bytes, _handle, name);
        if (status == CUresult.CUDA_ERROR_NOT_FOUND)
            return null;
        status.Check($"cuModuleGetGlobal_v2({Name}, {name})");
        if (bytes != sizeof(int))
            throw new InvalidOperationException($"'{name}' in module {Name} has {bytes} bytes; an int32 was expected");
        int value;
        Cuda.cuMemcpyDtoH_v2(&value, address, sizeof(int)).Check();
        return value;
    }

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h == IntPtr.Zero)
            return;
        _device.MakeCurrent();
        Cuda.cuModuleUnload(h).Check();
    }
}

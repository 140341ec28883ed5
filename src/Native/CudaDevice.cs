using System.Text;

namespace AutoResearch.Native;

/// <summary>
/// One GPU and its primary context. Every wrapper that calls the driver makes the context current on its thread first
/// (<see cref="MakeCurrent"/>), so objects can be used from any thread.
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    [ThreadStatic] private static IntPtr t_currentContext;
    private int _disposed;

    private CudaDevice(int ordinal, IntPtr context, DeviceProperties properties, DeviceMemoryTracker memory)
    {
        Ordinal = ordinal;
        Context = context;
        Properties = properties;
        Memory = memory;
    }

    public int Ordinal { get; }

    /// <summary>The retained primary context (borrowed by every object made from this device).</summary>
    public IntPtr Context { get; }

    public DeviceProperties Properties { get; }

    /// <summary>Tracks the bytes allocated through this device's buffers, and their peak.</summary>
    public DeviceMemoryTracker Memory { get; }

    /// <summary>Initialises the driver and counts the devices (0 when the driver reports none).</summary>
    public static int Count()
    {
        NativeLibraries.Ensure(NativeLibraries.Cuda);
        var init = Cuda.cuInit(0);
        if (init == CUresult.CUDA_ERROR_NO_DEVICE)
            return 0;
        init.Check();
        Cuda.cuDeviceGetCount(out int count).Check();
        return count;
    }

    /// <summary>The driver's CUDA version as "major.minor" (e.g. "13.0").</summary>
    public static string DriverCudaVersion()
    {
        NativeLibraries.Ensure(NativeLibraries.Cuda);
        Cuda.cuDriverGetVersion(out int v).Check();
        return $"{v / 1000}.{v % 1000 / 10}";
    }

    /// <summary>The NVIDIA kernel module's version (e.g. "580.95.05") from /proc, or null where it cannot be read.</summary>
    public static string? DriverKernelModuleVersion()
    {
        const string path = "/proc/driver/nvidia/version";
        try
        {
            if (!File.Exists(path))
                return null;
            var match = System.Text.RegularExpressions.Regex.Match(File.ReadAllText(path), @"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)");
            return match.Success ? match.Groups[1].Value : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Opens a device: retains its primary context and makes it current on this thread.</summary>
    public static CudaDevice Open(int ordinal = 0)
    {
        int count = Count();
        if (count == 0)
            throw new InvalidOperationException("no CUDA device found: the driver loaded but reports no GPU.");
        if (ordinal < 0 || ordinal >= count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), $"device {ordinal} does not exist; the driver reports {count} device(s).");
        Cuda.cuDeviceGet(out int dev, ordinal).Check();
        var properties = ReadProperties(ordinal, dev);
        Cuda.cuDevicePrimaryCtxRetain(out IntPtr ctx, dev).Check();
        var device = new CudaDevice(dev, ctx, properties, new DeviceMemoryTracker());
        device.MakeCurrent();
        return device;
    }

    private static DeviceProperties ReadProperties(int ordinal, int dev)
    {
        byte* name = stackalloc byte[256];
        Cuda.cuDeviceGetName(name, 256, dev).Check();
        Cuda.cuDeviceTotalMem_v2(out nuint total, dev).Check();
        int Attr(CUdevice_attribute a)
        {
            Cuda.cuDeviceGetAttribute(out int v, a, dev).Check();
            return v;
        }
        return new DeviceProperties(
            ordinal,
            Encoding.UTF8.GetString(name, new ReadOnlySpan<byte>(name, 256).IndexOf((byte)0)),
            Attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            Attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
            Attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
            (long)total,
            Attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
            Attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
            Attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK));
    }

    /// <summary>Makes this device's context current on the calling thread (cheap when it already is).</summary>
    public void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (t_currentContext == Context)
            return;
        Cuda.cuCtxSetCurrent(Context).Check();
        t_currentContext = Context;
    }

    /// <summary>Waits for all work on the device.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        Cuda.cuCtxSynchronize().Check();
    }

    /// <summary>Free and total device memory as the driver sees it (all processes).</summary>
    public (long FreeBytes, long TotalBytes) MemoryInfo()
    {
        MakeCurrent();
        Cuda.cuMemGetInfo_v2(out nuint free, out nuint total).Check();
        return ((long)free, (long)total);
    }

    /// <summary>The device's PCI address as the driver writes it (e.g. "0000:1A:00.0"), by which NVML finds the same GPU
    /// whatever CUDA_VISIBLE_DEVICES renumbers.</summary>
    public string PciBusId()
    {
        byte* id = stackalloc byte[32];
        Cuda.cuDeviceGetPCIBusId(id, 32, Ordinal).Check();
        return Encoding.ASCII.GetString(id, new ReadOnlySpan<byte>(id, 32).IndexOf((byte)0));
    }

    /// <summary>Allocates an uninitialised device buffer of <paramref name="count"/> elements, owned by <paramref name="owner"/>.</summary>
    public DeviceBuffer<T> Allocate<T>(long count, string owner) where T : unmanaged => new(this, count, owner);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (t_currentContext == Context)
            t_currentContext = IntPtr.Zero;
        // Buffers still alive keep working until the process exits: the primary context is reference-counted by the driver.
        _ = Cuda.cuDevicePrimaryCtxRelease_v2(Ordinal);
    }
}

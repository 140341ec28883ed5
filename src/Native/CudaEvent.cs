namespace AutoResearch.Native;

/// <summary>An owned CUDA event, for timing (<see cref="ElapsedMilliseconds"/>) and stream ordering.</summary>
public sealed class CudaEvent : IDisposable
{
    private readonly CudaDevice _device;
    private IntPtr _handle;

    public CudaEvent(CudaDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        device.MakeCurrent();
        Cuda.cuEventCreate(out _handle, 0).Check();
    }

    public IntPtr Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
            return _handle;
        }
    }

    public void Record(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _device.MakeCurrent();
        Cuda.cuEventRecord(Handle, stream.Handle).Check();
    }

    public void Synchronize()
    {
        _device.MakeCurrent();
        Cuda.cuEventSynchronize(Handle).Check();
    }

    /// <summary>Milliseconds between two recorded events (waits for <paramref name="end"/>).</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        end.Synchronize();
        Cuda.cuEventElapsedTime(out float ms, start.Handle, end.Handle).Check();
        return ms;
    }

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h == IntPtr.Zero)
            return;
        _device.MakeCurrent();
        Cuda.cuEventDestroy_v2(h).Check();
    }
}

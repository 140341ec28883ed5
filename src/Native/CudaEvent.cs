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

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for the work before the recorded event; false if it has not finished by then
    /// (a kernel that hangs fails a test with a message instead of hanging it). Polls every millisecond.
    /// </summary>
    public bool Wait(TimeSpan timeout)
    {
        _device.MakeCurrent();
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            var status = Cuda.cuEventQuery(Handle);
            if (status != CUresult.CUDA_ERROR_NOT_READY)
            {
                status.Check();
                return true;
            }
            if (Environment.TickCount64 >= deadline)
                return false;
            Thread.Sleep(1);
        }
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

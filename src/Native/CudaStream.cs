namespace AutoResearch.Native;

/// <summary>An owned CUDA stream (non-blocking with respect to the legacy default stream).</summary>
public sealed class CudaStream : IDisposable
{
    private const uint CU_STREAM_NON_BLOCKING = 1;
    private readonly CudaDevice _device;
    private IntPtr _handle;

    public CudaStream(CudaDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        device.MakeCurrent();
        Cuda.cuStreamCreate(out _handle, CU_STREAM_NON_BLOCKING).Check();
    }

    public IntPtr Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
            return _handle;
        }
    }

    public CudaDevice Device => _device;

    public void Synchronize()
    {
        _device.MakeCurrent();
        Cuda.cuStreamSynchronize(Handle).Check();
    }

    /// <summary>Makes later work on this stream wait until <paramref name="e"/> has completed.</summary>
    public void Wait(CudaEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        _device.MakeCurrent();
        Cuda.cuStreamWaitEvent(Handle, e.Handle, 0).Check();
    }

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h == IntPtr.Zero)
            return;
        _device.MakeCurrent();
        Cuda.cuStreamDestroy_v2(h).Check();
    }
}

namespace AutoResearch.Native;

/// <summary>Page-locked host memory (<c>cuMemAllocHost_v2</c>) for asynchronous copies; freed on dispose.</summary>
public sealed unsafe class PinnedHostBuffer<T> : IDisposable where T : unmanaged
{
    private readonly CudaDevice _device;
    private void* _pointer;

    public PinnedHostBuffer(CudaDevice device, long count)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        _device = device;
        Length = count;
        device.MakeCurrent();
        Cuda.cuMemAllocHost_v2(out _pointer, (nuint)(count * sizeof(T))).Check();
    }

    public long Length { get; }

    internal void* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    /// <summary>The host memory as a span (valid until dispose; lengths over int.MaxValue are not supported here).</summary>
    public Span<T> Span => new(Pointer, checked((int)Length));

    public void Dispose()
    {
        if (_pointer == null)
            return;
        _device.MakeCurrent();
        Cuda.cuMemFreeHost(_pointer).Check();
        _pointer = null;
    }
}

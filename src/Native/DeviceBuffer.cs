using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>
/// An owned, typed device allocation (<c>cuMemAlloc_v2</c>), counted by the device's <see cref="DeviceMemoryTracker"/>
/// and freed on dispose. <see cref="Owner"/> names what it holds, so errors and reports can say which allocation failed.
/// </summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly CudaDevice _device;
    private ulong _pointer;

    internal DeviceBuffer(CudaDevice device, long count, string owner)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _device = device;
        Length = count;
        Owner = owner;
        Bytes = count * sizeof(T);
        device.MakeCurrent();
        if (Bytes == 0)
            return;
        var status = Cuda.cuMemAlloc_v2(out _pointer, (nuint)Bytes);
        if (status == CUresult.CUDA_ERROR_OUT_OF_MEMORY)
        {
            var (free, total) = device.MemoryInfo();
            throw new DeviceOutOfMemoryException(owner, Bytes, free, total);
        }
        status.Check();
        device.Memory.OnAllocated(Bytes);
    }

    /// <summary>The device address (CUdeviceptr).</summary>
    public ulong Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == 0 && Bytes != 0, this);
            return _pointer;
        }
    }

    public long Length { get; }

    public long Bytes { get; }

    /// <summary>The device that owns the allocation.</summary>
    public CudaDevice Device => _device;

    public string Owner { get; }

    /// <summary>The address of element <paramref name="index"/>.</summary>
    public ulong At(long index) => Pointer + (ulong)(index * sizeof(T));

    /// <summary>
    /// Copies host values in and returns once they are on the device. The copy goes on the legacy stream, which work on a
    /// non-blocking stream is not ordered against either way, and from pageable memory it returns when the driver has staged
    /// it, possibly before it lands: so the context is synchronised before (no queued kernel still reads or writes the buffer)
    /// and after (any kernel launched afterwards, on any stream, reads the new values).
    /// </summary>
    public void CopyFrom(ReadOnlySpan<T> source)
    {
        CheckLength(source.Length);
        CopyFrom(source, 0);
    }

    /// <summary>As <see cref="CopyFrom(ReadOnlySpan{T})"/>, into elements [offset, offset + source.Length) of the buffer.</summary>
    public void CopyFrom(ReadOnlySpan<T> source, long offset)
    {
        if (offset < 0 || offset + source.Length > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"'{Owner}' has {Length} elements; {source.Length} from element {offset} do not fit");
        _device.MakeCurrent();
        Cuda.cuCtxSynchronize().Check();
        fixed (T* p = source)
            Cuda.cuMemcpyHtoD_v2(At(offset), p, (nuint)(source.Length * sizeof(T))).Check();
        Cuda.cuCtxSynchronize().Check();
    }

    /// <summary>Copies the values out once every queued kernel, on any stream, has finished (the legacy stream's copy is not
    /// ordered after work on a non-blocking stream, so the context is synchronised first).</summary>
    public void CopyTo(Span<T> destination)
    {
        CheckLength(destination.Length);
        CopyTo(destination, 0);
    }

    /// <summary>As <see cref="CopyTo(Span{T})"/>, from elements [offset, offset + destination.Length) of the buffer.</summary>
    public void CopyTo(Span<T> destination, long offset)
    {
        if (offset < 0 || offset + destination.Length > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"'{Owner}' has {Length} elements; {destination.Length} from element {offset} are not all in it");
        _device.MakeCurrent();
        Cuda.cuCtxSynchronize().Check();
        fixed (T* p = destination)
            Cuda.cuMemcpyDtoH_v2(p, At(offset), (nuint)(destination.Length * sizeof(T))).Check();
    }

    public T[] ToArray()
    {
        var result = new T[Length];
        CopyTo(result);
        return result;
    }

    /// <summary>Device-to-device copy, ordered like <see cref="CopyFrom(ReadOnlySpan{T})"/> against work on every stream.</summary>
    public void CopyFrom(DeviceBuffer<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckLength(source.Length);
        _device.MakeCurrent();
        Cuda.cuCtxSynchronize().Check();
        Cuda.cuMemcpyDtoD_v2(Pointer, source.Pointer, (nuint)Bytes).Check();
        Cuda.cuCtxSynchronize().Check();
    }

    /// <summary>
    /// Host-to-device copy from ordinary (pageable) memory, ordered on <paramref name="stream"/>: the driver stages the values
    /// before returning, so <paramref name="source"/> may be reused at once, and the device write happens after the work queued
    /// before it on the stream (a plain <see cref="CopyFrom(ReadOnlySpan{T})"/> is ordered only against the legacy stream).
    /// </summary>
    public void CopyFromAsync(ReadOnlySpan<T> source, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CheckLength(source.Length);
        _device.MakeCurrent();
        fixed (T* p = source)
            Cuda.cuMemcpyHtoDAsync_v2(Pointer, p, (nuint)Bytes, stream.Handle).Check();
    }

    /// <summary>Asynchronous host-to-device copy from pinned memory on <paramref name="stream"/>.</summary>
    public void CopyFromAsync(PinnedHostBuffer<T> source, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(stream);
        CheckLength(source.Length);
        _device.MakeCurrent();
        Cuda.cuMemcpyHtoDAsync_v2(Pointer, source.Pointer, (nuint)Bytes, stream.Handle).Check();
    }

    /// <summary>Asynchronous device-to-host copy into pinned memory on <paramref name="stream"/>.</summary>
    public void CopyToAsync(PinnedHostBuffer<T> destination, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(stream);
        CheckLength(destination.Length);
        _device.MakeCurrent();
        Cuda.cuMemcpyDtoHAsync_v2(destination.Pointer, Pointer, (nuint)Bytes, stream.Handle).Check();
    }

    /// <summary>Sets every byte to <paramref name="value"/> (e.g. 0xFF to poison outputs before a test): in order on
    /// <paramref name="stream"/>, or without one done on return and ordered against work on every stream, like
    /// <see cref="CopyFrom(ReadOnlySpan{T})"/> (a memset on the legacy stream is neither by itself: a kernel queued next on a
    /// non-blocking stream could run before it and have its output overwritten).</summary>
    public void FillBytes(byte value, CudaStream? stream = null)
    {
        _device.MakeCurrent();
        if (stream is null)
        {
            Cuda.cuCtxSynchronize().Check();
            Cuda.cuMemsetD8_v2(Pointer, value, (nuint)Bytes).Check();
            Cuda.cuCtxSynchronize().Check();
        }
        else
            Cuda.cuMemsetD8Async(Pointer, value, (nuint)Bytes, stream.Handle).Check();
    }

    /// <summary>Sets every element to <paramref name="value"/> (4-byte element types only), ordered as <see cref="FillBytes"/>.</summary>
    public void Fill(T value, CudaStream? stream = null)
    {
        if (sizeof(T) != 4)
            throw new NotSupportedException($"Fill needs a 4-byte element type; {typeof(T).Name} has {sizeof(T)} bytes.");
        uint bits = MemoryMarshal.Cast<T, uint>(new ReadOnlySpan<T>(ref value))[0];
        _device.MakeCurrent();
        if (stream is null)
        {
            Cuda.cuCtxSynchronize().Check();
            Cuda.cuMemsetD32_v2(Pointer, bits, (nuint)Length).Check();
            Cuda.cuCtxSynchronize().Check();
        }
        else
            Cuda.cuMemsetD32Async(Pointer, bits, (nuint)Length, stream.Handle).Check();
    }

    private void CheckLength(long other)
    {
        if (other != Length)
            throw new ArgumentException($"length mismatch for '{Owner}': the device buffer has {Length} elements, the other side {other}.");
    }

    public void Dispose()
    {
        var p = Interlocked.Exchange(ref _pointer, 0);
        if (p == 0)
            return;
        _device.MakeCurrent();
        Cuda.cuMemFree_v2(p).Check();
        _device.Memory.OnFreed(Bytes);
    }
}

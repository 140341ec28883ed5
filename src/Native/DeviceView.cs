namespace AutoResearch.Native;

/// <summary>
/// A borrowed, typed range of device memory: <see cref="Length"/> elements from <see cref="Pointer"/>, inside a
/// <see cref="DeviceBuffer{T}"/> that someone else owns (for example a scratch tensor placed in an activation buffer that is
/// dead by the time the scratch is used). Owns nothing; frees nothing.
/// </summary>
public readonly record struct DeviceView<T>(ulong Pointer, long Length) where T : unmanaged
{
    /// <summary>The whole of <paramref name="buffer"/>.</summary>
    public static DeviceView<T> Of(DeviceBuffer<T> buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return new(buffer.Pointer, buffer.Length);
    }

    /// <summary>
    /// <paramref name="length"/> elements of type <typeparamref name="T"/> starting <paramref name="byteOffset"/> bytes into
    /// <paramref name="buffer"/> (of any element type); throws when they do not fit.
    /// </summary>
    public static unsafe DeviceView<T> Inside<TBuffer>(DeviceBuffer<TBuffer> buffer, long byteOffset, long length) where TBuffer : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfNegative(byteOffset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (byteOffset + length * sizeof(T) > buffer.Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(length),
                $"{length} elements of {sizeof(T)} bytes at byte {byteOffset} do not fit in '{buffer.Owner}' ({buffer.Bytes} bytes)");
        }
        return new(buffer.Pointer + (ulong)byteOffset, length);
    }

    /// <summary>The address of element <paramref name="index"/>.</summary>
    public unsafe ulong At(long index) => Pointer + (ulong)(index * sizeof(T));
}

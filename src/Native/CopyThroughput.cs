namespace AutoResearch.Native;

/// <summary>
/// Times a device-to-device copy with device events (warm-ups, then the median): the memory roofline that element-wise
/// kernels are held against (each byte read once and written once, so a copy of n bytes moves 2n). About 3 TB/s on an
/// H100 SXM, 4.3 TB/s on an H200. Used by <c>profile</c> and <c>doctor</c>.
/// </summary>
public static class CopyThroughput
{
    public sealed record Result(long Bytes, double MedianMilliseconds, int Iterations)
    {
        /// <summary>Bytes read plus bytes written per second, in TB/s.</summary>
        public double TerabytesPerSecond => 2.0 * Bytes / (MedianMilliseconds * 1e-3) / 1e12;
    }

    /// <summary>Copies <paramref name="bytes"/> between two fresh buffers on <paramref name="stream"/>; the buffers are freed before it returns.</summary>
    public static Result Measure(CudaDevice device, CudaStream stream, long bytes = 1L << 30, int warmups = 3, int iterations = 11)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1L << 20);
        using var source = device.Allocate<byte>(bytes, "copy benchmark source");
        using var destination = device.Allocate<byte>(bytes, "copy benchmark destination");
        source.FillBytes(0x5A, stream);
        double median = EventTiming.MedianMilliseconds(device, stream,
            () => Cuda.cuMemcpyDtoDAsync_v2(destination.Pointer, source.Pointer, (nuint)bytes, stream.Handle).Check(), warmups, iterations);
        return new Result(bytes, median, iterations);
    }
}

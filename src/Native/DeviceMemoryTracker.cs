namespace AutoResearch.Native;

/// <summary>
/// Counts the device bytes allocated through <see cref="DeviceBuffer{T}"/> and keeps the peak: the <c>peak_vram_mb</c>
/// figure of a run. Thread-safe.
/// </summary>
public sealed class DeviceMemoryTracker
{
    private long _currentBytes;
    private long _peakBytes;
    private long _allocations;

    public long CurrentBytes => Interlocked.Read(ref _currentBytes);

    public long PeakBytes => Interlocked.Read(ref _peakBytes);

    /// <summary>Allocations made so far (not counting frees).</summary>
    public long Allocations => Interlocked.Read(ref _allocations);

    public double PeakMegabytes => PeakBytes / (1024.0 * 1024.0);

    public void OnAllocated(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Interlocked.Increment(ref _allocations);
        long now = Interlocked.Add(ref _currentBytes, bytes);
        long peak;
        while (now > (peak = Interlocked.Read(ref _peakBytes)))
        {
            if (Interlocked.CompareExchange(ref _peakBytes, now, peak) == peak)
                break;
        }
    }

    public void OnFreed(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Interlocked.Add(ref _currentBytes, -bytes);
    }

    /// <summary>Starts a new peak measurement from what is allocated now.</summary>
    public void ResetPeak() => Interlocked.Exchange(ref _peakBytes, CurrentBytes);
}

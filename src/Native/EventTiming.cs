namespace AutoResearch.Native;

/// <summary>Timing work on a stream with device events: warm-ups, then the median of the timed runs.</summary>
public static class EventTiming
{
    /// <summary>Runs <paramref name="work"/> (which enqueues on <paramref name="stream"/>) warm-ups + iterations times; the median in ms of the timed ones.</summary>
    public static double MedianMilliseconds(CudaDevice device, CudaStream stream, Action work, int warmups, int iterations)
    {
        ArgumentNullException.ThrowIfNull(work);
        ArgumentOutOfRangeException.ThrowIfNegative(warmups);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        using var start = new CudaEvent(device);
        using var end = new CudaEvent(device);
        var times = new double[iterations];
        for (int i = -warmups; i < iterations; i++)
        {
            start.Record(stream);
            work();
            end.Record(stream);
            float ms = CudaEvent.ElapsedMilliseconds(start, end);
            if (i >= 0)
                times[i] = ms;
        }
        return Median(times);
    }

    /// <summary>The median (the mean of the middle two for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
            throw new ArgumentException("the median of no values is undefined", nameof(values));
        int h = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[h] : (sorted[h - 1] + sorted[h]) / 2;
    }
}

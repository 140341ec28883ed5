using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

[Trait("Category", "GPU")]
public class DeviceAndCopyTests
{
    private static CudaDevice Device => TestGpu.Device;

    [GpuFact]
    public void Device_reports_sane_properties_and_memory()
    {
        var p = Device.Properties;
        Assert.False(string.IsNullOrWhiteSpace(p.Name));
        Assert.True(p.MultiprocessorCount > 0);
        Assert.True(p.ComputeMajor >= 7, $"compute capability {p.ComputeMajor}.{p.ComputeMinor}");
        Assert.True(p.MaxSharedMemoryPerBlockOptIn >= 48 * 1024);
        var (free, total) = Device.MemoryInfo();
        Assert.InRange(free, 1, total);
        Assert.Equal(p.TotalMemoryBytes, total);
        Assert.Matches(@"^\d+\.\d+$", CudaDevice.DriverCudaVersion());
    }

    [GpuFact]
    public void Host_device_round_trip_preserves_every_bit()
    {
        var random = new Random(7);
        var data = Numerics.RandomUniform(random, 1_000_003, 1e3f);
        using var buffer = Device.Allocate<float>(data.Length, "round trip");
        buffer.FillBytes(0xFF);
        buffer.CopyFrom(data);
        Assert.Equal(data, buffer.ToArray());
    }

    [GpuFact]
    public void Device_to_device_copy_and_fill_write_every_element()
    {
        var random = new Random(8);
        var data = Numerics.RandomUniform(random, 65_537);
        using var a = Device.Allocate<float>(data.Length, "a");
        using var b = Device.Allocate<float>(data.Length, "b");
        a.CopyFrom(data);
        b.FillBytes(0xFF);
        b.CopyFrom(a);
        Assert.Equal(data, b.ToArray());
        b.Fill(2.5f);
        Assert.All(b.ToArray(), v => Assert.Equal(2.5f, v));
    }

    [GpuFact]
    public void Async_copies_through_pinned_memory_on_a_stream()
    {
        var random = new Random(9);
        var data = Numerics.RandomUniform(random, 262_144);
        using var stream = new CudaStream(Device);
        using var hostIn = new PinnedHostBuffer<float>(Device, data.Length);
        using var hostOut = new PinnedHostBuffer<float>(Device, data.Length);
        using var buffer = Device.Allocate<float>(data.Length, "async");
        data.CopyTo(hostIn.Span);
        hostOut.Span.Fill(float.NaN);
        buffer.FillBytes(0xFF, stream);
        buffer.CopyFromAsync(hostIn, stream);
        buffer.CopyToAsync(hostOut, stream);
        stream.Synchronize();
        Assert.Equal(data, hostOut.Span.ToArray());
    }

    [GpuFact]
    public void Tracker_counts_allocations_and_frees_and_keeps_the_peak()
    {
        long before = Device.Memory.CurrentBytes;
        using (var big = Device.Allocate<byte>(64 << 20, "tracker test"))
        {
            Assert.Equal(before + (64 << 20), Device.Memory.CurrentBytes);
            Assert.True(Device.Memory.PeakBytes >= before + (64 << 20));
        }
        // Other tests may allocate concurrently: only this allocation's own effect is certain.
        Assert.True(Device.Memory.PeakBytes >= 64 << 20);
    }

    [GpuFact]
    public void Impossible_allocation_names_the_owner_and_free_memory()
    {
        var e = Assert.Throws<DeviceOutOfMemoryException>(() => Device.Allocate<byte>(Device.Properties.TotalMemoryBytes * 4, "the giant buffer"));
        Assert.Contains("the giant buffer", e.Message, StringComparison.Ordinal);
        Assert.Contains("MiB free", e.Message, StringComparison.Ordinal);
    }

    [GpuFact]
    public void Events_time_work_on_a_stream()
    {
        using var stream = new CudaStream(Device);
        using var start = new CudaEvent(Device);
        using var end = new CudaEvent(Device);
        using var buffer = Device.Allocate<byte>(256 << 20, "event timing");
        start.Record(stream);
        for (int i = 0; i < 4; i++)
            buffer.FillBytes((byte)i, stream);
        end.Record(stream);
        float ms = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.InRange(ms, 1e-4f, 10_000f);
    }

    [GpuFact]
    public void Copy_throughput_times_the_copy_itself_not_the_launch()
    {
        using var stream = new CudaStream(Device);
        var small = CopyThroughput.Measure(Device, stream, 64L << 20);
        var large = CopyThroughput.Measure(Device, stream, 1L << 30);
        // 16 times the bytes: the events bracket the copy, not just launch overhead.
        Assert.True(large.MedianMilliseconds > 4 * small.MedianMilliseconds,
            $"1 GiB took {large.MedianMilliseconds:F3} ms, 64 MiB {small.MedianMilliseconds:F3} ms");
        // Between a PCIe card's and beyond any HBM's.
        Assert.InRange(large.TerabytesPerSecond, 0.1, 20.0);
        Assert.Equal(1L << 30, large.Bytes);
    }
}

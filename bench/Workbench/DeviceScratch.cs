using AutoResearch.Native;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// Device buffers owned together and freed together: a check's small tensors (uploaded from the host, or poisoned with NaN
/// so that an element the kernel fails to write is caught), or a benchmark's full-size ones (filled with random values on the
/// device side: a random block of up to 1 M elements, made on the host, repeated over the buffer). The copies and fills run on
/// the legacy default stream, which the benchmarks' non-blocking stream does not wait for: synchronise the device before
/// launching on it (<see cref="KernelBenchmark"/> does).
/// </summary>
public sealed unsafe class DeviceScratch(CudaDevice device) : IDisposable
{
    private const int BlockElements = 1 << 20;
    private readonly List<IDisposable> _owned = [];

    public DeviceBuffer<T> Allocate<T>(long count, string owner) where T : unmanaged
    {
        var buffer = device.Allocate<T>(count, owner);
        _owned.Add(buffer);
        return buffer;
    }

    /// <summary>A buffer holding <paramref name="data"/>.</summary>
    public DeviceBuffer<T> Upload<T>(T[] data, string owner) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(data);
        var buffer = Allocate<T>(data.Length, owner);
        buffer.CopyFrom(data);
        return buffer;
    }

    /// <summary>A buffer of all-ones bytes: NaN as bf16 and as fp32, so every element the kernel leaves unwritten shows.</summary>
    public DeviceBuffer<T> Poisoned<T>(long count, string owner) where T : unmanaged
    {
        var buffer = Allocate<T>(count, owner);
        buffer.FillBytes(0xFF);
        return buffer;
    }

    /// <summary>A bf16 buffer of values uniform in [−scale, scale).</summary>
    public DeviceBuffer<ushort> RandomBf16(long count, int seed, double scale, string owner)
        => Filled(count, seed, r => Bf16.FromFloat((float)((r.NextDouble() * 2 - 1) * scale)), owner);

    /// <summary>An fp32 buffer of values uniform in [−scale, scale).</summary>
    public DeviceBuffer<float> RandomF32(long count, int seed, double scale, string owner)
        => Filled(count, seed, r => (float)((r.NextDouble() * 2 - 1) * scale), owner);

    /// <summary>An int32 buffer of token ids uniform in [0, vocab).</summary>
    public DeviceBuffer<int> RandomIds(long count, int seed, int vocab, string owner) => Filled(count, seed, r => r.Next(vocab), owner);

    private DeviceBuffer<T> Filled<T>(long count, int seed, Func<Random, T> next, string owner) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var buffer = Allocate<T>(count, owner);
        Fill(buffer, seed, next);
        return buffer;
    }

    /// <summary>Fills an fp32 buffer made elsewhere (e.g. a model's parameters) with values uniform in [−scale, scale).</summary>
    public static void FillRandomF32(DeviceBuffer<float> buffer, int seed, double scale)
        => Fill(buffer, seed, r => (float)((r.NextDouble() * 2 - 1) * scale));

    private static void Fill<T>(DeviceBuffer<T> buffer, int seed, Func<Random, T> next) where T : unmanaged
    {
        long count = buffer.Length;
        var random = new Random(seed);
        var block = new T[(int)Math.Min(count, BlockElements)];
        for (int i = 0; i < block.Length; i++)
            block[i] = next(random);
        using var staging = buffer.Device.Allocate<T>(block.Length, $"{buffer.Owner} (random block)");
        staging.CopyFrom(block);
        for (long offset = 0; offset < count; offset += block.Length)
        {
            long elements = Math.Min(block.Length, count - offset);
            Cuda.cuMemcpyDtoD_v2(buffer.At(offset), staging.Pointer, (nuint)(elements * sizeof(T))).Check();
        }
        buffer.Device.Synchronize(); // device-to-device copies return before they finish: done before the block is freed
    }

    /// <summary>Copies <paramref name="count"/> elements from a device address (inside some buffer) to the host.</summary>
    public static T[] Read<T>(CudaDevice device, ulong address, long count) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(device);
        var result = new T[count];
        device.MakeCurrent();
        fixed (T* p = result)
            Cuda.cuMemcpyDtoH_v2(p, address, (nuint)(count * sizeof(T))).Check();
        return result;
    }

    public void Dispose()
    {
        foreach (var b in _owned)
            b.Dispose();
        _owned.Clear();
    }
}

namespace AutoResearch.Native;

/// <summary>
/// Times a bf16 GEMM (fp32 accumulation, bf16 output) on random data with device events: warm-ups first, then the median
/// of the timed runs. Used by <c>doctor</c> and the benchmarks.
/// </summary>
public static class GemmThroughput
{
    public sealed record Result(int M, int N, int K, bool UsesLt, double MedianMilliseconds, int Iterations)
    {
        public double Flops => 2.0 * M * N * K;

        public double TeraflopsPerSecond => Flops / (MedianMilliseconds * 1e-3) / 1e12;
    }

    /// <summary>Measures C[m, n] = A[m, k] · B[n, k]ᵀ (the model's y = x·Wᵀ with W stored out × in).</summary>
    public static Result Measure(CudaDevice device, Blas blas, int m, int n, int k, bool useLt, int warmups = 5, int iterations = 20)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(blas);
        using var a = device.Allocate<ushort>((long)m * k, "GEMM benchmark A");
        using var b = device.Allocate<ushort>((long)n * k, "GEMM benchmark B");
        using var c = device.Allocate<ushort>((long)m * n, "GEMM benchmark C");
        FillRandomBf16(a, 1);
        FillRandomBf16(b, 2);
        double median = EventTiming.MedianMilliseconds(device, blas.Stream, () =>
        {
            if (useLt)
                blas.GemmLt(false, true, m, n, k, 1f, a.Pointer, ElementType.Bf16, k, b.Pointer, ElementType.Bf16, k, 0f, c.Pointer, ElementType.Bf16, n);
            else
                blas.Gemm(false, true, m, n, k, 1f, a.Pointer, ElementType.Bf16, k, b.Pointer, ElementType.Bf16, k, 0f, c.Pointer, ElementType.Bf16, n);
        }, warmups, iterations);
        return new Result(m, n, k, useLt, median, iterations);
    }

    /// <summary>Fills a bf16 buffer with values uniform in [-1, 1): a random 1 M-element block copied over the whole buffer.</summary>
    public static void FillRandomBf16(DeviceBuffer<ushort> buffer, int seed)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        var random = new Random(seed);
        int blockLength = (int)Math.Min(buffer.Length, 1 << 20);
        var block = new ushort[blockLength];
        for (int i = 0; i < block.Length; i++)
            block[i] = Bf16.FromFloat((float)(random.NextDouble() * 2 - 1));
        using var staging = buffer.Device.Allocate<ushort>(blockLength, "random block");
        staging.CopyFrom(block);
        for (long offset = 0; offset < buffer.Length; offset += blockLength)
        {
            long count = Math.Min(blockLength, buffer.Length - offset);
            Cuda.cuMemcpyDtoD_v2(buffer.At(offset), staging.Pointer, (nuint)(count * sizeof(ushort))).Check();
        }
        Cuda.cuCtxSynchronize().Check(); // the legacy stream's copies done before work on a non-blocking stream reads them
    }
}

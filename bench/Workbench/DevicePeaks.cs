using System.Globalization;
using AutoResearch.Native;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// This device's own ceilings, measured once per process before any benchmark allocates, with device events (warm-ups, then
/// the median): the bf16 GEMM rate (the faster of cublasGemmEx and cuBLASLt on an 8192³ product, bf16 in and out, fp32
/// accumulation: as close to the tensor cores' peak as cuBLAS gets) and the device-to-device copy (1 GiB, bytes read plus
/// written). The "% of peak" column holds each kernel against the one that bounds it.
/// </summary>
public sealed record DevicePeaks(string Device, double GemmTeraflops, double CopyTerabytes)
{
    /// <summary>The side of the square GEMM timed.</summary>
    public const int GemmSide = 8192;

    /// <summary>The peaks measured by this process, once a benchmark has asked for them.</summary>
    public static DevicePeaks? Measured { get; private set; }

    private static readonly Lock Gate = new();

    /// <summary>Measures the peaks on first use, then returns the same numbers.</summary>
    public static DevicePeaks MeasureOnce(CudaDevice device, CudaStream stream, Blas blas)
    {
        ArgumentNullException.ThrowIfNull(device);
        lock (Gate)
        {
            if (Measured is not null)
                return Measured;
            double gemm = Math.Max(GemmThroughput.Measure(device, blas, GemmSide, GemmSide, GemmSide, useLt: true).TeraflopsPerSecond,
                GemmThroughput.Measure(device, blas, GemmSide, GemmSide, GemmSide, useLt: false).TeraflopsPerSecond);
            double copy = CopyThroughput.Measure(device, stream).TerabytesPerSecond;
            Measured = new DevicePeaks(device.Properties.ToString(), gemm, copy);
            Console.WriteLine($"// device peaks: {Measured}");
            return Measured;
        }
    }

    /// <summary>The fraction of its ceiling that a rate reaches: FLOP/s against the GEMM rate, bytes/s against the copy.</summary>
    public double Fraction(KernelWork work, double seconds)
        => work.IsCompute ? work.Flops / seconds / (GemmTeraflops * 1e12) : work.Bytes / seconds / (CopyTerabytes * 1e12);

    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture,
            $"{Device}: bf16 GEMM {GemmTeraflops:F0} TFLOP/s ({GemmSide}³, cuBLAS), device-to-device copy {CopyTerabytes:F2} TB/s (1 GiB, read + written)");
}

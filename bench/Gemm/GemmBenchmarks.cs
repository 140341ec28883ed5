using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Gemm;

/// <summary>
/// bf16 GEMMs (fp32 accumulation, bf16 output) at the baseline model's shapes, y[M, N] = x[M, K] · W[N, K]ᵀ, through cuBLAS
/// (cublasGemmEx) and cuBLASLt. Each invocation runs one GEMM and waits for it; the TFLOP/s and roofline columns come from
/// the median (BenchmarkDotNet divides by the GEMMs per invocation). Run on the GPU machine: <c>bench --filter '*GemmBenchmarks*'</c>.
/// </summary>
[Config(typeof(GpuBenchmarkConfig))]
public class GemmBenchmarks
{
    private CudaDevice? _device;
    private CudaStream? _stream;
    private Blas? _blas;
    private DeviceBuffer<ushort>? _x;
    private DeviceBuffer<ushort>? _w;
    private DeviceBuffer<ushort>? _y;
    private int _m, _n, _k;

    /// <summary>M x K x N: tokens (B·T = 128·2048) by input features to output features.</summary>
    [Params("262144x512x2048", "262144x2048x512", "262144x512x512", "32768x512x8192")]
    public string Shape { get; set; } = "262144x512x2048";

    [Params(false, true)]
    public bool CublasLt { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var parts = Shape.Split('x');
        (_m, _k, _n) = (int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture));
        _device = CudaDevice.Open(0);
        _stream = new CudaStream(_device);
        _blas = new Blas(_device, _stream);
        _x = _device.Allocate<ushort>((long)_m * _k, "x");
        _w = _device.Allocate<ushort>((long)_n * _k, "W");
        _y = _device.Allocate<ushort>((long)_m * _n, "y");
        GemmThroughput.FillRandomBf16(_x, 1);
        GemmThroughput.FillRandomBf16(_w, 2);
    }

    /// <summary>GEMMs queued back to back per invocation, so the one synchronisation at the end costs little per GEMM.</summary>
    private const int GemmsPerInvocation = 10;

    [Benchmark(OperationsPerInvoke = GemmsPerInvocation)]
    public void Bf16Gemm()
    {
        for (int i = 0; i < GemmsPerInvocation; i++)
        {
            if (CublasLt)
                _blas!.GemmLt(false, true, _m, _n, _k, 1f, _x!.Pointer, ElementType.Bf16, _k, _w!.Pointer, ElementType.Bf16, _k, 0f, _y!.Pointer, ElementType.Bf16, _n);
            else
                _blas!.Gemm(false, true, _m, _n, _k, 1f, _x!.Pointer, ElementType.Bf16, _k, _w!.Pointer, ElementType.Bf16, _k, 0f, _y!.Pointer, ElementType.Bf16, _n);
        }
        _stream!.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _x?.Dispose();
        _w?.Dispose();
        _y?.Dispose();
        _blas?.Dispose();
        _stream?.Dispose();
        _device?.Dispose();
    }

    /// <summary>FLOPs of one invocation, for the throughput column.</summary>
    public static double FlopsOf(string shape)
    {
        var p = shape.Split('x').Select(s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return 2 * p[0] * p[1] * p[2];
    }
}

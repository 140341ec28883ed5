using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Gemm;

/// <summary>
/// The weight-gradient GEMMs of the baseline's backward, dW[out, in] += dy[n, out]ᵀ·x[n, in] (bf16 operands, fp32 accumulated
/// output, a reduction over all B·T = 262,144 tokens), through cublasGemmEx, cuBLASLt, and cuBLASLt as one strided batch of
/// three (c_q, c_k, c_v at once). Shape = out x n x in. Run on the GPU machine: <c>bench --filter '*WeightGradient*'</c>.
/// </summary>
[Config(typeof(GpuBenchmarkConfig))]
public class WeightGradientBenchmarks
{
    private const int Batch = 3;
    private const int GemmsPerInvocation = 9;

    private CudaDevice? _device;
    private CudaStream? _stream;
    private Blas? _blas;
    private DeviceBuffer<ushort>? _dy;
    private DeviceBuffer<ushort>? _x;
    private DeviceBuffer<float>? _dw;
    private int _out, _n, _in;

    [Params("512x262144x512", "2048x262144x512", "512x262144x2048")]
    public string Shape { get; set; } = "512x262144x512";

    [GlobalSetup]
    public void Setup()
    {
        var p = Shape.Split('x').Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        (_out, _n, _in) = (p[0], p[1], p[2]);
        _device = CudaDevice.Open(0);
        _stream = new CudaStream(_device);
        _blas = new Blas(_device, _stream);
        _dy = _device.Allocate<ushort>((long)Batch * _n * _out, "dy");
        _x = _device.Allocate<ushort>((long)_n * _in, "x");
        _dw = _device.Allocate<float>((long)Batch * _out * _in, "dW");
        GemmThroughput.FillRandomBf16(_dy, 3);
        GemmThroughput.FillRandomBf16(_x, 4);
        _dw.Fill(0f);
    }

    [Benchmark(OperationsPerInvoke = GemmsPerInvocation)]
    public void GemmEx()
    {
        for (int i = 0; i < GemmsPerInvocation; i++)
            _blas!.Gemm(true, false, _out, _in, _n, 1f, _dy!.Pointer, ElementType.Bf16, _out, _x!.Pointer, ElementType.Bf16, _in, 1f, _dw!.Pointer, ElementType.F32, _in);
        _stream!.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = GemmsPerInvocation)]
    public void Lt()
    {
        for (int i = 0; i < GemmsPerInvocation; i++)
            _blas!.GemmLt(true, false, _out, _in, _n, 1f, _dy!.Pointer, ElementType.Bf16, _out, _x!.Pointer, ElementType.Bf16, _in, 1f, _dw!.Pointer, ElementType.F32, _in);
        _stream!.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = GemmsPerInvocation)]
    public void LtBatchOfThree()
    {
        for (int i = 0; i < GemmsPerInvocation / Batch; i++)
        {
            _blas!.GemmLt(true, false, _out, _in, _n, 1f, _dy!.Pointer, ElementType.Bf16, _out, _x!.Pointer, ElementType.Bf16, _in, 1f, _dw!.Pointer, ElementType.F32, _in,
                batchCount: Batch, strideA: (long)_n * _out, strideB: 0, strideC: (long)_out * _in);
        }
        _stream!.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _dy?.Dispose();
        _x?.Dispose();
        _dw?.Dispose();
        _blas?.Dispose();
        _stream?.Dispose();
        _device?.Dispose();
    }
}

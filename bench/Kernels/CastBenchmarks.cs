using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/elementwise.cu (cast_f32_to_bf16): the bf16 copies of all the model's fp32 parameters at once, as
/// <c>GpuParameters.RefreshBf16</c> makes them. Checked bit for bit against round-to-nearest-even on the host, over values
/// of every magnitude. Memory-bound (6 bytes an element). Run: <c>bench --filter '*CastBenchmarks*'</c>.
/// </summary>
public class CastBenchmarks : KernelBenchmark
{
    private const int CheckCount = (1 << 20) + 3;

    private Elementwise _elementwise = null!;
    private ulong _source, _destination;
    private long _count;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "width1024", "width2048");

    protected override void Open() => _elementwise = new Elementwise(KernelFiles);

    [GlobalSetup(Target = nameof(ParametersToBf16))]
    public void SetupCast() => Prepare(nameof(ParametersToBf16), Check, () =>
    {
        // The flat parameter layout: each tensor padded to 64 elements (GpuParameters).
        _count = Shape.ParameterShapes().Sum(p => ((long)p.Rows * p.Cols + 63) / 64 * 64);
        _source = Buffers.RandomF32(_count, 1301, 1, "parameters (fp32)").Pointer;
        _destination = Buffers.Allocate<ushort>(_count, "parameters (bf16)").Pointer;
        return KernelWork.Cast(_count);
    });

    [Benchmark]
    public void ParametersToBf16()
    {
        Begin();
        _elementwise.CastToBf16(_source, _count, _destination, Stream);
        End();
    }

    private KernelCheck Check()
    {
        var check = new KernelCheck("cast_f32_to_bf16", 1302, $"{CheckCount} values, magnitudes 1e-30 to 1e30");
        var r = new Random(check.Seed);
        var values = new float[CheckCount];
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)((r.NextDouble() * 2 - 1) * Math.Pow(10, r.Next(-30, 31)));
        var expected = Array.ConvertAll(values, v => (double)Bf16.Round(v));
        using var s = new DeviceScratch(Device);
        var dSource = s.Upload(values, "fp32");
        var dDestination = s.Poisoned<ushort>(CheckCount, "bf16");
        RunForCheck(() => _elementwise.CastToBf16(dSource.Pointer, CheckCount, dDestination.Pointer, Stream));
        check.CompareBf16("bf16", dDestination.ToArray(), expected, 0);
        return check;
    }
}

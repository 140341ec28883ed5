using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Reference;

/// <summary>
/// SPEC §5's initial weights at the baseline shape (50.3 M values from one seed): the fp64 values of the CPU reference
/// (<see cref="ParameterInitializer.LikeSpec"/>) and the fp32 ones `train` uploads (<see cref="GpuParameters.InitialValues"/>),
/// which a warm start waits for. Run: <c>bench --filter '*InitializerBenchmarks*'</c>.
/// </summary>
[Config(typeof(ShortCpuConfig))]
public class InitializerBenchmarks
{
    private static readonly ModelShape Baseline = ModelShape.FromKnobs(depth: 8, aspectRatio: 64, windowPattern: "SSSL", vocabSize: 8192, seqLen: 2048);

    [Benchmark(Description = "fp64 values (CPU reference)")]
    public int Fp64() => ParameterInitializer.LikeSpec(Baseline, 42).Count;

    [Benchmark(Description = "fp32 values (GPU masters)")]
    public int Fp32() => GpuParameters.InitialValues(Baseline, 42).Count;
}

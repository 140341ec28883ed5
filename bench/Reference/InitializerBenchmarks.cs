using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;

namespace AutoResearch.Bench.Reference;

/// <summary>
/// SPEC §5's initial weights at the baseline shape (50.3 M values from one seed): the fp64 values of the CPU reference
/// (<see cref="ParameterInitializer.LikeSpec"/>) and the fp32 ones `train` uploads (<see cref="GpuParameters.InitialValues"/>),
/// which a warm start waits for. Run: <c>bench --filter '*InitializerBenchmarks*'</c>.
/// </summary>
[Config(typeof(Config))]
public class InitializerBenchmarks
{
    private static readonly ModelShape Baseline = ModelShape.FromKnobs(depth: 8, aspectRatio: 64, windowPattern: "SSSL", vocabSize: 8192, seqLen: 2048);

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.ShortRun.WithToolchain(BenchmarkDotNet.Toolchains.InProcess.Emit.InProcessEmitToolchain.Instance).WithWarmupCount(2).WithIterationCount(5));
            AddColumn(StatisticColumn.Median);
        }
    }

    [Benchmark(Description = "fp64 values (CPU reference)")]
    public int Fp64() => ParameterInitializer.LikeSpec(Baseline, 42).Count;

    [Benchmark(Description = "fp32 values (GPU masters)")]
    public int Fp32() => GpuParameters.InitialValues(Baseline, 42).Count;
}

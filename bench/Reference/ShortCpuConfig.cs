using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;

namespace AutoResearch.Bench.Reference;

/// <summary>The CPU reference's benchmarks' job: short, in process (2 warm-ups, 5 iterations: the machine is shared), with the median.</summary>
public sealed class ShortCpuConfig : ManualConfig
{
    public ShortCpuConfig()
    {
        AddJob(Job.ShortRun.WithToolchain(BenchmarkDotNet.Toolchains.InProcess.Emit.InProcessEmitToolchain.Instance).WithWarmupCount(2).WithIterationCount(5));
        AddColumn(StatisticColumn.Median);
    }
}

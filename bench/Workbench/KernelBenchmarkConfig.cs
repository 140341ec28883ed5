using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// The job and columns of every kernel benchmark: in process (the GPU machine has the .NET runtime, not the SDK that a
/// separate benchmark process would need), one invocation per iteration (each invocation launches the kernel once and waits
/// for it), warm-ups and timed iterations from the mode (<see cref="KernelBenchOptions"/>: full 3 + 10, short 1 + 3), and
/// the <see cref="KernelColumn"/>s beside BenchmarkDotNet's wall-clock median. Methods keep their declared order; a
/// baseline (the same op done the plain way) is compared within its category.
/// </summary>
public sealed class KernelBenchmarkConfig : ManualConfig
{
    public KernelBenchmarkConfig()
    {
        var options = KernelBenchOptions.Current;
        AddJob(Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1)
            .WithWarmupCount(options.WarmupCount)
            .WithIterationCount(options.IterationCount)
            .WithInvocationCount(1)
            .WithUnrollFactor(1)
            .WithId(options.Short ? "short" : "full"));
        AddColumn(KernelColumn.All.ToArray());
        AddColumn(StatisticColumn.Median);
        HideColumns(Column.Error, Column.StdDev, Column.Mean, Column.RatioSD, Column.Gen0, Column.Gen1, Column.Gen2, Column.Allocated);
        AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams);
        WithOrderer(new DefaultOrderer(SummaryOrderPolicy.Declared, MethodOrderPolicy.Declared));
    }
}

using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace AutoResearch.Bench.Gemm;

/// <summary>In-process job (the GPU machine has only the .NET runtime, no SDK to build a separate benchmark process) with TFLOP/s and roofline columns.</summary>
public sealed class GpuBenchmarkConfig : ManualConfig
{
    public GpuBenchmarkConfig()
    {
        AddJob(Job.ShortRun.WithToolchain(BenchmarkDotNet.Toolchains.InProcess.Emit.InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(10));
        AddColumn(new ThroughputColumn(), new RooflineColumn());
        AddColumn(StatisticColumn.Median);
    }

    /// <summary>Achieved TFLOP/s from the median time.</summary>
    private sealed class ThroughputColumn : IColumn
    {
        public string Id => "TFLOPs";
        public string ColumnName => "TFLOP/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "bf16 TFLOP/s at the median time";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
            => Tflops(summary, benchmarkCase)?.ToString("F0", System.Globalization.CultureInfo.InvariantCulture) ?? "-";

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
    }

    /// <summary>Fraction of the ~800 TFLOP/s bf16 GEMM roofline measured on the H100 there.</summary>
    private sealed class RooflineColumn : IColumn
    {
        public string Id => "Roofline";
        public string ColumnName => "% of 800";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 1;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "TFLOP/s as a percentage of 800 TFLOP/s";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
            => Tflops(summary, benchmarkCase) is double t ? (t / 8).ToString("F0", System.Globalization.CultureInfo.InvariantCulture) + "%" : "-";

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
    }

    private static double? Tflops(Summary summary, BenchmarkCase benchmarkCase)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        var shape = benchmarkCase.Parameters["Shape"] as string;
        if (stats is null || shape is null)
            return null;
        return GemmBenchmarks.FlopsOf(shape) / (stats.Median * 1e-9) / 1e12;
    }
}

using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace AutoResearch.Bench.Data;

/// <summary>
/// A short in-process CPU job (3 warm-ups, 5 iterations: the machine is shared) with throughput columns: MB/s of UTF-8 text and
/// million tokens/s, both from the median time and the amounts per operation that the benchmark's global setup records in
/// <see cref="Amounts"/> (in process, so the columns see them), keyed by the benchmark type and its <c>Corpus</c> parameter.
/// </summary>
public sealed class ThroughputConfig : ManualConfig
{
    public ThroughputConfig()
    {
        AddJob(Job.ShortRun.WithToolchain(BenchmarkDotNet.Toolchains.InProcess.Emit.InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(5));
        AddColumn(StatisticColumn.Median);
        AddColumn(new PerSecondColumn("MBs", "MB/s", "UTF-8 text megabytes (1e6 bytes) per second at the median time", a => a.Bytes / 1e6));
        AddColumn(new PerSecondColumn("MTokens", "Mtok/s", "million tokens per second at the median time", a => a.Tokens / 1e6));
    }

    /// <summary>UTF-8 bytes and tokens one operation processes (0 where it does not apply), by <see cref="KeyOf"/>.</summary>
    public static System.Collections.Concurrent.ConcurrentDictionary<string, (double Bytes, double Tokens)> Amounts { get; } = new();

    public static string KeyOf(Type benchmark, string? corpus) => $"{benchmark.Name}/{corpus}";

    private sealed class PerSecondColumn(string id, string name, string legend, Func<(double Bytes, double Tokens), double> amountPerOperation) : IColumn
    {
        public string Id => id;
        public string ColumnName => name;
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => legend;

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var stats = summary[benchmarkCase]?.ResultStatistics;
            var corpus = benchmarkCase.Parameters["Corpus"] as string;
            if (stats is null || !Amounts.TryGetValue(KeyOf(benchmarkCase.Descriptor.Type, corpus), out var amounts))
                return "-";
            double perOperation = amountPerOperation(amounts);
            return perOperation <= 0 ? "-" : (perOperation / (stats.Median * 1e-9)).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
        }

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
    }
}

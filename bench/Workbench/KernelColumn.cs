using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// A summary column computed from what the case recorded in <see cref="KernelTimings"/>: the device time (median of the timed
/// iterations' device events), the throughput (TFLOP/s for tensor-core work, TB/s for memory-bound work: <see cref="KernelWork"/>),
/// the fraction of this device's own peak (<see cref="DevicePeaks"/>), and the check that ran before timing.
/// </summary>
public sealed class KernelColumn : IColumn
{
    private readonly Func<KernelTimings.Entry, double, string?> _value;
    private readonly Func<string> _legend;

    private KernelColumn(string id, string name, int priority, Func<KernelTimings.Entry, double, string?> value, Func<string> legend)
    {
        Id = id;
        ColumnName = name;
        PriorityInCategory = priority;
        _value = value;
        _legend = legend;
    }

    /// <summary>The timed iterations per case, whose median the columns use.</summary>
    public static int TimedIterations => KernelBenchOptions.Current.IterationCount;

    /// <summary>The device time of one call in microseconds.</summary>
    public static KernelColumn DeviceTime { get; } = new("KernelDeviceTime", "Device us", 0,
        (_, ms) => (ms * 1e3).ToString(ms < 0.1 ? "F2" : "F1", CultureInfo.InvariantCulture),
        () => $"Device time of one call, microseconds: the median over the {TimedIterations} timed iterations of CUDA events recorded around the launches (the wall-clock Median beside it adds the host's launch and synchronisation)");

    public static KernelColumn Teraflops { get; } = new("KernelTflops", "TFLOP/s", 1,
        (e, ms) => e.Work.IsCompute ? (e.Work.Flops / (ms * 1e-3) / 1e12).ToString("F0", CultureInfo.InvariantCulture) : "-",
        () => "Matrix-product FLOPs of the call (KernelWork) per second of device time, for tensor-core work");

    public static KernelColumn Terabytes { get; } = new("KernelTbs", "TB/s", 2,
        (e, ms) => e.Work.IsCompute ? "-" : (e.Work.Bytes / (ms * 1e-3) / 1e12).ToString("F2", CultureInfo.InvariantCulture),
        () => "Bytes the call reads and writes (KernelWork: each tensor element once at its stored size) per second of device time, for memory-bound work");

    public static KernelColumn PeakFraction { get; } = new("KernelPeak", "% of peak", 3,
        (e, ms) => DevicePeaks.Measured is { } peaks ? (100 * peaks.Fraction(e.Work, ms * 1e-3)).ToString("F0", CultureInfo.InvariantCulture) + "%" : "-",
        () => DevicePeaks.Measured is { } p
            ? $"TFLOP/s as a share of this device's bf16 GEMM rate ({p.GemmTeraflops:F0} TFLOP/s), TB/s of its device-to-device copy ({p.CopyTerabytes:F2} TB/s), both measured by this run on {p.Device}"
            : "share of this device's measured bf16 GEMM rate or copy bandwidth");

    public static KernelColumn Check { get; } = new("KernelCheck", "Checked (worst rel. error ≤ bound)", 4,
        (e, _) => e.Check,
        () => "Before timing, each kernel's outputs on fresh random inputs (outputs poisoned with NaN first) against the fp64 CPU reference; the tensor furthest from its bound");

    /// <summary>Every kernel column, in display order.</summary>
    public static IReadOnlyList<IColumn> All { get; } = [DeviceTime, Teraflops, Terabytes, PeakFraction, Check];

    public string Id { get; }

    public string ColumnName { get; }

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory { get; }

    public bool IsNumeric => Id != "KernelCheck";

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => _legend();

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var entry = KernelTimings.Find(KernelTimings.KeyOf(benchmarkCase));
        if (entry is null)
            return "-";
        if (Id == "KernelCheck")
            return entry.Check;
        return entry.MedianMilliseconds(TimedIterations) is double ms && ms > 0 ? _value(entry, ms) ?? "-" : "-";
    }

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;

    public override string ToString() => ColumnName;
}

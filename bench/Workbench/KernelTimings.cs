using System.Collections.Concurrent;
using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// What each benchmark case measured, for the summary's columns (the benchmarks run in this process): the work of one call,
/// the check's summary, and the device time of every invocation (start and end events around the kernel's launches). Keyed
/// by the benchmark class, its method and its parameters, computed the same way from a running benchmark (<see cref="KeyOf(object, string)"/>)
/// and from a case of the summary (<see cref="KeyOf(BenchmarkCase)"/>).
/// </summary>
public static class KernelTimings
{
    /// <summary>One case: its work, its check's one-line summary, and the device milliseconds of each invocation in order.</summary>
    public sealed class Entry(KernelWork work, string check)
    {
        private readonly List<double> _milliseconds = [];

        public KernelWork Work { get; } = work;

        public string Check { get; } = check;

        public void Add(double milliseconds)
        {
            lock (_milliseconds)
                _milliseconds.Add(milliseconds);
        }

        /// <summary>The median of the last <paramref name="count"/> invocations (BenchmarkDotNet's timed iterations come last,
        /// after its jitting and warm-up invocations), or null when there were none.</summary>
        public double? MedianMilliseconds(int count)
        {
            lock (_milliseconds)
            {
                if (_milliseconds.Count == 0)
                    return null;
                var last = _milliseconds.Skip(Math.Max(0, _milliseconds.Count - count)).Order().ToArray();
                int h = last.Length / 2;
                return last.Length % 2 == 1 ? last[h] : (last[h - 1] + last[h]) / 2;
            }
        }

        public int Count
        {
            get
            {
                lock (_milliseconds)
                    return _milliseconds.Count;
            }
        }
    }

    private static readonly ConcurrentDictionary<string, Entry> Entries = new(StringComparer.Ordinal);

    /// <summary>Starts (or restarts) the record of a case.</summary>
    public static Entry Start(string key, KernelWork work, string check) => Entries[key] = new Entry(work, check);

    public static Entry? Find(string key) => Entries.TryGetValue(key, out var e) ? e : null;

    /// <summary>
    /// The key of a running benchmark: its type, the method timed and its BenchmarkDotNet parameters' values. In process,
    /// BenchmarkDotNet runs an emitted subclass of the benchmark (in a dynamic assembly), so the type is the first one up the
    /// hierarchy that was not emitted: the family class the summary's case names.
    /// </summary>
    public static string KeyOf(object benchmark, string method)
    {
        ArgumentNullException.ThrowIfNull(benchmark);
        var type = benchmark.GetType();
        while (type.Assembly.IsDynamic && type.BaseType is { } parent)
            type = parent;
        var parameters = type.GetProperties()
            .Where(p => p.IsDefined(typeof(ParamsAttribute), true) || p.IsDefined(typeof(ParamsSourceAttribute), true) || p.IsDefined(typeof(ParamsAllValuesAttribute), true))
            .Select(p => (p.Name, p.GetValue(benchmark)));
        return Key(type, method, parameters);
    }

    /// <summary>The key of a case in the summary.</summary>
    public static string KeyOf(BenchmarkCase benchmarkCase)
    {
        ArgumentNullException.ThrowIfNull(benchmarkCase);
        return Key(benchmarkCase.Descriptor.Type, benchmarkCase.Descriptor.WorkloadMethod.Name,
            benchmarkCase.Parameters.Items.Select(p => (p.Name, (object?)p.Value)));
    }

    private static string Key(Type type, string method, IEnumerable<(string Name, object? Value)> parameters)
        => $"{type.FullName}.{method}("
            + string.Join(", ", parameters.OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => $"{p.Name}={Convert.ToString(p.Value, CultureInfo.InvariantCulture)}"))
            + ")";
}

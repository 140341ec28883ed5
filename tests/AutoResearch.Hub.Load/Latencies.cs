using System.Collections.Concurrent;
using System.Globalization;

namespace AutoResearch.Hub.Load;

/// <summary>Request times in ms, by kind; percentiles by nearest rank.</summary>
public sealed class Latencies
{
    private readonly ConcurrentDictionary<string, ConcurrentBag<double>> _byKind = new(StringComparer.Ordinal);

    public void Add(string kind, double ms) => _byKind.GetOrAdd(kind, _ => []).Add(ms);

    public IReadOnlyList<double> Of(string kind) => _byKind.TryGetValue(kind, out var bag) ? [.. bag.Order()] : [];

    public static double Percentile(IReadOnlyList<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];

    public string Row(string kind, string label)
    {
        var v = Of(kind);
        return string.Create(CultureInfo.InvariantCulture,
            $"| {label} | {v.Count} | {Percentile(v, 0.5):F1} | {Percentile(v, 0.9):F1} | {Percentile(v, 0.99):F1} | {(v.Count == 0 ? double.NaN : v[^1]):F1} |");
    }
}

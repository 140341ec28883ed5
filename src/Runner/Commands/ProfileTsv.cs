using System.Globalization;
using System.Text;
using AutoResearch.Native;

namespace AutoResearch.Runner;

/// <summary>
/// `profile --tsv FILE`: what the profile printed, as tab-separated values for scripts that compare two builds or two
/// configurations (bench/device/ab-profile.sh). A header line, then one row per op of the broken-down step, then the step
/// figures:
/// <code>
/// kind    name            value   calls  flops     bytes
/// op      GEMM lm_head    3.19    32     1100000000000   0
/// step    micro-step      131.9
/// step    optimizer-step  1.55
/// step    whole-step      272.7
/// memory  peak            27082.6
/// energy  whole-step      191.4
/// clock   SM median       1590
/// </code>
/// Values are in milliseconds (op, step), megabytes (memory), joules (energy) or megahertz (clock), with invariant-culture
/// numbers. The energy and clock rows are there only where the GPU's power was measured (<see cref="GpuPowerMonitor"/>).
/// </summary>
public static class ProfileTsv
{
    public const string Header = "kind\tname\tvalue\tcalls\tflops\tbytes";

    /// <summary>The table's text: <see cref="Header"/>, the ops in the order given, then the step and memory rows, and with
    /// <paramref name="power"/> the mean energy of a whole step and the median SM clock (each where measured).</summary>
    public static string Format(IReadOnlyList<StreamProfiler.Row> ops, double microStepMs, double optimizerStepMs, double wholeStepMs, double peakMegabytes,
        PowerSummary? power = null)
    {
        ArgumentNullException.ThrowIfNull(ops);
        var text = new StringBuilder(Header).Append('\n');
        foreach (var op in ops)
        {
            if (op.Name.AsSpan().IndexOfAny('\t', '\n', '\r') >= 0)
                throw new ArgumentException($"op name '{op.Name}' holds a tab or a line break, which a TSV row cannot");
            text.Append(CultureInfo.InvariantCulture, $"op\t{op.Name}\t{op.Milliseconds:R}\t{op.Calls}\t{op.Flops:R}\t{op.Bytes:R}\n");
        }
        text.Append(CultureInfo.InvariantCulture, $"step\tmicro-step\t{microStepMs:R}\t\t\t\n");
        text.Append(CultureInfo.InvariantCulture, $"step\toptimizer-step\t{optimizerStepMs:R}\t\t\t\n");
        text.Append(CultureInfo.InvariantCulture, $"step\twhole-step\t{wholeStepMs:R}\t\t\t\n");
        text.Append(CultureInfo.InvariantCulture, $"memory\tpeak\t{peakMegabytes:R}\t\t\t\n");
        if (power is not null && !double.IsNaN(power.JoulesPerWindow))
            text.Append(CultureInfo.InvariantCulture, $"energy\twhole-step\t{power.JoulesPerWindow:R}\t\t\t\n");
        if (power is not null && !double.IsNaN(power.SmClockMedian))
            text.Append(CultureInfo.InvariantCulture, $"clock\tSM median\t{power.SmClockMedian:R}\t\t\t\n");
        return text.ToString();
    }

    /// <summary>The values of a <see cref="Format"/> table by (kind, name), for tests and tools.</summary>
    public static IReadOnlyDictionary<(string Kind, string Name), double> Read(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || lines[0] != Header)
            throw new FormatException($"a profile TSV starts with the header '{Header.Replace('\t', ' ')}'");
        var values = new Dictionary<(string, string), double>();
        for (int i = 1; i < lines.Length; i++)
        {
            var fields = lines[i].Split('\t');
            if (fields.Length != 6 || !double.TryParse(fields[2], NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
                throw new FormatException($"line {i + 1} of a profile TSV should be six tab-separated fields with a number third: '{lines[i]}'");
            values[(fields[0], fields[1])] = value;
        }
        return values;
    }
}

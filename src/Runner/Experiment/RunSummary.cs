using System.Globalization;
using System.Text;

namespace AutoResearch.Runner.Experiment;

/// <summary>
/// The end-of-run summary of SPEC §9: a line <c>---</c> then nine <c>key: value</c> lines, values starting at column 18,
/// which agents grep (<c>grep "^val_bpb:" run.log</c>). <see cref="Format"/> writes it; <see cref="ParseLog"/> reads it
/// back from a whole log, and returns null when the log has none (the run crashed).
/// </summary>
public sealed record RunSummary(
    double ValBpb,
    double TrainingSeconds,
    double TotalSeconds,
    double PeakVramMb,
    double MfuPercent,
    double TotalTokensMillions,
    int NumSteps,
    double NumParamsMillions,
    int Depth)
{
    /// <summary>The separator line printed before the keys.</summary>
    public const string Separator = "---";

    // Key width: the longest key with its colon ("training_seconds:") is 17; one space follows.
    private const int KeyColumnWidth = 17;

    private static readonly string[] Keys =
        ["val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent", "total_tokens_M", "num_steps", "num_params_M", "depth"];

    /// <summary>The block, '\n'-separated, ending with a newline.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.Append(Separator).Append('\n');
        AppendLine(text, "val_bpb", ValBpb.ToString("F6", CultureInfo.InvariantCulture));
        AppendLine(text, "training_seconds", TrainingSeconds.ToString("F1", CultureInfo.InvariantCulture));
        AppendLine(text, "total_seconds", TotalSeconds.ToString("F1", CultureInfo.InvariantCulture));
        AppendLine(text, "peak_vram_mb", PeakVramMb.ToString("F1", CultureInfo.InvariantCulture));
        AppendLine(text, "mfu_percent", MfuPercent.ToString("F2", CultureInfo.InvariantCulture));
        AppendLine(text, "total_tokens_M", TotalTokensMillions.ToString("F1", CultureInfo.InvariantCulture));
        AppendLine(text, "num_steps", NumSteps.ToString(CultureInfo.InvariantCulture));
        AppendLine(text, "num_params_M", NumParamsMillions.ToString("F1", CultureInfo.InvariantCulture));
        AppendLine(text, "depth", Depth.ToString(CultureInfo.InvariantCulture));
        return text.ToString();
    }

    private static void AppendLine(StringBuilder text, string key, string value) =>
        text.Append((key + ":").PadRight(KeyColumnWidth)).Append(' ').Append(value).Append('\n');

    /// <summary>
    /// Reads the summary from a log's text (lines may be split by '\n' or by the progress line's '\r'). Returns null
    /// when the log has no <c>---</c> line followed by <c>val_bpb:</c> (a crash). Throws <see cref="FormatException"/>
    /// naming <paramref name="source"/> and the key when a summary is present but a key is missing or unreadable.
    /// </summary>
    public static RunSummary? ParseLog(string logText, string source = "log")
    {
        ArgumentNullException.ThrowIfNull(logText);
        string[] lines = logText.Split(['\n', '\r']);
        // The last separator that is followed by a val_bpb line starts the summary.
        int start = -1;
        for (int i = lines.Length - 2; i >= 0; i--)
        {
            if (lines[i].Trim() == Separator && NextNonEmpty(lines, i + 1)?.StartsWith("val_bpb:", StringComparison.Ordinal) == true)
            {
                start = i + 1;
                break;
            }
        }
        if (start < 0)
            return null;

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = start; i < lines.Length; i++)
        {
            string line = lines[i];
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
                continue;
            string key = line[..colon];
            if (Array.IndexOf(Keys, key) >= 0 && !values.ContainsKey(key))
                values[key] = line[(colon + 1)..].Trim();
        }

        return new RunSummary(
            ValBpb: ReadDouble(values, "val_bpb", source),
            TrainingSeconds: ReadDouble(values, "training_seconds", source),
            TotalSeconds: ReadDouble(values, "total_seconds", source),
            PeakVramMb: ReadDouble(values, "peak_vram_mb", source),
            MfuPercent: ReadDouble(values, "mfu_percent", source),
            TotalTokensMillions: ReadDouble(values, "total_tokens_M", source),
            NumSteps: ReadInt(values, "num_steps", source),
            NumParamsMillions: ReadDouble(values, "num_params_M", source),
            Depth: ReadInt(values, "depth", source));
    }

    private static string? NextNonEmpty(string[] lines, int from)
    {
        for (int i = from; i < lines.Length; i++)
        {
            if (lines[i].Length > 0)
                return lines[i];
        }
        return null;
    }

    private static string Read(Dictionary<string, string> values, string key, string source) =>
        values.TryGetValue(key, out string? value)
            ? value
            : throw new FormatException($"{source}: the summary after '---' has no '{key}:' line (expected all of: {string.Join(", ", Keys)}).");

    private static double ReadDouble(Dictionary<string, string> values, string key, string source)
    {
        string text = Read(values, key, source);
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FormatException($"{source}: summary key '{key}' has value '{text}', expected a number.");
    }

    private static int ReadInt(Dictionary<string, string> values, string key, string source)
    {
        string text = Read(values, key, source);
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new FormatException($"{source}: summary key '{key}' has value '{text}', expected an integer.");
    }
}

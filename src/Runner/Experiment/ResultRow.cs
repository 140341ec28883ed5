using System.Globalization;

namespace AutoResearch.Runner.Experiment;

/// <summary>One row of results.tsv (SPEC §10): commit, val_bpb (6 decimals), memory_gb (1 decimal), status, description.</summary>
public sealed record ResultRow(string Commit, double ValBpb, double MemoryGb, ExperimentStatus Status, string Description)
{
    /// <summary>
    /// The row for a finished run: crash rows carry 0.000000 and 0.0 whatever the log says; keep and discard rows
    /// need the run's summary (val_bpb, and memory_gb = peak_vram_mb / 1024).
    /// </summary>
    public static ResultRow FromRun(string commit, ExperimentStatus status, string description, RunSummary? summary)
    {
        ValidateCommit(commit);
        ValidateDescription(description);
        if (status == ExperimentStatus.Crash)
            return new ResultRow(commit, 0, 0, status, description);
        if (summary is null)
            throw new ArgumentException(
                $"A '{StatusText(status)}' row needs the run's summary (val_bpb, peak_vram_mb) but the log has none: the run crashed? Use --status crash.",
                nameof(summary));
        return new ResultRow(commit, summary.ValBpb, summary.PeakVramMb / 1024.0, status, description);
    }

    /// <summary>The tab-separated line, without a newline.</summary>
    public string ToTsvLine() => string.Create(CultureInfo.InvariantCulture,
        $"{Commit}\t{ValBpb:F6}\t{MemoryGb:F1}\t{StatusText(Status)}\t{Description}");

    /// <summary>keep, discard or crash.</summary>
    public static string StatusText(ExperimentStatus status) => status switch
    {
        ExperimentStatus.Keep => "keep",
        ExperimentStatus.Discard => "discard",
        ExperimentStatus.Crash => "crash",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "Unknown status."),
    };

    /// <summary>Parses keep/discard/crash (case-insensitive); throws naming the accepted values.</summary>
    public static ExperimentStatus ParseStatus(string text, string where = "--status") => text?.Trim().ToUpperInvariant() switch
    {
        "KEEP" => ExperimentStatus.Keep,
        "DISCARD" => ExperimentStatus.Discard,
        "CRASH" => ExperimentStatus.Crash,
        _ => throw new ArgumentException($"{where}: unknown status '{text}', expected keep, discard or crash."),
    };

    /// <summary>A description must be one non-empty line with no tab (it is the last column of a TSV row).</summary>
    public static void ValidateDescription(string description)
    {
        if (string.IsNullOrWhiteSpace(description))
            throw new ArgumentException("--description: must not be empty: say in a few words what the experiment changed.", nameof(description));
        if (description.AsSpan().IndexOfAny('\t', '\n', '\r') >= 0)
            throw new ArgumentException("--description: must not contain tabs or line breaks (results.tsv is tab-separated, one row a line).", nameof(description));
    }

    private static void ValidateCommit(string commit)
    {
        if (string.IsNullOrWhiteSpace(commit) || commit.AsSpan().IndexOfAny('\t', '\n', '\r') >= 0 || commit.Contains(' ', StringComparison.Ordinal))
            throw new ArgumentException($"Commit '{commit}' is not a short hash (expected e.g. 'a1b2c3d').", nameof(commit));
    }
}

using System.Globalization;

namespace AutoResearch.Runner.Experiment;

/// <summary>results.tsv (SPEC §10): a header line then one tab-separated row per experiment. Never committed.</summary>
public static class ResultsFile
{
    /// <summary>The header line.</summary>
    public const string Header = "commit\tval_bpb\tmemory_gb\tstatus\tdescription";

    /// <summary>Default file name, in the current folder.</summary>
    public const string DefaultFileName = "results.tsv";

    /// <summary>
    /// Appends a row under the table's lock (<see cref="LockFileName"/> beside it), so concurrent appends all land: reads the
    /// existing file (checking its header), writes the whole new file to a temporary name and renames it, so an error at any
    /// point leaves the old file intact. Creates the file with its header when absent or empty.
    /// </summary>
    public static void Append(string path, ResultRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        using var tableLock = Lock(path);
        string existing = File.Exists(path) ? File.ReadAllText(path) : "";
        if (existing.Length > 0)
            Parse(existing, path); // refuse to append to a file that is not a results table
        AtomicFile.WriteText(path, writer =>
        {
            if (existing.Length == 0)
                writer.Write(Header + "\n");
            else
            {
                writer.Write(existing);
                if (!existing.EndsWith('\n'))
                    writer.Write('\n');
            }
            writer.Write(row.ToTsvLine());
            writer.Write('\n');
        });
    }

    /// <summary>The lock file of a table: <c>.results.tsv.lock</c> for <c>results.tsv</c>, in the same folder (it stays; it holds nothing).</summary>
    public static string LockFileName(string path) => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", $".{Path.GetFileName(path)}.lock");

    /// <summary>How long an append waits for another to finish before giving up.</summary>
    public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The operating system's exclusive lock on the table's lock file (.NET takes flock(2) for <see cref="FileShare.None"/>;
    /// a process that dies releases it), waited for up to <see cref="LockTimeout"/>.
    /// </summary>
    private static FileStream Lock(string path)
    {
        var lockPath = LockFileName(path);
        var folder = Path.GetDirectoryName(lockPath)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot write {path}: folder {folder} does not exist.");
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
            {
                if (waited.Elapsed >= LockTimeout)
                    throw new IOException($"Cannot append to {path}: another `autoresearch results add` has held {lockPath} for {LockTimeout.TotalSeconds:0} s.", e);
                Thread.Sleep(Random.Shared.Next(5, 25));
            }
        }
    }

    /// <summary>Reads all rows; throws naming the file when it is missing or malformed.</summary>
    public static IReadOnlyList<ResultRow> Read(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} does not exist: log runs with 'autoresearch results add' first.", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses the text of a results file; <paramref name="source"/> names it in errors.</summary>
    public static IReadOnlyList<ResultRow> Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        if (lines[0] != Header)
            throw new FormatException($"{source}: line 1 is '{lines[0]}', expected the header '{Header.Replace("\t", "\\t", StringComparison.Ordinal)}'.");
        var rows = new List<ResultRow>(lines.Length);
        for (int i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
                continue;
            string[] fields = lines[i].Split('\t');
            string where = $"{source}: line {i + 1}";
            if (fields.Length != 5)
                throw new FormatException($"{where} has {fields.Length} tab-separated fields, expected 5 (commit, val_bpb, memory_gb, status, description).");
            var status = ResultRow.ParseStatus(fields[3], where);
            double valBpb = ParseNumber(fields[1], where, "val_bpb"), memoryGb = ParseNumber(fields[2], where, "memory_gb");
            // What `results add` refuses to write is refused when read too: a NaN or infinite val_bpb in a kept row would be taken
            // for a result (the next kept row's improvement over it NaN or infinite, the chart's scale lost). A crash has no val_bpb.
            if (status != ExperimentStatus.Crash && !(valBpb > 0 && double.IsFinite(valBpb)))
            {
                throw new FormatException($"{where}: val_bpb is '{fields[1]}', which is not a result for a {ResultRow.StatusText(status)} row "
                    + "(expected a finite number above 0; a run without one is logged as crash).");
            }
            if (!(memoryGb >= 0 && double.IsFinite(memoryGb)))
                throw new FormatException($"{where}: memory_gb is '{fields[2]}', expected a finite number of GB, 0 or more.");
            rows.Add(new ResultRow(fields[0], valBpb, memoryGb, status, fields[4]));
        }
        return rows;
    }

    private static double ParseNumber(string text, string where, string column) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FormatException($"{where}: {column} is '{text}', expected a number.");
}

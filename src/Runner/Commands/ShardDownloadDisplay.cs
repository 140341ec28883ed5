using AutoResearch.Data.Shards;
using Spectre.Console;

namespace AutoResearch.Runner;

/// <summary>
/// `prepare`'s view of a shard download. On a terminal: a Spectre.Console progress row per shard (bytes, percentage, speed),
/// with failed attempts printed above the rows. With output redirected (a log file, CI): one plain line per finished shard
/// and per failed attempt. Called from several download threads at once: Spectre's tasks lock themselves, the rest locks here.
/// </summary>
public sealed class ShardDownloadDisplay : IShardDownloadObserver
{
    private readonly ProgressContext? progress;
    private readonly Dictionary<string, ProgressTask> rows = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private int planned;
    private int finished;

    /// <param name="progress">The live progress display, or null for plain lines.</param>
    public ShardDownloadDisplay(ProgressContext? progress) => this.progress = progress;

    /// <summary>Runs <paramref name="download"/> with the display that fits the output: progress rows, or plain lines when redirected.</summary>
    public static T Show<T>(Func<IShardDownloadObserver, T> download)
    {
        ArgumentNullException.ThrowIfNull(download);
        if (Console.IsOutputRedirected)
            return download(new ShardDownloadDisplay(null));
        return AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
            .Start(ctx => download(new ShardDownloadDisplay(ctx)));
    }

    public void Planned(IReadOnlyList<string> toDownload, int alreadyPresent)
    {
        ArgumentNullException.ThrowIfNull(toDownload);
        lock (gate)
        {
            planned = toDownload.Count;
            if (progress is null)
                return;
            // A row per shard from the start, so the display also shows how many shards are left.
            foreach (var name in toDownload)
                rows[name] = progress.AddTask(name, autoStart: false);
        }
    }

    public void Started(string fileName, int attempt, long? totalBytes)
    {
        var row = Row(fileName);
        if (row is null)
            return;
        row.Value = 0;
        row.IsIndeterminate = totalBytes is null;
        row.MaxValue = Math.Max(1, totalBytes ?? 1);
        row.StartTask();
    }

    public void Received(string fileName, int bytes) => Row(fileName)?.Increment(bytes);

    public void Completed(string fileName, long bytes, TimeSpan elapsed)
    {
        int done;
        lock (gate)
            done = ++finished;
        var row = Row(fileName);
        if (row is not null)
        {
            row.MaxValue = Math.Max(1, bytes);
            row.Value = row.MaxValue;
            row.StopTask();
        }
        else
        {
            Console.WriteLine($"data: {fileName}: {bytes / 1e6:F1} MB in {elapsed.TotalSeconds:F1} s ({done} of {planned} shards)");
        }
    }

    public void AttemptFailed(string fileName, int attempt, string reason, TimeSpan? retryIn)
    {
        var next = retryIn is { } delay ? $"retrying in {delay.TotalSeconds:0.#} s" : "giving up";
        var line = $"data: {fileName}: attempt {attempt} of {ShardDownloader.MaxAttempts} failed: {reason}; {next}";
        if (progress is null)
            Console.WriteLine(line);
        else
            AnsiConsole.MarkupLine(Markup.Escape(line));
    }

    private ProgressTask? Row(string fileName)
    {
        lock (gate)
            return rows.GetValueOrDefault(fileName);
    }
}

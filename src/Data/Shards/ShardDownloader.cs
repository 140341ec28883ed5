using System.Diagnostics;
using System.Net;
using System.Runtime.ExceptionServices;

namespace AutoResearch.Data.Shards;

/// <summary>
/// `prepare`'s download (SPEC §2): training shards 0 … N−1, then the pinned validation shard, from a base address (the public
/// data set on the Hugging Face hub by default). Up to <see cref="Parallelism"/> shards at once; each gets up to
/// <see cref="MaxAttempts"/> attempts with exponential back-off (<see cref="BaseDelay"/>, then twice that, …). A shard is
/// written to a temporary name in the data folder, checked (it must open as Parquet with a string <c>text</c> column) and only
/// then renamed, so a failed or interrupted download leaves no file behind. Complete shards already there are skipped. The
/// validation shard comes last, so its presence means the whole download finished.
/// A server that cannot be reached at all (name resolution fails, connection refused, no route, connect timeout) before any
/// response arrived stops the download at once with <see cref="ShardSourceUnreachableException"/>, so an offline machine can
/// fall back to local data without waiting through the retries.
/// </summary>
public sealed class ShardDownloader : IDisposable
{
    /// <summary>The public data set's parquet files: <c>{base}shard_00000.parquet</c> …</summary>
    public const string DefaultBaseUrl = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main/";

    /// <summary>Environment variable that replaces <see cref="DefaultBaseUrl"/> (a <c>--base-url</c> flag wins over it).</summary>
    public const string BaseUrlVariable = "AUTORESEARCH_DATA_URL";

    public const int DefaultTrainShards = 10;

    public const int MaxAttempts = 5;

    private readonly HttpClient http;

    // 1 once any response arrived: from then on a failed connection is an ordinary, retried failure, not "offline".
    private int responded;

    public ShardDownloader(Uri baseUrl)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        BaseUrl = baseUrl.AbsoluteUri.EndsWith('/') ? baseUrl : new Uri(baseUrl.AbsoluteUri + "/");
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(15),
            AutomaticDecompression = DecompressionMethods.None,
        };
        // No overall timeout: a shard may take minutes; a stalled response is caught by StallTimeout instead.
        http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("autoresearch-prepare/1.0");
    }

    /// <summary>The folder the shard files are fetched from, ending in '/'.</summary>
    public Uri BaseUrl { get; }

    /// <summary>The wait after the first failed attempt; it doubles after each further one (1, 2, 4, 8 s by default).</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Shards downloaded at the same time.</summary>
    public int Parallelism { get; init; } = 4;

    /// <summary>An attempt fails when no response headers, or no further body bytes, arrive for this long.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The base address: <paramref name="explicitUrl"/> (<c>--base-url</c>), else <see cref="BaseUrlVariable"/>, else the default.</summary>
    public static Uri ResolveBaseUrl(string? explicitUrl)
    {
        var text = !string.IsNullOrWhiteSpace(explicitUrl) ? explicitUrl : Environment.GetEnvironmentVariable(BaseUrlVariable);
        if (string.IsNullOrWhiteSpace(text))
            text = DefaultBaseUrl;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"the shard base address '{text}' is not an http(s) URL (from --base-url or {BaseUrlVariable})");
        return url;
    }

    /// <summary>The shards a download of <paramref name="trainShards"/> training shards fetches, the validation shard last.</summary>
    public static IReadOnlyList<int> ShardIndices(int trainShards)
    {
        if (trainShards < 1 || trainShards > ParquetShards.ValidationIndex)
            throw new ArgumentOutOfRangeException(nameof(trainShards), trainShards, $"the number of training shards must lie between 1 and {ParquetShards.ValidationIndex}");
        return [.. Enumerable.Range(0, trainShards), ParquetShards.ValidationIndex];
    }

    public Uri UrlOf(int index) => new(BaseUrl, ParquetShards.FileName(index));

    /// <summary>
    /// Downloads the training shards 0 … <paramref name="trainShards"/>−1 and the validation shard into
    /// <paramref name="dataDirectory"/>, skipping complete ones. Returns how many were downloaded and skipped, and the bytes fetched.
    /// </summary>
    public async Task<(int Downloaded, int Skipped, long Bytes)> DownloadAsync(string dataDirectory, int trainShards,
        IShardDownloadObserver? observer = null, CancellationToken cancellationToken = default)
    {
        var indices = ShardIndices(trainShards);
        Directory.CreateDirectory(dataDirectory);
        DeleteAbandonedTemporaryFiles(dataDirectory);
        var missing = indices.Where(i => !IsCompleteShard(Path.Combine(dataDirectory, ParquetShards.FileName(i)))).ToList();
        observer?.Planned([.. missing.Select(ParquetShards.FileName)], indices.Count - missing.Count);

        long bytes = 0;
        var training = missing.Where(i => i != ParquetShards.ValidationIndex).ToList();
        var options = new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken };
        var work = Parallel.ForEachAsync(training, options, async (index, token) =>
        {
            long shardBytes = await DownloadShardAsync(index, dataDirectory, observer, token);
            Interlocked.Add(ref bytes, shardBytes);
        });
        try
        {
            await work;
        }
        catch when (work.Exception is { } all)
        {
            // The first real failure, not the cancellations it caused in the other shards.
            var first = all.InnerExceptions.FirstOrDefault(e => e is ShardSourceUnreachableException)
                ?? all.InnerExceptions.FirstOrDefault(e => e is not OperationCanceledException) ?? all.InnerExceptions[0];
            ExceptionDispatchInfo.Throw(first);
        }
        if (missing.Contains(ParquetShards.ValidationIndex))
            bytes += await DownloadShardAsync(ParquetShards.ValidationIndex, dataDirectory, observer, cancellationToken);
        return (missing.Count, indices.Count - missing.Count, bytes);
    }

    /// <summary>
    /// Temporary files (<c>shard_*.parquet.PID.tmp</c>) of a process that no longer runs: what an interrupted prepare (Ctrl-C,
    /// a killed process) left behind. Those of a running process, another prepare perhaps, are left alone.
    /// </summary>
    private static void DeleteAbandonedTemporaryFiles(string dataDirectory)
    {
        foreach (var file in Directory.GetFiles(dataDirectory, "shard_*.parquet.*.tmp"))
        {
            var pidText = Path.GetFileNameWithoutExtension(file).Split('.')[^1];
            if (!int.TryParse(pidText, out int pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                using var process = Process.GetProcessById(pid);
            }
            catch (ArgumentException)
            {
                File.Delete(file); // no such process
            }
        }
    }

    private static bool IsCompleteShard(string path)
    {
        if (!File.Exists(path))
            return false;
        try
        {
            ParquetShards.Check(path);
            return true;
        }
        catch (InvalidDataException)
        {
            return false; // downloaded again and replaced
        }
    }

    /// <summary>One shard with its retries; returns its size in bytes. Every way out but success deletes the temporary file.</summary>
    private async Task<long> DownloadShardAsync(int index, string dataDirectory, IShardDownloadObserver? observer, CancellationToken cancellationToken)
    {
        var name = ParquetShards.FileName(index);
        var path = Path.Combine(dataDirectory, name);
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        var url = UrlOf(index);
        for (int attempt = 1; ; attempt++)
        {
            var watch = Stopwatch.StartNew();
            try
            {
                long bytes = await FetchAsync(url, name, temp, attempt, observer, cancellationToken);
                ParquetShards.Check(temp);
                File.Move(temp, path, overwrite: true);
                observer?.Completed(name, bytes, watch.Elapsed);
                return bytes;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested
                && e is HttpRequestException or IOException or InvalidDataException or OperationCanceledException)
            {
                File.Delete(temp);
                // A body that is not a shard: name the download, not the temporary file that is already gone.
                var reason = Describe(e).Replace($"'{temp}'", "the downloaded file", StringComparison.Ordinal);
                if (IsUnreachable(e) && Volatile.Read(ref responded) == 0)
                    throw new ShardSourceUnreachableException(url, reason, e);
                bool retry = attempt < MaxAttempts && IsWorthRetrying(e);
                var delay = BaseDelay * Math.Pow(2, attempt - 1);
                observer?.AttemptFailed(name, attempt, reason, retry ? delay : null);
                if (!retry)
                    throw new ShardDownloadException(name, url, attempt, reason, e);
                await Task.Delay(delay, cancellationToken);
            }
            catch
            {
                File.Delete(temp);
                throw;
            }
        }
    }

    /// <summary>One attempt: the response body into <paramref name="temp"/>, flushed to disk; returns the bytes written.</summary>
    private async Task<long> FetchAsync(Uri url, string name, string temp, int attempt, IShardDownloadObserver? observer, CancellationToken cancellationToken)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            stall.CancelAfter(StallTimeout);
            using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, stall.Token);
            Interlocked.Exchange(ref responded, 1);
            if (!response.IsSuccessStatusCode)
                throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode);
            long? expected = response.Content.Headers.ContentLength;
            observer?.Started(name, attempt, expected);
            await using var body = await response.Content.ReadAsStreamAsync(stall.Token);
            await using var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
            var buffer = new byte[1 << 16];
            long total = 0;
            while (true)
            {
                stall.CancelAfter(StallTimeout);
                int read = await body.ReadAsync(buffer, stall.Token);
                if (read == 0)
                    break;
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                total += read;
                observer?.Received(name, read);
            }
            if (expected is long length && total != length)
                throw new IOException($"the response ended after {total:N0} of {length:N0} bytes");
            file.Flush(flushToDisk: true);
            return total;
        }
        catch (OperationCanceledException) when (stall.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new IOException($"no data arrived for {StallTimeout.TotalSeconds:0} s");
        }
    }

    /// <summary>The failures that mean the server was never reached (before any response, these mean "offline").</summary>
    private static bool IsUnreachable(Exception e) => e switch
    {
        HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError or HttpRequestError.ProxyTunnelError } => true,
        // With no overall HttpClient timeout, a TimeoutException inside a cancellation is SocketsHttpHandler's ConnectTimeout.
        OperationCanceledException { InnerException: TimeoutException } => true,
        _ => false,
    };

    /// <summary>A client error (404 and the like) will not change on the next attempt; everything else may.</summary>
    private static bool IsWorthRetrying(Exception e)
        => e is not HttpRequestException { StatusCode: { } status }
            || (int)status >= 500 || status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests;

    private static string Describe(Exception e)
    {
        var message = e.Message;
        // HttpClient's messages are often generic ("An error occurred while sending the request"): add the causes. Our own
        // InvalidDataException already quotes its cause.
        for (var inner = e is InvalidDataException ? null : e.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (!message.Contains(inner.Message, StringComparison.Ordinal))
                message += $" ({inner.Message})";
        }
        return message;
    }

    public void Dispose() => http.Dispose();
}

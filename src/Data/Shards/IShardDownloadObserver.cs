namespace AutoResearch.Data.Shards;

/// <summary>
/// What a <see cref="ShardDownloader"/> reports while it works, for a progress display. Several shards download at once, so
/// the methods are called from several threads at the same time: implementations must be thread-safe.
/// </summary>
public interface IShardDownloadObserver
{
    /// <summary>Called once, first: the shard files to download, in order, and how many complete ones are already there.</summary>
    void Planned(IReadOnlyList<string> toDownload, int alreadyPresent);

    /// <summary>An attempt got its response headers; <paramref name="totalBytes"/> is the Content-Length, if the server sent one.</summary>
    void Started(string fileName, int attempt, long? totalBytes);

    /// <summary>More of the body arrived.</summary>
    void Received(string fileName, int bytes);

    /// <summary>The shard was checked and renamed to its final name.</summary>
    void Completed(string fileName, long bytes, TimeSpan elapsed);

    /// <summary>An attempt failed; <paramref name="retryIn"/> is null when no attempt follows.</summary>
    void AttemptFailed(string fileName, int attempt, string reason, TimeSpan? retryIn);
}

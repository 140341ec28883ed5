namespace AutoResearch.Data.Shards;

/// <summary>
/// The shard server could not be reached at all (no name resolution, connection refused, no route, connect timeout) before
/// any response arrived: the machine is probably offline, and the caller may fall back to local data.
/// </summary>
public sealed class ShardSourceUnreachableException : IOException
{
    public ShardSourceUnreachableException(Uri url, string reason, Exception inner)
        : base($"cannot reach {url}: {reason}", inner)
    {
        Url = url;
        Reason = reason;
    }

    /// <summary>The first address that could not be reached.</summary>
    public Uri Url { get; }

    public string Reason { get; }
}

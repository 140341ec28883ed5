namespace AutoResearch.Data.Shards;

/// <summary>A shard could not be downloaded: every attempt failed, or the server answered with an error that will not change.</summary>
public sealed class ShardDownloadException : IOException
{
    public ShardDownloadException(string fileName, Uri url, int attempts, string lastFailure, Exception? inner)
        : base($"downloading {fileName} from {url} failed after {attempts} attempt(s); the last: {lastFailure}", inner)
    {
        FileName = fileName;
        Url = url;
        LastFailure = lastFailure;
    }

    /// <summary>The shard's file name, e.g. shard_00003.parquet.</summary>
    public string FileName { get; }

    public Uri Url { get; }

    /// <summary>What went wrong on the last attempt (an HTTP status, a cut-off body, a file that is not a shard ...).</summary>
    public string LastFailure { get; }
}

namespace AutoResearch.Data;

/// <summary>The cache is locked by another process (<see cref="CacheLock"/>); the message says which and what to do.</summary>
public sealed class CacheBusyException : IOException
{
    public CacheBusyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

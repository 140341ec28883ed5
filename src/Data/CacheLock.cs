namespace AutoResearch.Data;

/// <summary>
/// The lock on a cache folder: `prepare` holds it alone while it builds new data and swaps it in (<see cref="ForUpdate"/>);
/// every `train` holds it shared for its whole run (<see cref="ForReading"/>), so the data cannot change under a run and two
/// prepares cannot mix their shards. A lock that is taken is refused at once with a message saying who holds it.
/// </summary>
/// <remarks>
/// The lock is the operating system's advisory lock on <c>&lt;root&gt;/.lock</c> (.NET takes flock(2) for <see cref="FileShare.None"/>,
/// exclusive, and for a read-only <see cref="FileShare.ReadWrite"/> open, shared), so a process that dies, however it dies,
/// releases it. The file itself holds nothing and stays.
/// </remarks>
public sealed class CacheLock : IDisposable
{
    public const string FileName = ".lock";

    private readonly FileStream? _file;

    private CacheLock(FileStream? file) => _file = file;

    /// <summary>Alone on the cache (prepare); creates the cache folder. Throws <see cref="CacheBusyException"/> when it is in use.</summary>
    public static CacheLock ForUpdate(CachePaths cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        Directory.CreateDirectory(cache.Root);
        var path = Path.Combine(cache.Root, FileName);
        try
        {
            return new CacheLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw IsUpdating(path)
                ? new CacheBusyException($"another `autoresearch prepare` is updating the cache '{cache.Root}'; wait for it to finish (two at once would mix their data)", e)
                : new CacheBusyException($"the cache '{cache.Root}' is in use by a running `autoresearch train`; prepare would replace the data it reads: "
                    + "wait for the run to end (or stop it), then prepare again", e);
        }
    }

    /// <summary>
    /// Shared with other readers (train). First finishes a swap that an interrupted prepare committed
    /// (<see cref="CacheStaging.FinishInterruptedSwap"/>). A cache folder that does not exist, or where no lock file can be made
    /// (a read-only cache), is read without a lock: the reads themselves say what is missing. Throws
    /// <see cref="CacheBusyException"/> while a prepare is updating the cache.
    /// </summary>
    public static CacheLock ForReading(CachePaths cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (!Directory.Exists(cache.Root))
            return new CacheLock(null);
        if (CacheStaging.IsSwapPending(cache))
        {
            using (ForUpdate(cache))
                CacheStaging.FinishInterruptedSwap(cache);
        }
        var path = Path.Combine(cache.Root, FileName);
        try
        {
            return new CacheLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite));
        }
        catch (UnauthorizedAccessException)
        {
            return new CacheLock(null);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new CacheBusyException($"`autoresearch prepare` is updating the cache '{cache.Root}'; wait for it to finish, then train", e);
        }
    }

    /// <summary>True when a shared open fails too: a prepare (the only exclusive holder) has the lock, not readers.</summary>
    private static bool IsUpdating(string path)
    {
        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public void Dispose() => _file?.Dispose();
}

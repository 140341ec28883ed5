namespace AutoResearch.Data;

/// <summary>
/// `prepare` replaces the cache as a unit. The new shards, tokenizer and token cache are built under
/// <c>&lt;root&gt;/.prepare/staging/</c> (<see cref="Staging"/>, laid out like a cache); nothing in the cache changes until
/// <see cref="Commit"/> swaps them in. Old shards therefore never mix with new ones, and a prepare that fails or is interrupted
/// while building leaves the previous cache exactly as it was.
/// </summary>
/// <remarks>
/// The swap: write the marker <c>.prepare/swap</c>, then for each staged part (data, tokenizer, tokens) move the cache's part
/// aside to <c>.prepare/old/</c> and the staged one into its place, then delete the marker and the old parts. Every step is a
/// rename. A process that dies during the swap leaves the marker, and the next prepare or train finishes the swap
/// (<see cref="FinishInterruptedSwap"/>) before using the cache. Run everything here under <see cref="CacheLock.ForUpdate"/>.
/// </remarks>
public sealed class CacheStaging
{
    public const string FolderName = ".prepare";

    /// <summary>The parts of a cache that a prepare builds, in the order they are swapped.</summary>
    public static IReadOnlyList<string> Parts { get; } = ["data", "tokenizer", "tokens"];

    private const string OriginFile = "origin";

    private CacheStaging(CachePaths cache)
    {
        Cache = cache;
        Staging = new CachePaths(Path.Combine(cache.Root, FolderName, "staging"));
    }

    /// <summary>The cache being replaced.</summary>
    public CachePaths Cache { get; }

    /// <summary>Where the new parts are built: <see cref="CachePaths.Data"/>, <see cref="CachePaths.Tokenizer"/>, <see cref="CachePaths.Tokens"/>.</summary>
    public CachePaths Staging { get; }

    /// <summary>
    /// Starts a build: finishes a swap an interrupted prepare committed, then clears what an interrupted build left, except the
    /// complete shards of a download from the same <paramref name="origin"/> (a rerun completes an unfinished download).
    /// </summary>
    /// <param name="origin">What the staged data comes from, e.g. "download https://…/"; only a download is ever resumed.</param>
    /// <param name="resumable">Whether staged data from the same origin may be kept.</param>
    public static CacheStaging Begin(CachePaths cache, string origin, bool resumable)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(origin);
        FinishInterruptedSwap(cache);
        var staging = new CacheStaging(cache);
        var root = staging.Staging.Root;
        var originPath = Path.Combine(root, OriginFile);
        bool keepData = resumable && File.Exists(originPath) && File.ReadAllText(originPath) == origin;
        if (Directory.Exists(root))
        {
            foreach (var part in Parts)
            {
                if (!(keepData && part == "data"))
                    DeleteFolder(Path.Combine(root, part));
            }
        }
        Directory.CreateDirectory(root);
        File.WriteAllText(originPath, origin);
        return staging;
    }

    /// <summary>
    /// Records that the staged data comes from <paramref name="origin"/> after all (a download that found no server falls back to
    /// the embedded sample): a later <see cref="Begin"/> for the download then clears it instead of taking it for an unfinished
    /// download, which the next offline run could never complete.
    /// </summary>
    public void ChangeOrigin(string origin)
    {
        ArgumentNullException.ThrowIfNull(origin);
        File.WriteAllText(Path.Combine(Staging.Root, OriginFile), origin);
    }

    /// <summary>Whether the staging folder holds shards from an earlier run of the same origin (kept by <see cref="Begin"/>).</summary>
    public bool HasStagedShards => Directory.Exists(Staging.Data) && Directory.GetFiles(Staging.Data, "shard_*.parquet").Length > 0;

    /// <summary>Swaps every staged part into the cache (see the remarks), then removes the staging folder.</summary>
    public void Commit()
    {
        var marker = MarkerPath(Cache);
        var temp = marker + ".tmp";
        File.WriteAllText(temp, "a prepare is swapping its staged parts into this cache\n");
        File.Move(temp, marker, overwrite: true);
        FinishInterruptedSwap(Cache);
    }

    /// <summary>True when a committed swap has not finished (its process died): the cache must not be read until it is.</summary>
    public static bool IsSwapPending(CachePaths cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        return File.Exists(MarkerPath(cache));
    }

    /// <summary>
    /// Finishes a committed swap: each part still staged replaces the cache's, then the marker, the old parts and the staging
    /// folder go. Safe to repeat at any point. Does nothing without the marker. Returns whether there was a swap to finish.
    /// </summary>
    public static bool FinishInterruptedSwap(CachePaths cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        var marker = MarkerPath(cache);
        if (!File.Exists(marker))
            return false;
        var work = Path.Combine(cache.Root, FolderName);
        var staging = Path.Combine(work, "staging");
        var old = Path.Combine(work, "old");
        foreach (var part in Parts)
        {
            var staged = Path.Combine(staging, part);
            if (!Directory.Exists(staged))
                continue; // not part of this prepare, or already in place
            var live = Path.Combine(cache.Root, part);
            var aside = Path.Combine(old, part);
            if (Directory.Exists(live))
            {
                DeleteFolder(aside);
                Directory.CreateDirectory(old);
                Directory.Move(live, aside);
            }
            Directory.Move(staged, live);
        }
        File.Delete(marker);
        DeleteFolder(old);
        DeleteFolder(staging);
        return true;
    }

    private static string MarkerPath(CachePaths cache) => Path.Combine(cache.Root, FolderName, "swap");

    private static void DeleteFolder(string path)
    {
        if (Directory.Exists(path))
            Directory.Delete(path, recursive: true);
    }
}

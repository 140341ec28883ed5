using Xunit;

namespace AutoResearch.Data.Tests;

public sealed class CacheStagingTests : IDisposable
{
    private readonly CachePaths _cache = new(Path.Combine(Path.GetTempPath(), $"autoresearch-test-staging-{Guid.NewGuid():N}"));

    public void Dispose()
    {
        if (Directory.Exists(_cache.Root))
            Directory.Delete(_cache.Root, recursive: true);
    }

    private static void Fill(string folder, string content)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "file.txt"), content);
    }

    private static string Read(string folder) => File.ReadAllText(Path.Combine(folder, "file.txt"));

    private void FillCache(string content)
    {
        Fill(_cache.Data, content);
        Fill(_cache.Tokenizer, content);
        Fill(_cache.Tokens, content);
    }

    [Fact]
    public void Nothing_in_the_cache_changes_until_commit_and_then_every_staged_part_is_in()
    {
        FillCache("old");
        var staging = CacheStaging.Begin(_cache, "import a", resumable: false);
        Fill(staging.Staging.Data, "new");
        Fill(staging.Staging.Tokenizer, "new");
        Fill(staging.Staging.Tokens, "new");
        Assert.Equal(("old", "old", "old"), (Read(_cache.Data), Read(_cache.Tokenizer), Read(_cache.Tokens)));

        staging.Commit();

        Assert.Equal(("new", "new", "new"), (Read(_cache.Data), Read(_cache.Tokenizer), Read(_cache.Tokens)));
        Assert.False(Directory.Exists(Path.Combine(_cache.Root, CacheStaging.FolderName, "staging")));
        Assert.False(CacheStaging.IsSwapPending(_cache));
    }

    [Fact]
    public void A_part_that_is_not_staged_is_kept()
    {
        FillCache("old");
        var staging = CacheStaging.Begin(_cache, "the cache's shards", resumable: false);
        Fill(staging.Staging.Tokenizer, "new");
        Fill(staging.Staging.Tokens, "new");

        staging.Commit();

        Assert.Equal(("old", "new", "new"), (Read(_cache.Data), Read(_cache.Tokenizer), Read(_cache.Tokens)));
    }

    [Theory]
    [InlineData(0)] // the marker written, nothing moved
    [InlineData(1)] // data moved aside, the new data not yet in
    [InlineData(2)] // data swapped
    [InlineData(3)] // data swapped, tokenizer moved aside
    [InlineData(6)] // every part swapped, the marker not yet deleted
    public void A_swap_interrupted_after_the_marker_is_finished_by_the_next_run(int renamesDone)
    {
        FillCache("old");
        var staging = CacheStaging.Begin(_cache, "import a", resumable: false);
        Fill(staging.Staging.Data, "new");
        Fill(staging.Staging.Tokenizer, "new");
        Fill(staging.Staging.Tokens, "new");
        // What Commit does, stopped after a number of its renames (a killed process).
        var work = Path.Combine(_cache.Root, CacheStaging.FolderName);
        File.WriteAllText(Path.Combine(work, "swap"), "");
        Directory.CreateDirectory(Path.Combine(work, "old"));
        int done = 0;
        foreach (var part in CacheStaging.Parts)
        {
            if (done++ < renamesDone)
                Directory.Move(Path.Combine(_cache.Root, part), Path.Combine(work, "old", part));
            if (done++ < renamesDone)
                Directory.Move(Path.Combine(work, "staging", part), Path.Combine(_cache.Root, part));
        }
        Assert.True(CacheStaging.IsSwapPending(_cache));

        // A train finishes it before reading.
        using (CacheLock.ForReading(_cache))
        {
            Assert.False(CacheStaging.IsSwapPending(_cache));
            Assert.Equal(("new", "new", "new"), (Read(_cache.Data), Read(_cache.Tokenizer), Read(_cache.Tokens)));
        }
        Assert.False(Directory.Exists(Path.Combine(work, "old")));
    }

    [Fact]
    public void A_file_where_a_part_belongs_is_moved_aside_instead_of_leaving_the_swap_half_done()
    {
        FillCache("old");
        Directory.Delete(_cache.Tokens, recursive: true);
        File.WriteAllText(_cache.Tokens, "not a folder");
        var staging = CacheStaging.Begin(_cache, "import a", resumable: false);
        Fill(staging.Staging.Data, "new");
        Fill(staging.Staging.Tokenizer, "new");
        Fill(staging.Staging.Tokens, "new");

        staging.Commit();

        Assert.False(CacheStaging.IsSwapPending(_cache));
        Assert.Equal(("new", "new", "new"), (Read(_cache.Data), Read(_cache.Tokenizer), Read(_cache.Tokens)));
    }

    [Fact]
    public void The_old_parts_left_by_a_swap_killed_after_its_marker_went_are_deleted_by_the_next_begin()
    {
        var old = Path.Combine(_cache.Root, CacheStaging.FolderName, "old");
        Fill(Path.Combine(old, "data"), "old");

        CacheStaging.Begin(_cache, "import a", resumable: false);

        Assert.False(Directory.Exists(old));
    }

    [Fact]
    public void An_uncommitted_build_is_discarded_by_the_next_begin_but_a_download_of_the_same_origin_is_kept()
    {
        FillCache("old");
        var first = CacheStaging.Begin(_cache, "download 2 from http://x/", resumable: true);
        Fill(first.Staging.Data, "partial");
        Fill(first.Staging.Tokenizer, "partial");

        var again = CacheStaging.Begin(_cache, "download 2 from http://x/", resumable: true);
        Assert.Equal("partial", Read(again.Staging.Data));
        Assert.False(Directory.Exists(again.Staging.Tokenizer));

        var other = CacheStaging.Begin(_cache, "import b", resumable: false);
        Assert.False(Directory.Exists(other.Staging.Data));
        Assert.Equal("old", Read(_cache.Data));
    }

    [Fact]
    public void The_lock_lets_readers_share_and_keeps_an_updater_alone()
    {
        using (CacheLock.ForUpdate(_cache))
        {
            Assert.Contains("another `autoresearch prepare` is updating", Assert.Throws<CacheBusyException>(() => CacheLock.ForUpdate(_cache)).Message, StringComparison.Ordinal);
            Assert.Contains("`autoresearch prepare` is updating", Assert.Throws<CacheBusyException>(() => CacheLock.ForReading(_cache)).Message, StringComparison.Ordinal);
        }
        using (CacheLock.ForReading(_cache))
        using (CacheLock.ForReading(_cache))
        {
            Assert.Contains("in use by a running `autoresearch train`", Assert.Throws<CacheBusyException>(() => CacheLock.ForUpdate(_cache)).Message, StringComparison.Ordinal);
        }
        using (CacheLock.ForUpdate(_cache))
        {
        }
    }
}

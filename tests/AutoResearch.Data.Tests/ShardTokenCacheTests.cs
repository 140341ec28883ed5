using AutoResearch.Data.Corpus;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using Xunit;

namespace AutoResearch.Data.Tests;

public sealed class ShardTokenCacheTests : IDisposable
{
    private static readonly Lazy<List<string>> Sample = new(() => [.. CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample()).Take(24)]);
    private static readonly Lazy<BpeTokenizer> Tokenizer = new(() => BpeTrainer.Train(Sample.Value, vocabSize: 600));
    private static readonly Lazy<BpeTokenizer> OtherTokenizer = new(() => BpeTrainer.Train(Sample.Value, vocabSize: 500));

    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"autoresearch-tokcache-{Guid.NewGuid():N}");

    public ShardTokenCacheTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, true);

    private string Tokens => Path.Combine(_dir, "tokens");

    /// <summary>Saves the tokenizer to its own folder and returns the cache keyed on that folder's content hash.</summary>
    private ShardTokenCache CacheFor(BpeTokenizer tokenizer, string name)
    {
        var folder = Path.Combine(_dir, name);
        TokenizerFiles.Save(tokenizer, folder);
        return new ShardTokenCache(Tokens, tokenizer, TokenizerFiles.ContentHash(folder));
    }

    private string WriteShard(int index, IReadOnlyList<string> documents)
    {
        var path = Path.Combine(_dir, ParquetShards.FileName(index));
        ParquetShards.Write(path, documents);
        return path;
    }

    private static void AssertSameDocuments(int[][] expected, int[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int d = 0; d < expected.Length; d++)
            Assert.True(expected[d].AsSpan().SequenceEqual(actual[d]), $"document {d} differs");
    }

    [Fact]
    public void Cached_ids_equal_a_fresh_encoding_of_the_shard()
    {
        var tokenizer = Tokenizer.Value;
        var shard = WriteShard(0, Sample.Value[..12]);
        var fresh = tokenizer.EncodeBatch(Sample.Value[..12], prependBos: true);

        var building = CacheFor(tokenizer, "tok");
        Assert.False(building.TryRead(shard, out _));
        AssertSameDocuments(fresh, building.Load(shard));
        Assert.Equal(1, building.Writes);
        Assert.True(File.Exists(building.PathOf(shard)));
        // 2-byte ids for a vocabulary that fits in 16 bits: the header plus 4 bytes a document plus 2 an id (BOS not stored).
        long ids = fresh.Sum(d => d.Length - 1L);
        Assert.Equal(ShardTokenCache.HeaderBytes + 4L * fresh.Length + 2 * ids, new FileInfo(building.PathOf(shard)).Length);

        // A second cache (a later run) reads the file instead of encoding.
        var reading = CacheFor(tokenizer, "tok");
        Assert.True(reading.TryRead(shard, out var cached));
        AssertSameDocuments(fresh, cached);
        AssertSameDocuments(fresh, reading.Load(shard));
        Assert.Equal(0, reading.Writes);
        Assert.Equal(2, reading.Reads);
    }

    [Fact]
    public void Ids_above_16_bits_are_stored_in_4_bytes_and_read_back()
    {
        var shard = WriteShard(0, ["wide ids", "ü and 你好"]);
        var tokenizer = new WideTokenizer();
        var cache = new ShardTokenCache(Tokens, tokenizer, new byte[32]);
        var fresh = tokenizer.EncodeBatch(ParquetShards.Read(shard), prependBos: true);
        AssertSameDocuments(fresh, cache.Load(shard));
        Assert.True(cache.TryRead(shard, out var cached));
        AssertSameDocuments(fresh, cached);
        Assert.Contains(cached[1], id => id > ushort.MaxValue && id != tokenizer.BosId);
    }

    [Fact]
    public void Another_tokenizer_does_not_read_the_file_and_replaces_it()
    {
        var shard = WriteShard(0, Sample.Value[..6]);
        var first = CacheFor(Tokenizer.Value, "first");
        first.Load(shard);
        var firstFile = first.PathOf(shard);

        var second = CacheFor(OtherTokenizer.Value, "second");
        Assert.NotEqual(firstFile, second.PathOf(shard));
        Assert.False(second.TryRead(shard, out _));
        AssertSameDocuments(OtherTokenizer.Value.EncodeBatch(Sample.Value[..6], prependBos: true), second.Load(shard));
        Assert.Equal(1, second.Writes);
        Assert.False(File.Exists(firstFile), "the file for the replaced tokenizer is deleted");
        Assert.Single(Directory.GetFiles(Tokens));

        // The same ranks with one token changed hash differently, even in the same folder.
        var folder = Path.Combine(_dir, "second");
        var before = TokenizerFiles.ContentHash(folder);
        var ranks = Path.Combine(folder, TokenizerFiles.RanksFile);
        var lines = File.ReadAllLines(ranks);
        (lines[300], lines[301]) = (lines[301].Split(' ')[0] + " 300", lines[300].Split(' ')[0] + " 301");
        File.WriteAllLines(ranks, lines);
        Assert.NotEqual(before, TokenizerFiles.ContentHash(folder));
    }

    [Fact]
    public void A_changed_shard_invalidates_its_file()
    {
        var tokenizer = Tokenizer.Value;
        var shard = WriteShard(0, Sample.Value[..4]);
        var cache = CacheFor(tokenizer, "tok");
        cache.Load(shard);
        Assert.True(cache.TryRead(shard, out _));

        // New content (new size and time): the stale ids are not served; the new documents are encoded.
        WriteShard(0, Sample.Value[4..10]);
        Assert.False(cache.TryRead(shard, out _));
        AssertSameDocuments(tokenizer.EncodeBatch(Sample.Value[4..10], prependBos: true), cache.Load(shard));
        Assert.True(cache.TryRead(shard, out _));

        // Only the last-write time changes (the same bytes rewritten): also invalidated.
        File.SetLastWriteTimeUtc(shard, File.GetLastWriteTimeUtc(shard).AddSeconds(5));
        Assert.False(cache.TryRead(shard, out _));
        Assert.Equal(3, cache.Rejected); // the two checks after the rewrite, the one after the touch
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("empty")]
    [InlineData("flipped id")]
    [InlineData("flipped length")]
    public void A_damaged_file_is_rejected_and_rebuilt(string damage)
    {
        var tokenizer = Tokenizer.Value;
        var shard = WriteShard(0, Sample.Value[..8]);
        var fresh = tokenizer.EncodeBatch(Sample.Value[..8], prependBos: true);
        var cache = CacheFor(tokenizer, "tok");
        cache.Load(shard);
        var path = cache.PathOf(shard);
        var bytes = File.ReadAllBytes(path);
        switch (damage)
        {
            case "truncated":
                bytes = bytes[..^7];
                break;
            case "empty":
                bytes = [];
                break;
            case "flipped id":
                bytes[^3] ^= 0x01;
                break;
            case "flipped length":
                bytes[ShardTokenCache.HeaderBytes] ^= 0x01;
                break;
        }
        File.WriteAllBytes(path, bytes);

        Assert.False(cache.TryRead(shard, out _));
        AssertSameDocuments(fresh, cache.Load(shard));
        Assert.Equal(2, cache.Rejected);
        Assert.Equal(2, cache.Writes);
        Assert.True(cache.TryRead(shard, out var rebuilt));
        AssertSameDocuments(fresh, rebuilt);
    }

    [Fact]
    public void Packed_batches_are_identical_without_the_cache_while_building_it_reading_it_and_repairing_it()
    {
        var tokenizer = Tokenizer.Value;
        var documents = Sample.Value;
        var shards = new[] { WriteShard(0, documents[..10]), WriteShard(1, documents[10..]) };
        var tokensPerPass = tokenizer.EncodeBatch(documents, prependBos: true).Sum(d => (long)d.Length);
        const int batch = 4, seqLen = 255;
        int batches = (int)(3 * tokensPerPass / (batch * (seqLen + 1))) + 1; // three passes: the shards wrap twice

        List<(int[] Rows, int Epoch)> Take(ShardTokenCache? cache)
        {
            using var loader = new PackedLoader(shards, tokenizer, batch, seqLen, tokenCache: cache);
            var taken = new List<(int[], int)>();
            for (int i = 0; i < batches; i++)
            {
                var (rows, epoch) = loader.Next();
                taken.Add(((int[])rows.Clone(), epoch));
                loader.Return(rows);
            }
            Assert.Null(loader.CacheWriteFailure);
            return taken;
        }

        var without = Take(null);
        var building = CacheFor(tokenizer, "tok");
        var whileBuilding = Take(building);
        Assert.Equal(2, building.Writes);
        var reading = CacheFor(tokenizer, "tok");
        var fromCache = Take(reading);
        Assert.Equal(0, reading.Writes);
        Assert.True(reading.Reads >= 2, $"{reading.Reads} shards read from the cache");
        Assert.True(without[^1].Epoch >= 3, $"epoch {without[^1].Epoch}: the shards did not wrap");

        // A truncated file: the loader does not trust it, tokenizes that shard again and rewrites its file.
        var path = reading.PathOf(shards[1]);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..^100]);
        var repairing = CacheFor(tokenizer, "tok");
        var afterDamage = Take(repairing);
        Assert.True(repairing.Rejected >= 1 && repairing.Writes == 1, $"{repairing.Rejected} rejected, {repairing.Writes} written");
        Assert.True(CacheFor(tokenizer, "tok").TryRead(shards[1], out _), "the rewritten file is valid");

        for (int i = 0; i < batches; i++)
        {
            Assert.Equal(without[i].Epoch, whileBuilding[i].Epoch);
            Assert.Equal(without[i].Epoch, fromCache[i].Epoch);
            Assert.Equal(without[i].Epoch, afterDamage[i].Epoch);
            Assert.True(without[i].Rows.AsSpan().SequenceEqual(whileBuilding[i].Rows), $"batch {i} differs while building the cache");
            Assert.True(without[i].Rows.AsSpan().SequenceEqual(fromCache[i].Rows), $"batch {i} differs when read from the cache");
            Assert.True(without[i].Rows.AsSpan().SequenceEqual(afterDamage[i].Rows), $"batch {i} differs after a damaged cache file");
        }
    }

    /// <summary>A vocabulary beyond 16 bits: each character becomes 65536 + its code, BOS is the last id.</summary>
    private sealed class WideTokenizer : ITokenizer
    {
        public int VocabSize => 65536 + 65536 + 1;
        public int BosId => VocabSize - 1;
        public ReadOnlySpan<int> TokenBytes => throw new NotSupportedException();
        public int[] Encode(string text) => [.. text.Select(c => 65536 + c)];
        public int[][] EncodeBatch(IReadOnlyList<string> documents, bool prependBos)
            => [.. documents.Select(d => prependBos ? [BosId, .. Encode(d)] : Encode(d))];
        public string Decode(ReadOnlySpan<int> ids) => throw new NotSupportedException();
    }
}

using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using Xunit;

namespace AutoResearch.Data.Tests;

public class PackedLoaderTests
{
    /// <summary>A stand-in tokenizer: one id per character (mod 250), BOS = 250.</summary>
    private sealed class CharTokenizer : ITokenizer
    {
        private readonly int[] _bytes = Enumerable.Repeat(1, 251).Select((v, i) => i == 250 ? 0 : v).ToArray();

        public int VocabSize => 251;
        public int BosId => 250;
        public ReadOnlySpan<int> TokenBytes => _bytes;
        public int[] Encode(string text) => text.Select(c => c % 250).ToArray();
        public int[][] EncodeBatch(IReadOnlyList<string> documents, bool prependBos)
            => documents.Select(d => prependBos ? [BosId, .. Encode(d)] : Encode(d)).ToArray();
        public string Decode(ReadOnlySpan<int> ids) => throw new NotSupportedException();
    }

    [Fact]
    public void Batches_are_full_rows_starting_with_bos_and_the_epoch_advances_when_the_shards_wrap()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"autoresearch-loader-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var r = new Random(3);
        var docs = Enumerable.Range(0, 300).Select(i => new string('a', 5 + r.Next(60))).ToList();
        ParquetShards.Write(Path.Combine(dir, ParquetShards.FileName(0)), docs[..150]);
        ParquetShards.Write(Path.Combine(dir, ParquetShards.FileName(1)), docs[150..]);
        long tokensPerPass = docs.Sum(d => d.Length + 1);
        using var loader = new PackedLoader([Path.Combine(dir, ParquetShards.FileName(0)), Path.Combine(dir, ParquetShards.FileName(1))], new CharTokenizer(), batch: 4, seqLen: 31);
        int lastEpoch = 1;
        long consumed = 0;
        for (int i = 0; i < 400; i++)
        {
            var (rows, epoch) = loader.Next();
            Assert.Equal(4 * 32, rows.Length);
            for (int row = 0; row < 4; row++)
                Assert.Equal(250, rows[row * 32]);
            Assert.True(epoch >= lastEpoch, "the epoch never goes back");
            lastEpoch = epoch;
            consumed += rows.Length;
            loader.Return(rows);
        }
        // 400 batches pack more than twice the tokens one pass over the shards holds: the loader has cycled.
        Assert.True(consumed > 2 * tokensPerPass);
        Assert.True(lastEpoch >= 2, $"epoch {lastEpoch} after {consumed} tokens of a {tokensPerPass}-token pass");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_broken_shard_surfaces_as_a_loader_error_naming_the_file()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"autoresearch-loader-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, ParquetShards.FileName(0));
        File.WriteAllText(path, "not parquet");
        using var loader = new PackedLoader([path], new CharTokenizer(), batch: 1, seqLen: 8);
        var e = Assert.Throws<InvalidOperationException>(() => loader.Next());
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Directory.Delete(dir, true);
    }
}

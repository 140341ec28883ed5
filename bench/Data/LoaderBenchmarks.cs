using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Data;

/// <summary>
/// Packed-loader throughput at the training shape, B = 128 rows of T + 1 = 2049 tokens (SPEC §4): one operation opens a
/// <see cref="PackedLoader"/> on the corpus written as 4 Parquet shards, takes <see cref="BatchesPerOperation"/> batches
/// (more than a pass over the sotu sample, so the shards wrap) and closes it; the column gives packed tokens per second.
/// The tokenizer is an 8192-token BPE trained on the same text (the baseline's vocabulary size). Sources: <c>cache</c>, the
/// pre-tokenized shard files (built once in the setup); <c>tokenize</c>, no cache, the tokenizer's chunk cache warm from earlier
/// operations (a long run); <c>tokenize-cold</c>, no cache and a freshly loaded tokenizer every operation (a run's first pass).
/// Run: <c>bench --filter '*LoaderBenchmarks*'</c>.
/// </summary>
[Config(typeof(ThroughputConfig))]
public class LoaderBenchmarks
{
    public const int Batch = 128, SeqLen = 2048, BatchesPerOperation = 16, ShardCount = 4;

    private string _dir = "";
    private string[] _shards = [];
    private string _tokenizerDir = "";
    private BpeTokenizer? _tokenizer;
    private ShardTokenCache? _tokenCache;

    [ParamsSource(nameof(Corpora))]
    public string Corpus { get; set; } = "sotu";

    public static IEnumerable<string> Corpora => BenchCorpus.Names();

    [Params("cache", "tokenize", "tokenize-cold")]
    public string Source { get; set; } = "cache";

    [GlobalSetup]
    public void Setup()
    {
        var documents = BenchCorpus.Documents(Corpus);
        _dir = Path.Combine(Path.GetTempPath(), $"autoresearch-bench-loader-{Guid.NewGuid():N}");
        _tokenizerDir = Path.Combine(_dir, "tokenizer");
        _tokenizer = BpeTrainer.Train(documents, vocabSize: 8192);
        TokenizerFiles.Save(_tokenizer, _tokenizerDir);
        _shards = new string[ShardCount];
        int perShard = (documents.Count + ShardCount - 1) / ShardCount;
        for (int s = 0; s < ShardCount; s++)
        {
            _shards[s] = Path.Combine(_dir, ParquetShards.FileName(s));
            ParquetShards.Write(_shards[s], documents.Skip(s * perShard).Take(perShard).ToList());
        }
        if (Source == "cache")
        {
            _tokenCache = new ShardTokenCache(Path.Combine(_dir, "tokens"), _tokenizer, TokenizerFiles.ContentHash(_tokenizerDir));
            foreach (var shard in _shards)
                _tokenCache.Load(shard);
        }
        ThroughputConfig.Amounts[ThroughputConfig.KeyOf(typeof(LoaderBenchmarks), Corpus)] = (0, (double)BatchesPerOperation * Batch * (SeqLen + 1));
    }

    [IterationSetup]
    public void FreshTokenizer()
    {
        if (Source == "tokenize-cold")
            _tokenizer = TokenizerFiles.Load(_tokenizerDir);
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    /// <summary>Opens a loader, takes the batches, closes it; returns a checksum of the first tokens so nothing is skipped.</summary>
    [Benchmark]
    public long TakeBatches()
    {
        using var loader = new PackedLoader(_shards, _tokenizer!, Batch, SeqLen, tokenCache: _tokenCache);
        long sum = 0;
        for (int i = 0; i < BatchesPerOperation; i++)
        {
            var (rows, epoch) = loader.Next();
            sum += rows[1] + rows[^1] + epoch;
            loader.Return(rows);
        }
        if (_tokenCache is not null && _tokenCache.Writes != ShardCount)
            throw new InvalidOperationException($"the loader wrote {_tokenCache.Writes - ShardCount} cache files: the setup's files were not used");
        return sum;
    }
}

using System.Text;
using AutoResearch.Data.Tokenizer;
using BenchmarkDotNet.Attributes;
using TiktokenTokenizer = Microsoft.ML.Tokenizers.TiktokenTokenizer;

namespace AutoResearch.Bench.Data;

/// <summary>
/// Our BPE encoder against Microsoft.ML.Tokenizers' TiktokenTokenizer, both with the cl100k_base ranks and split pattern (so
/// both produce the same ids: the parity test checks it), encoding every document of a corpus, one thread or all cores
/// (documents in parallel). Both keep their chunk caches warm across iterations, as a loader running for hours would.
/// Run: <c>bench --filter '*TokenizerBenchmarks*'</c>.
/// </summary>
[Config(typeof(ThroughputConfig))]
public class TokenizerBenchmarks
{
    private List<string> _documents = [];
    private BpeTokenizer? _ours;
    private TiktokenTokenizer? _theirs;

    [ParamsSource(nameof(Corpora))]
    public string Corpus { get; set; } = "sotu";

    public static IEnumerable<string> Corpora => BenchCorpus.Names();

    [Params("ours", "Microsoft.ML")]
    public string Encoder { get; set; } = "ours";

    [Params(1, 0)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _documents = BenchCorpus.Documents(Corpus);
        if (Encoder == "ours")
            _ours = BenchCorpus.OursWithCl100k();
        else
            _theirs = TiktokenTokenizer.CreateForModel("gpt-4");
        long bytes = _documents.Sum(d => (long)Encoding.UTF8.GetByteCount(d));
        ThroughputConfig.Amounts[ThroughputConfig.KeyOf(typeof(TokenizerBenchmarks), Corpus)] = (bytes, Encode());
    }

    /// <summary>Encodes every document; returns the token count.</summary>
    [Benchmark]
    public long Encode()
    {
        long tokens = 0;
        var options = new ParallelOptions { MaxDegreeOfParallelism = Threads == 0 ? Environment.ProcessorCount : Threads };
        Parallel.For(0, _documents.Count, options, () => 0L, (i, _, sum) => sum + EncodeOne(_documents[i]), sum => Interlocked.Add(ref tokens, sum));
        return tokens;
    }

    private int EncodeOne(string document) => _ours is not null ? _ours.Encode(document).Length : _theirs!.EncodeToIds(document).Count;
}

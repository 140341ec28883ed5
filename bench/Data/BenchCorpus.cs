using System.IO.Compression;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Tokenizer;

namespace AutoResearch.Bench.Data;

/// <summary>
/// The texts the data benchmarks run on: <c>sotu</c>, the embedded State of the Union sample (233 documents, 10.8 M characters),
/// and <c>corpus</c>, the first <see cref="CorpusDocuments"/> documents of the corpus file named by the
/// <c>AUTORESEARCH_BENCH_CORPUS</c> environment variable (offered only when it is set). Also the cl100k_base ranks that
/// Microsoft.ML.Tokenizers ships, so that our encoder and theirs run the same vocabulary and split pattern.
/// </summary>
public static class BenchCorpus
{
    public const string CorpusVariable = "AUTORESEARCH_BENCH_CORPUS";
    public const int CorpusDocuments = 10_000;

    public static IEnumerable<string> Names()
    {
        yield return "sotu";
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(CorpusVariable)))
            yield return "corpus";
    }

    public static List<string> Documents(string name) => name switch
    {
        "sotu" => [.. CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample())],
        "corpus" => [.. CorpusText.ReadDocuments(CorpusText.Open(Environment.GetEnvironmentVariable(CorpusVariable)
            ?? throw new InvalidOperationException($"set {CorpusVariable} to a corpus file"))).Take(CorpusDocuments)],
        _ => throw new ArgumentException($"unknown corpus '{name}'", nameof(name)),
    };

    /// <summary>Our encoder with the cl100k_base ranks (from the Microsoft.ML.Tokenizers.Data.Cl100kBase package) and pattern.</summary>
    public static BpeTokenizer OursWithCl100k()
    {
        var dataAssembly = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Cl100kBase");
        var resource = dataAssembly.GetManifestResourceNames().Single(n => n.EndsWith("cl100k_base.tiktoken.deflate", StringComparison.Ordinal));
        using var deflate = new DeflateStream(dataAssembly.GetManifestResourceStream(resource)!, CompressionMode.Decompress);
        using var reader = new StreamReader(deflate);
        // The package's copy starts with a "Capacity: N" line and leaves the ranks implicit (one base64 token per line).
        var lines = reader.ReadToEnd().Split('\n').Where(l => l.Length > 0 && !l.StartsWith("Capacity:", StringComparison.Ordinal))
            .Select((l, rank) => l.Contains(' ', StringComparison.Ordinal) ? l : $"{l} {rank}");
        return new BpeTokenizer(TokenizerFiles.ReadRanks("cl100k_base.tiktoken", lines), ChunkSplitter.Cl100kPattern);
    }
}

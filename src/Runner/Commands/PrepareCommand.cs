using System.CommandLine;
using System.Diagnostics;
using AutoResearch.Data;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using Spectre.Console;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch prepare`: the data shards and the tokenizer in the cache (SPEC §1–3). With --from, local text (plain, .xz,
/// Parquet, or a folder) becomes the shard layout; without it, existing shards are kept, and a cache with no data gets the
/// embedded public-domain sample. Then the BPE tokenizer is trained on the training shards and saved with its token byte
/// lengths, and checked by a round trip.
/// </summary>
public static class PrepareCommand
{
    public static Command Create()
    {
        var from = new Option<string?>("--from") { Description = "Import local text instead of downloading: a .txt or .xz corpus (documents separated by a NUL line), Parquet files with a 'text' column, or a folder of these" };
        var cache = new Option<string?>("--cache") { Description = $"Cache folder (default: ${CachePaths.Variable} or ~/.cache/autoresearch)" };
        var vocab = new Option<int>("--vocab-size") { Description = "Tokenizer size including the 4 special tokens", DefaultValueFactory = _ => 8192 };
        var maxChars = new Option<long>("--max-chars") { Description = "Characters of training text the tokenizer learns from", DefaultValueFactory = _ => 1_000_000_000 };
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of imported documents in the validation shard (with --from)", DefaultValueFactory = _ => 0.01 };
        var command = new Command("prepare", "Prepare the data shards and train the tokenizer (offline: --from PATH, or the embedded sample).")
        {
            from, cache, vocab, maxChars, valFraction,
        };
        command.SetAction(parse => Run(CachePaths.From(parse.GetValue(cache)), parse.GetValue(from), parse.GetValue(vocab), parse.GetValue(maxChars), parse.GetValue(valFraction)));
        return command;
    }

    public static int Run(CachePaths cache, string? from, int vocabSize, long maxChars, double validationFraction)
    {
        ArgumentNullException.ThrowIfNull(cache);
        var total = Stopwatch.StartNew();
        bool haveData = Directory.Exists(cache.Data) && Directory.GetFiles(cache.Data, "shard_*.parquet").Length >= 2;
        if (from is not null)
        {
            var (shards, val, train) = CorpusImport.WriteShards(CorpusImport.ReadDocuments(from), cache.Data, validationFraction);
            Console.WriteLine($"data: imported {train + val} documents from {from}: {shards} training shard(s) and the validation shard ({val} documents) in {cache.Data}");
        }
        else if (haveData)
        {
            Console.WriteLine($"data: using the shards already in {cache.Data}");
        }
        else
        {
            Console.WriteLine("data: no shards and no --from; downloading is not available in this build, so using the embedded public-domain sample (State of the Union addresses)");
            var (shards, val, train) = CorpusImport.WriteShards(CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample()), cache.Data, validationFraction);
            Console.WriteLine($"data: {train + val} documents: {shards} training shard(s) and the validation shard ({val} documents) in {cache.Data}");
        }

        var (trainShards, validationShard) = ParquetShards.List(cache.Data);
        var watch = Stopwatch.StartNew();
        BpeTokenizer? tokenizer = null;
        IEnumerable<string> TrainingText() => trainShards.SelectMany(ParquetShards.Read);
        if (Console.IsOutputRedirected)
        {
            tokenizer = BpeTrainer.Train(TrainingText(), vocabSize, null, maxChars);
        }
        else
        {
            AnsiConsole.Progress().Start(ctx =>
            {
                var task = ctx.AddTask("training the tokenizer", maxValue: 1.0);
                tokenizer = BpeTrainer.Train(TrainingText(), vocabSize, new Progress<double>(p => task.Value = p), maxChars);
                task.Value = 1.0;
            });
        }
        TokenizerFiles.Save(tokenizer!, cache.Tokenizer);
        Console.WriteLine($"tokenizer: {tokenizer!.VocabSize} tokens trained in {watch.Elapsed.TotalSeconds:F1} s, saved to {cache.Tokenizer}");

        // Round trip on a fixed string and on the first validation document.
        var loaded = TokenizerFiles.Load(cache.Tokenizer);
        var probe = "Hello world! Numbers: 123. Unicode: 你好";
        var sample = ParquetShards.Read(validationShard)[0];
        foreach (var text in new[] { probe, sample })
        {
            if (loaded.Decode(loaded.Encode(text)) != text)
                throw new InvalidOperationException($"the saved tokenizer in {cache.Tokenizer} does not round-trip its text: the files are damaged");
        }
        double bytesPerToken = System.Text.Encoding.UTF8.GetByteCount(sample) / (double)Math.Max(1, loaded.Encode(sample).Length);
        Console.WriteLine($"tokenizer: round trip OK; {bytesPerToken:F2} bytes/token on a validation document; prepare took {total.Elapsed.TotalSeconds:F1} s");
        return 0;
    }
}

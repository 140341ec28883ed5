using System.CommandLine;
using System.Diagnostics;
using AutoResearch.Data;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using Spectre.Console;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch prepare`: the data shards and the tokenizer in the cache (SPEC §1–3). The data, in this order: with --from,
/// local text (plain, .xz, Parquet, or a folder) becomes the shard layout; else a complete set of shards already in the cache
/// is kept; else N training shards and the validation shard are downloaded (an interrupted download is completed); and if
/// the server cannot be reached at all (offline) and the cache holds no shards, the embedded public-domain sample is used.
/// Then the BPE tokenizer is trained on the training shards and saved with its token byte lengths, and checked by a round trip.
/// </summary>
public static class PrepareCommand
{
    public static Command Create()
    {
        var from = new Option<string?>("--from") { Description = "Import local text instead of downloading: a .txt or .xz corpus (documents separated by a NUL line), Parquet files with a 'text' column, or a folder of these" };
        var shards = new Option<int>("--shards") { Description = $"Training shards to download when the cache has no complete set; the validation shard ({ParquetShards.FileName(ParquetShards.ValidationIndex)}) is always fetched too. Offline (no connection possible), the embedded sample is used instead", DefaultValueFactory = _ => ShardDownloader.DefaultTrainShards };
        shards.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > ParquetShards.ValidationIndex)
                result.AddError($"--shards must lie between 1 and {ParquetShards.ValidationIndex}");
        });
        var baseUrl = new Option<string?>("--base-url") { Description = $"Where the shard files are downloaded from (default: ${ShardDownloader.BaseUrlVariable} or {ShardDownloader.DefaultBaseUrl})" };
        var cache = new Option<string?>("--cache") { Description = $"Cache folder (default: ${CachePaths.Variable} or ~/.cache/autoresearch)" };
        var vocab = new Option<int>("--vocab-size") { Description = "Tokenizer size including the 4 special tokens", DefaultValueFactory = _ => 8192 };
        var maxChars = new Option<long>("--max-chars") { Description = "Characters of training text the tokenizer learns from", DefaultValueFactory = _ => 1_000_000_000 };
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of imported documents in the validation shard (with --from)", DefaultValueFactory = _ => 0.01 };
        var command = new Command("prepare", "Download the data shards (offline: --from PATH, or the embedded sample) and train the tokenizer.")
        {
            from, shards, baseUrl, cache, vocab, maxChars, valFraction,
        };
        command.SetAction(parse => Run(CachePaths.From(parse.GetValue(cache)), parse.GetValue(from), parse.GetValue(vocab), parse.GetValue(maxChars),
            parse.GetValue(valFraction), parse.GetValue(shards), ShardDownloader.ResolveBaseUrl(parse.GetValue(baseUrl))));
        return command;
    }

    /// <param name="baseUrl">Where shards are downloaded from; null: <see cref="ShardDownloader.ResolveBaseUrl"/> without a flag.</param>
    /// <param name="retryBaseDelay">The first back-off of a failed download (tests make it short); null: the downloader's default.</param>
    public static int Run(CachePaths cache, string? from, int vocabSize, long maxChars, double validationFraction,
        int trainShards = ShardDownloader.DefaultTrainShards, Uri? baseUrl = null, TimeSpan? retryBaseDelay = null)
    {
        ArgumentNullException.ThrowIfNull(cache);
        var total = Stopwatch.StartNew();
        if (from is not null)
        {
            var (shards, val, train) = CorpusImport.WriteShards(CorpusImport.ReadDocuments(from), cache.Data, validationFraction);
            Console.WriteLine($"data: imported {train + val} documents from {from}: {shards} training shard(s) and the validation shard ({val} documents) in {cache.Data}");
        }
        else if (HasCompleteShards(cache.Data))
        {
            Console.WriteLine($"data: using the shards already in {cache.Data}");
        }
        else
        {
            DownloadOrUseSample(cache, trainShards, baseUrl ?? ShardDownloader.ResolveBaseUrl(null), retryBaseDelay, validationFraction);
        }

        var (trainFiles, validationShard) = ParquetShards.List(cache.Data);
        var watch = Stopwatch.StartNew();
        BpeTokenizer? tokenizer = null;
        IEnumerable<string> TrainingText() => trainFiles.SelectMany(ParquetShards.Read);
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
        Console.WriteLine($"tokenizer: round trip OK; {bytesPerToken:F2} bytes/token on a validation document");
        PreTokenize(cache, loaded, trainFiles.Append(validationShard).ToList());
        Console.WriteLine($"prepare took {total.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>
    /// Writes every shard's token ids into the token cache (<see cref="ShardTokenCache"/>), so `train` reads ids from its first
    /// step on instead of tokenizing its first pass. Shards whose file is already valid are only checked. The cache only
    /// saves time: a file that cannot be written is reported in one line and the loader will tokenize that shard itself.
    /// </summary>
    private static void PreTokenize(CachePaths cache, BpeTokenizer tokenizer, List<string> shards)
    {
        var watch = Stopwatch.StartNew();
        var tokenCache = new ShardTokenCache(cache.Tokens, tokenizer, TokenizerFiles.ContentHash(cache.Tokenizer));
        long ids = 0;
        Exception? failure = null;
        void Encode(string shard)
        {
            try
            {
                foreach (var document in tokenCache.Load(shard))
                    ids += document.Length;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                failure ??= e;
            }
        }
        if (Console.IsOutputRedirected)
        {
            shards.ForEach(Encode);
        }
        else
        {
            AnsiConsole.Progress().Start(ctx =>
            {
                var task = ctx.AddTask("pre-tokenizing the shards", maxValue: shards.Count);
                foreach (var shard in shards)
                {
                    Encode(shard);
                    task.Increment(1);
                }
            });
        }
        Console.WriteLine($"tokens: {ids / 1e6:F1} M ids of {shards.Count} shards in {cache.Tokens} ({tokenCache.Writes} written, "
            + $"{tokenCache.Reads} already valid) in {watch.Elapsed.TotalSeconds:F1} s");
        if (failure is not null)
            Console.WriteLine($"tokens: could not write the token cache ({failure.Message}); training will tokenize those shards itself");
    }

    /// <summary>
    /// The validation shard and at least one training shard. The downloader fetches the validation shard last, so a folder
    /// without it holds an interrupted download (or nothing) and is completed by the next download.
    /// </summary>
    private static bool HasCompleteShards(string dataDirectory)
        => File.Exists(Path.Combine(dataDirectory, ParquetShards.FileName(ParquetShards.ValidationIndex)))
            && Directory.GetFiles(dataDirectory, "shard_*.parquet").Length >= 2;

    private static void DownloadOrUseSample(CachePaths cache, int trainShards, Uri baseUrl, TimeSpan? retryBaseDelay, double validationFraction)
    {
        using var downloader = new ShardDownloader(baseUrl) { BaseDelay = retryBaseDelay ?? TimeSpan.FromSeconds(1) };
        Console.WriteLine($"data: downloading {trainShards} training shard(s) and the validation shard from {downloader.BaseUrl} to {cache.Data}");
        var watch = Stopwatch.StartNew();
        try
        {
            var (downloaded, skipped, bytes) = ShardDownloadDisplay.Show(observer => downloader.DownloadAsync(cache.Data, trainShards, observer).GetAwaiter().GetResult());
            Console.WriteLine($"data: {downloaded} shard(s), {bytes / 1e6:F1} MB, downloaded in {watch.Elapsed.TotalSeconds:F1} s ({skipped} already there) to {cache.Data}");
        }
        catch (ShardSourceUnreachableException e)
        {
            if (Directory.GetFiles(cache.Data, "shard_*.parquet").Length > 0)
                throw new IOException($"{e.Message}; {cache.Data} holds an unfinished download: run prepare again once the network is back, or import local text with --from", e);
            Console.WriteLine($"data: offline ({e.Message}); using the embedded public-domain sample (State of the Union addresses) instead");
            var (shards, val, train) = CorpusImport.WriteShards(CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample()), cache.Data, validationFraction);
            Console.WriteLine($"data: {train + val} documents: {shards} training shard(s) and the validation shard ({val} documents) in {cache.Data}");
        }
    }
}

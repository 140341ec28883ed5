using System.CommandLine;
using System.Diagnostics;
using AutoResearch.Data;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Runner.Experiment;
using Spectre.Console;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch prepare`: the data shards and the tokenizer in the cache (SPEC §1–3). The data, in this order: with --from,
/// local text (plain, .xz, .gz, Parquet, or a folder) becomes the shard layout; else a complete set of shards already in the
/// cache is kept; else N training shards and the validation shard are downloaded (an interrupted download is completed); and if
/// the server cannot be reached at all (offline) and nothing was downloaded yet, the embedded public-domain sample is used
/// (enough for smoke tests, not for an experiment). Then the BPE tokenizer is trained on the training shards, saved with its
/// token byte lengths, checked by a round trip, and every shard is pre-tokenized.
/// Everything is built in a staging folder and swapped into the cache at the end (<see cref="CacheStaging"/>), under the
/// cache's lock (<see cref="CacheLock"/>): a failed or interrupted prepare leaves the previous cache as it was, old and new
/// shards never mix, and a second prepare or a train on the same cache is refused while it runs.
/// </summary>
public static class PrepareCommand
{
    public static Command Create()
    {
        var from = new Option<string?>("--from") { Description = "Import local text instead of downloading: a UTF-8 corpus, plain, .xz or .gz (documents separated by a NUL line), Parquet files with a 'text' column, or a folder of these" };
        var shards = new Option<int>("--shards") { Description = $"Training shards to download when the cache has no complete set; the validation shard ({ParquetShards.FileName(ParquetShards.ValidationIndex)}) is always fetched too. Offline (no connection possible), the embedded sample is used instead", DefaultValueFactory = _ => ShardDownloader.DefaultTrainShards };
        shards.Require(count => count is >= 1 and <= ParquetShards.ValidationIndex, _ => $"--shards must lie between 1 and {ParquetShards.ValidationIndex}");
        var baseUrl = new Option<string?>("--base-url") { Description = $"Where the shard files are downloaded from (default: ${ShardDownloader.BaseUrlVariable} or {ShardDownloader.DefaultBaseUrl})" };
        var cache = new Option<string?>("--cache") { Description = $"Cache folder (default: ${CachePaths.Variable} or ~/.cache/autoresearch)" };
        // The tokenizer's settings are checked while parsing: they are used only after the shards are downloaded or imported.
        var vocab = new Option<int>("--vocab-size") { Description = "Tokenizer size including the 4 special tokens", DefaultValueFactory = _ => 8192 };
        int leastVocab = 256 + BpeTokenizer.SpecialTokens.Count;
        vocab.Require(size => size >= leastVocab,
            size => $"--vocab-size must be at least {leastVocab} (the 256 bytes and {BpeTokenizer.SpecialTokens.Count} special tokens); got {size}");
        var maxChars = new Option<long>("--max-chars") { Description = "Characters of training text the tokenizer learns from", DefaultValueFactory = _ => 1_000_000_000 }.AtLeastOne();
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of imported documents in the validation shard (with --from)", DefaultValueFactory = _ => 0.01 };
        valFraction.Require(fraction => fraction is > 0 and < 1,
            fraction => $"--val-fraction must lie strictly between 0 and 1; got {fraction.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        var command = new Command("prepare", "Download the data shards (offline: --from PATH, or the embedded sample) and train the tokenizer.")
        {
            from, shards, baseUrl, cache, vocab, maxChars, valFraction,
        };
        command.SetAction((parse, cancel) => Task.FromResult(Run(CachePaths.From(parse.GetValue(cache)), parse.GetValue(from), parse.GetValue(vocab),
            parse.GetValue(maxChars), parse.GetValue(valFraction), parse.GetValue(shards), ShardDownloader.ResolveBaseUrl(parse.GetValue(baseUrl)), cancel: cancel)));
        return command;
    }

    /// <param name="baseUrl">Where shards are downloaded from; null: <see cref="ShardDownloader.ResolveBaseUrl"/> without a flag.</param>
    /// <param name="retryBaseDelay">The first back-off of a failed download (tests make it short); null: the downloader's default.</param>
    /// <param name="cancel">Checked between the steps; once it fires nothing is swapped in.</param>
    public static int Run(CachePaths cache, string? from, int vocabSize, long maxChars, double validationFraction,
        int trainShards = ShardDownloader.DefaultTrainShards, Uri? baseUrl = null, TimeSpan? retryBaseDelay = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        var total = Stopwatch.StartNew();
        using var cacheLock = CacheLock.ForUpdate(cache);
        CacheStaging.FinishInterruptedSwap(cache);
        baseUrl ??= ShardDownloader.ResolveBaseUrl(null);
        bool reuse = from is null && HasCompleteShards(cache.Data);
        if (reuse)
            CheckKeptShards(cache.Data);
        var staging = CacheStaging.Begin(cache, from is not null ? $"import {Path.GetFullPath(from)}" : reuse ? "the cache's shards" : "download",
            resumable: from is null && !reuse);
        var staged = staging.Staging;
        Console.WriteLine($"prepare: building in {staged.Root}; {cache.Root} changes only once everything is ready");
        if (from is not null)
        {
            var (shards, val, train) = CorpusImport.WriteShards(CorpusImport.ReadDocuments(from), staged.Data, validationFraction);
            Console.WriteLine($"data: imported {train + val} documents from {from}: {shards} training shard(s) and the validation shard ({val} documents)");
        }
        else if (reuse)
        {
            Console.WriteLine($"data: using the shards already in {cache.Data}");
        }
        else
        {
            DownloadOrUseSample(staging, trainShards, baseUrl, retryBaseDelay, validationFraction);
        }
        cancel.ThrowIfCancellationRequested();

        string dataDirectory = reuse ? cache.Data : staged.Data;
        var (trainFiles, validationShard) = ParquetShards.List(dataDirectory);
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
        TokenizerFiles.Save(tokenizer!, staged.Tokenizer);
        Console.WriteLine($"tokenizer: {tokenizer!.VocabSize} tokens trained in {watch.Elapsed.TotalSeconds:F1} s");
        if (tokenizer.VocabSize != ExperimentConstants.VocabSize)
            Console.WriteLine($"tokenizer: note: `train` needs {ExperimentConstants.VocabSize} tokens (the evaluation contract); a tokenizer of {tokenizer.VocabSize} is for `tokenize` only");
        cancel.ThrowIfCancellationRequested();

        // Round trip on a fixed string and on the first validation document.
        var loaded = TokenizerFiles.Load(staged.Tokenizer);
        var probe = "Hello world! Numbers: 123. Unicode: 你好";
        var sample = ParquetShards.Read(validationShard)[0];
        foreach (var text in new[] { probe, sample })
        {
            if (loaded.Decode(loaded.Encode(text)) != text)
                throw new InvalidOperationException($"the saved tokenizer in {staged.Tokenizer} does not round-trip its text: the files are damaged");
        }
        double bytesPerToken = System.Text.Encoding.UTF8.GetByteCount(sample) / (double)Math.Max(1, loaded.Encode(sample).Length);
        Console.WriteLine($"tokenizer: round trip OK; {bytesPerToken:F2} bytes/token on a validation document");
        PreTokenize(staged, loaded, trainFiles.Append(validationShard).ToList(), cache.Tokens);
        cancel.ThrowIfCancellationRequested();

        staging.Commit();
        Console.WriteLine($"prepare: {cache.Root} now holds the new {(reuse ? "tokenizer and token cache" : "shards, tokenizer and token cache")} "
            + $"({cache.Data}, {cache.Tokenizer}, {cache.Tokens}); took {total.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>
    /// Writes every shard's token ids into the token cache (<see cref="ShardTokenCache"/>), so `train` reads ids from its first
    /// step on instead of tokenizing its first pass. Shards whose file is already valid are only checked. The cache only
    /// saves time: a file that cannot be written is reported in one line and the loader will tokenize that shard itself.
    /// </summary>
    private static void PreTokenize(CachePaths cache, BpeTokenizer tokenizer, List<string> shards, string finalFolder)
    {
        Directory.CreateDirectory(cache.Tokens); // swapped in even when empty, so no file of the old tokenizer stays
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
        Console.WriteLine($"tokens: {ids / 1e6:F1} M ids of {shards.Count} shards for {finalFolder} ({tokenCache.Writes} written, "
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

    /// <summary>
    /// The shards a prepare keeps open as Parquet (a footer check, no documents read): a damaged one would otherwise be kept by
    /// every later prepare, each failing on it while training the tokenizer, with nothing saying how to get rid of it.
    /// </summary>
    private static void CheckKeptShards(string dataDirectory)
    {
        try
        {
            ParquetShards.CheckAll([.. Directory.GetFiles(dataDirectory, "shard_*.parquet").Order(StringComparer.Ordinal)]);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{e.Message}; prepare keeps the shards already in {dataDirectory} and so would keep this one: "
                + $"delete it (or the whole folder, to download every shard again) and run prepare again", e);
        }
    }

    private static void DownloadOrUseSample(CacheStaging staging, int trainShards, Uri baseUrl, TimeSpan? retryBaseDelay, double validationFraction)
    {
        var data = staging.Staging.Data;
        using var downloader = new ShardDownloader(baseUrl) { BaseDelay = retryBaseDelay ?? TimeSpan.FromSeconds(1) };
        Console.WriteLine($"data: downloading {trainShards} training shard(s) and the validation shard from {downloader.BaseUrl}"
            + (staging.HasStagedShards ? " (completing an unfinished download)" : ""));
        if (staging.HasStagedShards)
        {
            // An earlier run may have asked for more shards (--shards): keep only those asked for now.
            var wanted = ShardDownloader.ShardIndices(trainShards).Select(ParquetShards.FileName).ToHashSet(StringComparer.Ordinal);
            foreach (var extra in Directory.GetFiles(data, "shard_*.parquet").Where(f => !wanted.Contains(Path.GetFileName(f))))
                File.Delete(extra);
        }
        var watch = Stopwatch.StartNew();
        try
        {
            var (downloaded, skipped, bytes) = ShardDownloadDisplay.Show(observer => downloader.DownloadAsync(data, trainShards, observer).GetAwaiter().GetResult());
            Console.WriteLine($"data: {downloaded} shard(s), {bytes / 1e6:F1} MB, downloaded in {watch.Elapsed.TotalSeconds:F1} s ({skipped} already there)");
        }
        catch (ShardSourceUnreachableException e)
        {
            if (staging.HasStagedShards)
                throw new IOException($"{e.Message}; {data} holds an unfinished download: run prepare again once the network is back, or import local text with --from", e);
            Console.WriteLine($"data: offline ({e.Message}); using the embedded public-domain sample (State of the Union addresses) instead");
            staging.ChangeOrigin("the embedded sample"); // not resumed as a download if a later step fails
            var (shards, val, train) = CorpusImport.WriteShards(CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample()), data, validationFraction);
            Console.WriteLine($"data: {train + val} documents: {shards} training shard(s) and the validation shard ({val} documents)");
            Console.WriteLine("data: the embedded sample (about 2 M tokens) is for smoke tests and `train --device cpu` only: a 5-minute GPU run "
                + "would read it hundreds of times, the model would memorise it and val_bpb would say little; download the shards or import a corpus "
                + "with --from for an experiment");
        }
    }
}

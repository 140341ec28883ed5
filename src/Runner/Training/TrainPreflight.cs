using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Runner.Experiment;

namespace AutoResearch.Runner.Training;

/// <summary>
/// What `train` checks before its first step, so that a run that would fail at the end (after a 5-minute budget) fails at
/// once, saying what to change: the tokenizer against the contract's vocabulary, the --save path, and the validation shard
/// (present, and readable to its last document). Each check throws with a message naming the file or flag.
/// </summary>
public static class TrainPreflight
{
    /// <summary>Runs every check, cheapest first.</summary>
    public static void Check(ITokenizer tokenizer, string tokenizerFolder, string? savePath, IReadOnlyList<string> trainShards, string validationShard,
        ShardTokenCache tokenCache)
    {
        CheckVocabulary(tokenizer, tokenizerFolder);
        CheckSavePath(savePath);
        CheckTrainingShards(trainShards, tokenCache);
        CheckValidationShard(validationShard, tokenizer, tokenCache);
    }

    /// <summary>
    /// Each training shard the loader will have to read (no valid token cache file stands in for it) opens as a shard: a
    /// truncated one (no Parquet footer) would otherwise fail the run when the loader reaches it, minutes in. Footers only, side
    /// by side; damage inside a shard's pages still fails when its page is read, naming the file.
    /// </summary>
    public static void CheckTrainingShards(IReadOnlyList<string> trainShards, ShardTokenCache tokenCache)
    {
        ArgumentNullException.ThrowIfNull(trainShards);
        ArgumentNullException.ThrowIfNull(tokenCache);
        var unread = trainShards.Where(shard => !tokenCache.TryCount(shard, out _, out _)).ToArray();
        try
        {
            ParquetShards.CheckAll(unread); // the first damaged shard in the loader's order
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{e.Message}: delete it (or the whole data folder) and run `autoresearch prepare` again", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"a training shard cannot be read: {e.Message}", e);
        }
    }

    /// <summary>The tokenizer has exactly <see cref="ExperimentConstants.VocabSize"/> tokens: val_bpb is comparable only then.</summary>
    public static void CheckVocabulary(ITokenizer tokenizer, string tokenizerFolder)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabSize != ExperimentConstants.VocabSize)
            throw new InvalidDataException($"the tokenizer in {tokenizerFolder} has {tokenizer.VocabSize} tokens; train needs {ExperimentConstants.VocabSize} "
                + "(the evaluation contract: val_bpb is comparable only with it): run `autoresearch prepare` without --vocab-size");
    }

    /// <summary>
    /// --save-optimizer names a file it may write (<see cref="CheckSavePath"/>) that is none of <paramref name="others"/> (the
    /// command's other files, each with its option; a null path is skipped): the state would overwrite it, or be overwritten.
    /// </summary>
    public static void CheckOptimizerStatePath(string? path, params (string? Path, string Option)[] others)
    {
        if (path is null)
            return;
        CheckSavePath(path, "--save-optimizer", "optimizer.safetensors");
        foreach (var (other, option) in others)
        {
            if (other is not null && SamePath(path, other))
                throw new ArgumentException($"--save-optimizer '{path}' is the {option} file; give the optimizer's state a file of its own");
        }
    }

    /// <summary>Whether two paths name the same file (as written: relative to the working folder, no link followed).</summary>
    public static bool SamePath(string a, string b) => string.Equals(Path.GetFullPath(a), Path.GetFullPath(b), StringComparison.Ordinal);

    /// <summary>
    /// --save names a file in an existing folder where a file can be created (the checkpoint is written to a temporary name
    /// beside it, then renamed): probed by creating and deleting one.
    /// </summary>
    public static void CheckSavePath(string? savePath, string option = "--save", string example = "model.safetensors")
    {
        if (savePath is null)
            return;
        if (string.IsNullOrWhiteSpace(savePath))
            throw new ArgumentException($"{option} needs a file name, e.g. {example}");
        var full = Path.GetFullPath(savePath);
        if (Directory.Exists(full))
            throw new ArgumentException($"{option} '{savePath}' is a folder; give a file name, e.g. {Path.Combine(savePath, example)}");
        var folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"{option} '{savePath}': the folder {folder} does not exist; create it or save elsewhere");
        var probe = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.probe");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{option} '{savePath}': cannot write in {folder} ({e.Message}); save elsewhere", e);
        }
    }

    /// <summary>
    /// The validation shard reads to its last document: from its token cache file when that is valid (checked against the
    /// shard and a hash), else by reading the shard, whose ids then go into the file the evaluation will read (when the cache
    /// is writable: the loader tokenizes the shard itself otherwise).
    /// </summary>
    public static void CheckValidationShard(string validationShard, ITokenizer tokenizer, ShardTokenCache tokenCache)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(tokenCache);
        if (tokenCache.TryRead(validationShard, out _))
            return;
        IReadOnlyList<string> documents;
        try
        {
            documents = ParquetShards.Read(validationShard); // a damaged or empty shard throws, naming it
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"the validation shard {validationShard} cannot be read: {e.Message}", e);
        }
        try
        {
            tokenCache.Write(validationShard, tokenizer.EncodeBatch(documents, prependBos: true));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only time is lost: the evaluation's loader tokenizes the shard itself.
        }
    }
}

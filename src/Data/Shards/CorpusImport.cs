using AutoResearch.Data.Corpus;

namespace AutoResearch.Data.Shards;

/// <summary>
/// `prepare --from`: local text becomes the standard shard layout. Inputs: plain text (documents separated by a line holding a
/// single NUL), the same xz- or gzip-compressed, Parquet files with a <c>text</c> column, or a folder of these. Documents are
/// shuffled with a fixed seed; a fixed fraction becomes the pinned validation shard (shard_06542), the rest training shards.
/// </summary>
public static class CorpusImport
{
    public const int DocumentsPerShard = 20_000;

    public static IEnumerable<string> ReadDocuments(string path)
    {
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path).Where(IsInput).Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new FileNotFoundException($"'{path}' holds no .txt, .xz, .gz or .parquet files to import");
            return files.SelectMany(ReadFile);
        }
        if (!File.Exists(path))
            throw new FileNotFoundException($"--from '{path}' does not exist", path);
        return ReadFile(path);
    }

    private static bool IsInput(string file)
        => file.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".xz", StringComparison.OrdinalIgnoreCase)
            || file.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".txt", StringComparison.OrdinalIgnoreCase);

    private static IEnumerable<string> ReadFile(string file)
        => file.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase) ? ParquetShards.Read(file) : CorpusText.ReadDocuments(file);

    /// <summary>Writes the shards into <paramref name="dataDirectory"/>; returns (training shards, validation documents).</summary>
    public static (int TrainShards, int ValidationDocuments, int TrainDocuments) WriteShards(IEnumerable<string> documents, string dataDirectory,
        double validationFraction = 0.01, int seed = 1234)
    {
        var all = documents.ToList();
        if (all.Count < 2)
            throw new InvalidDataException($"the input holds {all.Count} document(s); at least two are needed (one for validation)");
        if (validationFraction <= 0 || validationFraction >= 1)
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "the validation fraction must lie strictly between 0 and 1");
        var random = new Random(seed);
        for (int i = all.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (all[i], all[j]) = (all[j], all[i]);
        }
        int validation = Math.Max(1, (int)Math.Round(all.Count * validationFraction));
        Directory.CreateDirectory(dataDirectory);
        ParquetShards.Write(Path.Combine(dataDirectory, ParquetShards.FileName(ParquetShards.ValidationIndex)), all.GetRange(0, validation));
        int shards = 0;
        for (int start = validation; start < all.Count; start += DocumentsPerShard, shards++)
            ParquetShards.Write(Path.Combine(dataDirectory, ParquetShards.FileName(shards)), all.GetRange(start, Math.Min(DocumentsPerShard, all.Count - start)));
        return (shards, validation, all.Count - validation);
    }
}

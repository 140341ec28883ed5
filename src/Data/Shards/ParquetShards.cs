using Parquet;
using Parquet.Schema;

namespace AutoResearch.Data.Shards;

/// <summary>
/// The shard files of SPEC §2: Parquet with a string column <c>text</c>, one document per row, named shard_00000.parquet …;
/// the shard with the highest index (6542 for the public data set) is the validation shard.
/// </summary>
public static class ParquetShards
{
    public const string TextColumn = "text";

    /// <summary>The index of the pinned validation shard of the public data set.</summary>
    public const int ValidationIndex = 6542;

    public static string FileName(int index) => $"shard_{index:D5}.parquet";

    /// <summary>Writes documents as one shard, to a temporary name renamed when complete.</summary>
    public static void Write(string path, IReadOnlyList<string> documents) => WriteAsync(path, documents).GetAwaiter().GetResult();

    private static async Task WriteAsync(string path, IReadOnlyList<string> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var field = new DataField<string>(TextColumn);
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            await using (var stream = File.Create(temp))
            {
                await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(field), stream);
                const int rowGroup = 4096;
                for (int start = 0; start < documents.Count; start += rowGroup)
                {
                    using var group = writer.CreateRowGroup();
                    await group.WriteAsync(field, documents.Skip(start).Take(rowGroup).ToArray(), null);
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>Reads the documents of a shard; a bad file, a missing text column or an empty shard is an error naming the file.</summary>
    public static IReadOnlyList<string> Read(string path) => ReadAsync(path).GetAwaiter().GetResult();

    private static async Task<List<string>> ReadAsync(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"shard '{path}' does not exist: run `autoresearch prepare`", path);
        await using var stream = File.OpenRead(path);
        var (reader, field) = await OpenAsync(path, stream);
        await using (reader)
        {
            var documents = new List<string>();
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                var values = await ReadRowGroupAsync(path, reader, field, g);
                foreach (var v in values)
                {
                    if (!string.IsNullOrEmpty(v))
                        documents.Add(v);
                }
            }
            if (documents.Count == 0)
                throw new InvalidDataException($"shard '{path}' holds no documents");
            return documents;
        }
    }

    /// <summary>
    /// The text of one row group. A file whose footer reads but whose pages are damaged fails in the decoder (e.g. Snappy's
    /// "Invalid copy offset"), which says nothing of the file: the error names it.
    /// </summary>
    private static async Task<string?[]> ReadRowGroupAsync(string path, ParquetReader reader, DataField field, int index)
    {
        try
        {
            using var group = reader.OpenRowGroupReader(index);
            var values = new string?[group.RowCount];
            await group.ReadAsync(field, values.AsMemory(), null);
            return values;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' is not a readable Parquet file (row group {index} is damaged): {e.Message}", e);
        }
    }

    /// <summary>
    /// Checks that a file is a shard without reading its documents: it opens as Parquet (a truncated file has no footer), has a
    /// string <c>text</c> column and at least one row. Throws <see cref="InvalidDataException"/> naming the file otherwise.
    /// </summary>
    public static void Check(string path) => CheckAsync(path).GetAwaiter().GetResult();

    private static async Task CheckAsync(string path)
    {
        await using var stream = File.OpenRead(path);
        var (reader, _) = await OpenAsync(path, stream);
        await using (reader)
        {
            if (reader.Metadata is { NumRows: 0 })
                throw new InvalidDataException($"shard '{path}' holds no documents");
        }
    }

    /// <summary>
    /// <see cref="Check"/> of each file, side by side (footers only); throws the failure of the first damaged or unreadable file
    /// in the list's order (<see cref="InvalidDataException"/>, <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/>),
    /// whichever check finished first.
    /// </summary>
    public static void CheckAll(IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var errors = new Exception?[paths.Count];
        Parallel.For(0, paths.Count, i =>
        {
            try
            {
                Check(paths[i]);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                errors[i] = e;
            }
        });
        if (errors.FirstOrDefault(e => e is not null) is { } first)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
    }

    /// <summary>The uncompressed size of a shard's column data in bytes, from its footer alone (about the UTF-8 size of its text).</summary>
    public static long TextBytes(string path) => TextBytesAsync(path).GetAwaiter().GetResult();

    private static async Task<long> TextBytesAsync(string path)
    {
        await using var stream = File.OpenRead(path);
        var (reader, _) = await OpenAsync(path, stream);
        await using (reader)
            return reader.Metadata?.RowGroups.Sum(g => g.TotalByteSize) ?? 0;
    }

    /// <summary>Opens a shard's reader and finds its string text column; errors name the file.</summary>
    private static async Task<(ParquetReader Reader, DataField Text)> OpenAsync(string path, Stream stream)
    {
        ParquetReader reader;
        try
        {
            reader = await ParquetReader.CreateAsync(stream);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' is not a readable Parquet file (corrupt or truncated): {e.Message}", e);
        }
        var fields = reader.Schema.GetDataFields();
        var field = fields.FirstOrDefault(f => f.Name == TextColumn);
        // Parquet.Net reports a UTF-8 string column as string or as ReadOnlyMemory<char>; both read into strings.
        if (field is null || (field.ClrType != typeof(string) && field.ClrType != typeof(ReadOnlyMemory<char>)))
        {
            await reader.DisposeAsync();
            throw new InvalidDataException(field is null
                ? $"'{path}' has no '{TextColumn}' column (columns: {string.Join(", ", fields.Select(f => f.Name))})"
                : $"'{path}' has a '{TextColumn}' column of type {field.ClrType}, not string");
        }
        return (reader, field);
    }

    /// <summary>
    /// The shards of a data folder: the training shards in index order and the pinned validation shard, found by its name
    /// (<see cref="ValidationIndex"/>), never a training shard in its place. Both must be there.
    /// </summary>
    public static (IReadOnlyList<string> Train, string Validation) List(string dataDirectory)
    {
        if (!Directory.Exists(dataDirectory))
            throw new DirectoryNotFoundException($"no data at '{dataDirectory}': run `autoresearch prepare` first");
        var validation = Path.Combine(dataDirectory, FileName(ValidationIndex));
        if (!File.Exists(validation))
            throw new FileNotFoundException($"'{dataDirectory}' has no validation shard {FileName(ValidationIndex)}, so val_bpb cannot be measured: "
                + "run `autoresearch prepare` again", validation);
        var train = Directory.GetFiles(dataDirectory, "shard_*.parquet").Where(f => Path.GetFileName(f) != FileName(ValidationIndex)).Order(StringComparer.Ordinal).ToList();
        if (train.Count == 0)
            throw new InvalidDataException($"'{dataDirectory}' holds the validation shard but no training shard: run `autoresearch prepare` again");
        return (train, validation);
    }
}

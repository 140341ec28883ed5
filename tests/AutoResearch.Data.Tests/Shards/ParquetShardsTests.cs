using AutoResearch.Data.Shards;
using AutoResearch.Testing;
using Parquet;
using Parquet.Schema;
using Xunit;

namespace AutoResearch.Data.Tests.Shards;

public class ParquetShardsTests
{
    /// <summary>A one-column Parquet file written with Parquet.Net directly.</summary>
    private static async Task WriteColumnAsync(string path, DataField field, Func<ParquetRowGroupWriter, Task> write)
    {
        await using var stream = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(field), stream);
        using var group = writer.CreateRowGroup();
        await write(group);
    }

    [Fact]
    public async Task A_parquet_file_without_a_text_column_is_an_error_naming_the_file_and_its_columns()
    {
        var path = Path.Combine(TestGpu.NewTempDirectory("notext"), "shard_00000.parquet");
        var body = new DataField<string>("body");
        await WriteColumnAsync(path, body, group => group.WriteAsync(body, ["a document", "another"], null));

        var read = Assert.Throws<InvalidDataException>(() => ParquetShards.Read(path));
        var check = Assert.Throws<InvalidDataException>(() => ParquetShards.Check(path));

        foreach (var e in new[] { read, check })
        {
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains("no 'text' column (columns: body)", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_text_column_that_is_not_strings_is_an_error_naming_the_file()
    {
        var path = Path.Combine(TestGpu.NewTempDirectory("inttext"), "shard_00000.parquet");
        var text = new DataField<int>("text");
        await WriteColumnAsync(path, text, group => group.WriteAsync(text, new ReadOnlyMemory<int>([1, 2, 3]), null));

        var e = Assert.Throws<InvalidDataException>(() => ParquetShards.Read(path));

        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("not string", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_accepts_a_shard_and_rejects_a_truncated_or_empty_one()
    {
        var folder = TestGpu.NewTempDirectory("check");
        var good = Path.Combine(folder, "shard_00000.parquet");
        ParquetShards.Write(good, ["one", "two"]);
        ParquetShards.Check(good);

        var truncated = Path.Combine(folder, "shard_00001.parquet");
        File.WriteAllBytes(truncated, File.ReadAllBytes(good)[..^10]);
        var e = Assert.Throws<InvalidDataException>(() => ParquetShards.Check(truncated));
        Assert.Contains(truncated, e.Message, StringComparison.Ordinal);

        var empty = Path.Combine(folder, "shard_00002.parquet");
        ParquetShards.Write(empty, []);
        e = Assert.Throws<InvalidDataException>(() => ParquetShards.Check(empty));
        Assert.Contains("holds no documents", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_shard_whose_pages_are_damaged_is_an_error_naming_the_file()
    {
        var path = Path.Combine(TestGpu.NewTempDirectory("damaged"), "shard_00000.parquet");
        ParquetShards.Write(path, Enumerable.Range(0, 2000).Select(i => $"document {i}: " + string.Concat(Enumerable.Repeat($"words {i % 37} and more ", 20))).ToList());
        var bytes = File.ReadAllBytes(path);
        bytes.AsSpan(bytes.Length / 2, 64).Fill(0xFF); // inside the column's pages; the footer is intact
        File.WriteAllBytes(path, bytes);

        var e = Assert.Throws<InvalidDataException>(() => ParquetShards.Read(path));

        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("damaged", e.Message, StringComparison.Ordinal);
    }
}

using AutoResearch.Data;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class PrepareCommandTests
{
    [Fact]
    public void Prepare_without_data_uses_the_embedded_sample_and_tokenize_round_trips_through_the_cli()
    {
        var cache = TestGpu.NewTempDirectory("prepare");
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--vocab-size", "600");
        Assert.True(exit == 0, stderr);
        Assert.Contains("embedded public-domain sample", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(cache, "data", ParquetShards.FileName(ParquetShards.ValidationIndex))));
        Assert.True(File.Exists(Path.Combine(cache, "data", ParquetShards.FileName(0))));
        var tokenizer = TokenizerFiles.Load(new CachePaths(cache).Tokenizer);
        Assert.Equal(600, tokenizer.VocabSize);

        // Run again: the shards are kept.
        (exit, stdout, _) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--vocab-size", "600");
        Assert.Equal(0, exit);
        Assert.Contains("using the shards already", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Import_from_text_writes_a_validation_shard_of_the_given_fraction_and_the_rest_for_training()
    {
        var dir = TestGpu.NewTempDirectory("import");
        var docs = Enumerable.Range(0, 500).Select(i => $"document number {i}").ToList();
        var (shards, val, train) = CorpusImport.WriteShards(docs, dir, 0.1);
        Assert.Equal((1, 50, 450), (shards, val, train));
        var (trainFiles, validation) = ParquetShards.List(dir);
        var all = trainFiles.SelectMany(ParquetShards.Read).Concat(ParquetShards.Read(validation)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(docs.Order(StringComparer.Ordinal), all);
        // Deterministic: the same input gives the same validation shard.
        var again = TestGpu.NewTempDirectory("import");
        CorpusImport.WriteShards(docs, again, 0.1);
        Assert.Equal(ParquetShards.Read(validation), ParquetShards.Read(ParquetShards.List(again).Validation));
    }

    [Fact]
    public void Bad_shards_give_errors_that_name_the_file()
    {
        var dir = TestGpu.NewTempDirectory("bad");
        var truncated = Path.Combine(dir, "shard_00000.parquet");
        ParquetShards.Write(truncated, ["a", "b"]);
        File.WriteAllBytes(truncated, File.ReadAllBytes(truncated)[..20]);
        var e = Assert.Throws<InvalidDataException>(() => ParquetShards.Read(truncated));
        Assert.Contains(truncated, e.Message, StringComparison.Ordinal);

        var empty = Path.Combine(dir, "shard_00001.parquet");
        ParquetShards.Write(empty, []);
        e = Assert.Throws<InvalidDataException>(() => ParquetShards.Read(empty));
        Assert.Contains("holds no documents", e.Message, StringComparison.Ordinal);

        var lonely = TestGpu.NewTempDirectory("lonely");
        ParquetShards.Write(Path.Combine(lonely, "shard_00000.parquet"), ["x"]);
        e = Assert.Throws<InvalidDataException>(() => ParquetShards.List(lonely));
        Assert.Contains("at least two are needed", e.Message, StringComparison.Ordinal);
        Assert.Throws<DirectoryNotFoundException>(() => ParquetShards.List(Path.Combine(lonely, "missing")));
    }

    [Fact]
    public void Tokenize_without_a_tokenizer_says_to_run_prepare()
    {
        var (exit, _, stderr) = DoctorCommandTests.RunCli("tokenize", "--tokenizer", Path.Combine(TestGpu.NewTempDirectory("none"), "tok"));
        Assert.NotEqual(0, exit);
        Assert.Contains("autoresearch prepare", stderr, StringComparison.Ordinal);
    }
}

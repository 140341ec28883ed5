using AutoResearch.Data;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class PrepareCommandTests
{
    private static readonly string Validation = ParquetShards.FileName(ParquetShards.ValidationIndex);

    /// <summary>Shards 0 … count−1 and the validation shard, written by ParquetShards.Write, as bytes by file name.</summary>
    private static Dictionary<string, byte[]> MakeShards(int trainShards)
    {
        var folder = TestGpu.NewTempDirectory("served");
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var index in ShardDownloader.ShardIndices(trainShards))
        {
            var path = Path.Combine(folder, ParquetShards.FileName(index));
            ParquetShards.Write(path, [.. Enumerable.Range(0, 200).Select(d => $"Shard {index}, document {d}: the quick brown fox jumps over the lazy dog {d * index}.")]);
            files[Path.GetFileName(path)] = File.ReadAllBytes(path);
        }
        Directory.Delete(folder, recursive: true);
        return files;
    }

    [Fact]
    public void Prepare_offline_says_so_in_one_line_uses_the_embedded_sample_and_tokenize_round_trips_through_the_cli()
    {
        var cache = TestGpu.NewTempDirectory("prepare");
        // The data address from the environment, where every connection is refused: offline, and no real network is touched.
        var refusing = LoopbackShardServer.RefusingBaseUrl();
        var (exit, stdout, stderr) = DoctorCommandTests.RunCliWith(new Dictionary<string, string> { [ShardDownloader.BaseUrlVariable] = refusing.ToString() },
            "prepare", "--cache", cache, "--vocab-size", "600");
        Assert.True(exit == 0, stderr);
        var offline = Assert.Single(stdout.Split('\n'), line => line.Contains("offline", StringComparison.Ordinal));
        Assert.Contains($"cannot reach {refusing}", offline, StringComparison.Ordinal);
        Assert.Contains("embedded public-domain sample", offline, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(cache, "data", ParquetShards.FileName(ParquetShards.ValidationIndex))));
        Assert.True(File.Exists(Path.Combine(cache, "data", ParquetShards.FileName(0))));
        var tokenizer = TokenizerFiles.Load(new CachePaths(cache).Tokenizer);
        Assert.Equal(600, tokenizer.VocabSize);

        // Every shard is pre-tokenized into the token cache, with exactly the ids a fresh encoding gives.
        var paths = new CachePaths(cache);
        var tokenCache = new ShardTokenCache(paths.Tokens, tokenizer, TokenizerFiles.ContentHash(paths.Tokenizer));
        var (trainShards, validationShard) = ParquetShards.List(paths.Data);
        var allShards = trainShards.Append(validationShard).ToList();
        Assert.Contains($"of {allShards.Count} shards for {paths.Tokens} ({allShards.Count} written, 0 already valid)", stdout, StringComparison.Ordinal);
        foreach (var shard in allShards)
        {
            Assert.True(tokenCache.TryRead(shard, out var cached), $"no valid token cache file for {shard}");
            Assert.Equal(tokenizer.EncodeBatch(ParquetShards.Read(shard), prependBos: true), cached);
        }

        // Run again: the shards are kept.
        (exit, stdout, _) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--vocab-size", "600");
        Assert.Equal(0, exit);
        Assert.Contains("using the shards already", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_damaged_shard_in_the_cache_is_refused_before_the_tokenizer_trains_saying_to_delete_it()
    {
        using var folder = new TempFolder();
        var cache = new CachePaths(folder.File("cache"));
        CorpusImport.WriteShards(Enumerable.Range(0, 300).Select(i => $"document {i}: the quick brown fox jumps over the lazy dog {i * 7}."), cache.Data, 0.1);
        var shard = Path.Combine(cache.Data, ParquetShards.FileName(0));
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..^100]); // a copy cut short

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache.Root, "--vocab-size", "300");

        Assert.Equal(1, exit);
        Assert.Contains(shard, stderr, StringComparison.Ordinal);
        Assert.Contains("delete it", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("tokenizer:", stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(cache.Tokenizer));
    }

    /// <summary>Every file under the cache folder whose name starts with <paramref name="prefix"/>, wherever prepare keeps it.</summary>
    private static List<string> FilesNamed(string cacheRoot, string prefix)
        => [.. Directory.GetFiles(cacheRoot, prefix + "*", SearchOption.AllDirectories).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal)];

    [Fact]
    public void Prepare_completes_an_unfinished_download_byte_for_byte_and_trains_the_tokenizer_on_it()
    {
        var files = MakeShards(2);
        using var server = new LoopbackShardServer(files);
        server.Script("shard_00001.parquet", ShardFault.ServerError, ShardFault.ServerError, ShardFault.ServerError, ShardFault.ServerError, ShardFault.ServerError,
            ShardFault.ServerError);
        var cache = new CachePaths(TestGpu.NewTempDirectory("download"));
        // An earlier run that got shard 0 but not shard 1: the cache is untouched, the shard it got is kept for the next run.
        Assert.Throws<ShardDownloadException>(() => PrepareCommand.Run(cache, null, 300, 1_000_000, 0.01, 2, server.BaseUrl, TimeSpan.FromMilliseconds(1),
            TestContext.Current.CancellationToken));
        Assert.False(Directory.Exists(cache.Data));
        int before = server.Requests.Count;

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache.Root, "--base-url", server.BaseUrl.ToString(), "--shards", "2", "--vocab-size", "300");

        Assert.True(exit == 0, stderr + stdout);
        Assert.Equal(new[] { "shard_00001.parquet", "shard_00001.parquet", Validation }, server.Requests.Skip(before));
        foreach (var (name, bytes) in files)
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(cache.Data, name))), $"{name} differs from the served file");
        Assert.Equal(files.Keys.Order(StringComparer.Ordinal), Directory.GetFiles(cache.Data).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal));
        // Output is redirected here: plain lines, one per failed attempt and per shard.
        Assert.Contains("completing an unfinished download", stdout, StringComparison.Ordinal);
        Assert.Contains("data: shard_00001.parquet: attempt 1 of 5 failed: HTTP 500 Internal Server Error; retrying in 1 s", stdout, StringComparison.Ordinal);
        Assert.Contains($"data: {Validation}:", stdout, StringComparison.Ordinal);
        Assert.Contains("(1 already there)", stdout, StringComparison.Ordinal);
        Assert.Equal(300, TokenizerFiles.Load(cache.Tokenizer).VocabSize);

        // A complete set is used as it is: no request at all.
        int after = server.Requests.Count;
        (exit, stdout, _) = DoctorCommandTests.RunCli("prepare", "--cache", cache.Root, "--base-url", server.BaseUrl.ToString(), "--shards", "2", "--vocab-size", "300");
        Assert.Equal(0, exit);
        Assert.Contains("using the shards already", stdout, StringComparison.Ordinal);
        Assert.Equal(after, server.Requests.Count);
    }

    [Fact]
    public void Prepare_fails_with_a_message_naming_the_shard_and_address_when_the_server_does_not_have_it()
    {
        var files = MakeShards(1);
        files.Remove(Validation);
        using var server = new LoopbackShardServer(files);
        var cache = TestGpu.NewTempDirectory("missing");

        var (exit, _, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--base-url", server.BaseUrl.ToString(), "--shards", "1");

        Assert.Equal(CliErrors.FailureExitCode, exit);
        Assert.Contains($"autoresearch: error: downloading {Validation} from {server.BaseUrl}{Validation} failed after 1 attempt(s); the last: HTTP 404", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(new CachePaths(cache).Data));
        Assert.False(Directory.Exists(new CachePaths(cache).Tokenizer));
        Assert.Equal(["shard_00000.parquet"], FilesNamed(cache, "shard_"));
    }

    [Fact]
    public void Prepare_stops_after_five_failed_attempts_leaving_no_file_of_that_shard()
    {
        var files = MakeShards(2);
        using var server = new LoopbackShardServer(files);
        server.Script("shard_00001.parquet", ShardFault.ServerError, ShardFault.CutOff, ShardFault.ResetMidBody, ShardFault.NotParquet, ShardFault.ServerError);
        var cache = new CachePaths(TestGpu.NewTempDirectory("fail"));

        var e = Assert.Throws<ShardDownloadException>(() => PrepareCommand.Run(cache, null, 300, 1_000_000, 0.01, 2, server.BaseUrl, TimeSpan.FromMilliseconds(1), TestContext.Current.CancellationToken));

        Assert.Contains($"downloading shard_00001.parquet from {server.BaseUrl}shard_00001.parquet failed after 5 attempt(s); the last: HTTP 500", e.Message, StringComparison.Ordinal);
        Assert.Equal(5, server.RequestCount("shard_00001.parquet"));
        Assert.Equal(["shard_00000.parquet"], FilesNamed(cache.Root, "shard_"));
        Assert.False(Directory.Exists(cache.Data));
    }

    [Fact]
    public void Prepare_offline_with_an_unfinished_download_is_an_error_not_the_sample()
    {
        var files = MakeShards(2);
        var cache = new CachePaths(TestGpu.NewTempDirectory("unfinished"));
        using (var server = new LoopbackShardServer(files))
        {
            server.Script("shard_00001.parquet", ShardFault.ServerError, ShardFault.ServerError, ShardFault.ServerError, ShardFault.ServerError, ShardFault.ServerError);
            Assert.Throws<ShardDownloadException>(() => PrepareCommand.Run(cache, null, 300, 1_000_000, 0.01, 2, server.BaseUrl, TimeSpan.FromMilliseconds(1),
                TestContext.Current.CancellationToken));
        }

        var e = Assert.Throws<IOException>(() => PrepareCommand.Run(cache, null, 300, 1_000_000, 0.01, 2, LoopbackShardServer.RefusingBaseUrl(), TimeSpan.FromMilliseconds(1),
            TestContext.Current.CancellationToken));

        Assert.Contains("cannot reach", e.Message, StringComparison.Ordinal);
        Assert.Contains("unfinished download", e.Message, StringComparison.Ordinal);
        Assert.Equal(["shard_00000.parquet"], FilesNamed(cache.Root, "shard_"));
        Assert.False(Directory.Exists(cache.Data));
    }

    [Fact]
    public void A_cache_that_is_not_a_folder_is_refused_before_any_download()
    {
        var refusing = LoopbackShardServer.RefusingBaseUrl();
        var (exit, stdout, stderr) = DoctorCommandTests.RunCliWith(new Dictionary<string, string> { [ShardDownloader.BaseUrlVariable] = refusing.ToString() },
            "prepare", "--cache", "/dev/null");
        Assert.NotEqual(0, exit);
        Assert.DoesNotContain("downloading", stdout, StringComparison.Ordinal);
        Assert.StartsWith("autoresearch: error: --cache '/dev/null' is not a folder", stderr, StringComparison.Ordinal);

        (exit, stdout, stderr) = DoctorCommandTests.RunCliWith(new Dictionary<string, string> { [CachePaths.Variable] = "/dev/null" }, "train", "--device", "cpu");
        Assert.NotEqual(0, exit);
        Assert.StartsWith($"autoresearch: error: ${CachePaths.Variable} '/dev/null' is not a folder", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cache_variable_starting_with_a_tilde_is_under_the_home_folder()
    {
        using var home = new TempFolder();
        var (exit, _, stderr) = DoctorCommandTests.RunCliWith(new Dictionary<string, string> { [CachePaths.Variable] = "~/x", ["HOME"] = home.Path },
            "train", "--device", "cpu");
        Assert.NotEqual(0, exit);
        Assert.Contains(Path.Combine(home.Path, "x", "tokenizer"), stderr, StringComparison.Ordinal);

        Assert.Equal(Path.Combine(home.Path, "y"), CachePaths.ExpandHome("~/y", home.Path));
        Assert.Equal(home.Path, CachePaths.ExpandHome("~", home.Path));
        Assert.Equal("/abs/~/z", CachePaths.ExpandHome("/abs/~/z", home.Path));
        Assert.Equal("~user/z", CachePaths.ExpandHome("~user/z", home.Path));
    }

    /// <summary>The embedded sample's bytes: a real xz file.</summary>
    private static byte[] SampleXz()
    {
        using var resource = typeof(CorpusText).Assembly.GetManifestResourceStream(CorpusText.EmbeddedSampleName)!;
        using var copy = new MemoryStream();
        resource.CopyTo(copy);
        return copy.ToArray();
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("not xz")]
    public void A_damaged_xz_corpus_is_an_error_naming_the_file(string damage)
    {
        using var folder = new TempFolder();
        var corpus = folder.File("corpus.txt.xz");
        var xz = SampleXz();
        File.WriteAllBytes(corpus, damage == "truncated" ? xz[..(xz.Length / 2)] : "plain text, not xz\n"u8.ToArray());

        var (exit, _, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", folder.File("cache"), "--from", corpus, "--vocab-size", "300");

        Assert.NotEqual(0, exit);
        Assert.StartsWith("autoresearch: error: ", stderr, StringComparison.Ordinal);
        Assert.Contains(corpus, stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(folder.File("cache"), "data")));
    }

    [Fact]
    public void A_gzip_corpus_is_decompressed_not_read_as_text()
    {
        using var folder = new TempFolder();
        var corpus = folder.File("corpus.txt.gz");
        var documents = Enumerable.Range(0, 200).Select(i => $"gzip document {i}: the quick brown fox").ToList();
        using (var gzip = new System.IO.Compression.GZipStream(File.Create(corpus), System.IO.Compression.CompressionLevel.Optimal))
            gzip.Write(System.Text.Encoding.UTF8.GetBytes(string.Join(CorpusText.Separator, documents)));
        var cache = new CachePaths(folder.File("cache"));

        var (exit, _, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache.Root, "--from", corpus, "--vocab-size", "300");

        Assert.True(exit == 0, stderr);
        var (train, validation) = ParquetShards.List(cache.Data);
        Assert.Equal(documents.Order(StringComparer.Ordinal), train.Append(validation).SelectMany(ParquetShards.Read).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_truncated_gzip_corpus_is_an_error_naming_the_file_not_a_shorter_corpus()
    {
        using var folder = new TempFolder();
        var corpus = folder.File("corpus.txt.gz");
        var documents = Enumerable.Range(0, 2000).Select(i => $"gzip document {i}: the quick brown fox {i * 7919 % 10007}").ToList();
        using (var buffer = new MemoryStream())
        {
            using (var gzip = new System.IO.Compression.GZipStream(buffer, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
                gzip.Write(System.Text.Encoding.UTF8.GetBytes(string.Join(CorpusText.Separator, documents)));
            File.WriteAllBytes(corpus, buffer.ToArray()[..(int)(buffer.Length / 2)]); // a download or copy cut short
        }

        var (exit, _, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", folder.File("cache"), "--from", corpus, "--vocab-size", "300");

        Assert.Equal(1, exit);
        Assert.Contains(corpus, stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(folder.File("cache"), "data")));
    }

    [Theory]
    [InlineData("corpus.bin", new byte[] { 0x00, 0xFF, 0xFE, 0x80, 0x81, 0xC3, 0x28, 0x00, 0xA0, 0xA1 })]
    [InlineData("corpus.txt", new byte[] { 0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x58, 0x51, 0x00, 0x00, 0x10 })] // zstd
    [InlineData("corpus.txt", new byte[] { 0x42, 0x5A, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59 })] // bzip2
    public void Binary_or_unsupported_compressed_input_is_refused_naming_the_file(string name, byte[] head)
    {
        using var folder = new TempFolder();
        var corpus = folder.File(name);
        var random = new Random(3);
        var bytes = new byte[64 * 1024];
        random.NextBytes(bytes);
        head.CopyTo(bytes, 0);
        File.WriteAllBytes(corpus, bytes);

        var (exit, _, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", folder.File("cache"), "--from", corpus, "--vocab-size", "300");

        Assert.NotEqual(0, exit);
        Assert.StartsWith($"autoresearch: error: '{corpus}'", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(folder.File("cache"), "data")));
    }

    [Fact]
    public void Prepare_help_describes_the_download_options()
    {
        var (exit, stdout, _) = DoctorCommandTests.RunCli("prepare", "--help");
        Assert.Equal(0, exit);
        foreach (var text in new[] { "--shards", "--base-url", ShardDownloader.BaseUrlVariable, ShardDownloader.DefaultBaseUrl, "[default: 10]", Validation })
            Assert.Contains(text, stdout, StringComparison.Ordinal);
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
        var missing = Assert.Throws<FileNotFoundException>(() => ParquetShards.List(lonely)); // never a training shard as the validation shard
        Assert.Contains("no validation shard shard_06542.parquet", missing.Message, StringComparison.Ordinal);
        File.Move(Path.Combine(lonely, "shard_00000.parquet"), Path.Combine(lonely, Validation));
        e = Assert.Throws<InvalidDataException>(() => ParquetShards.List(lonely));
        Assert.Contains("no training shard", e.Message, StringComparison.Ordinal);
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

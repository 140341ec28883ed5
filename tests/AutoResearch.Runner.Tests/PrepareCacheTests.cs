using System.Security.Cryptography;
using AutoResearch.Data;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Shards;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>
/// `prepare` replaces the cache as a unit: old and new shards never mix, a failed or interrupted prepare leaves the previous
/// cache as it was, and the cache's lock keeps a second prepare, or a prepare and a train, apart.
/// </summary>
public class PrepareCacheTests
{
    private static readonly Dictionary<string, string> Offline = new() { [ShardDownloader.BaseUrlVariable] = LoopbackShardServer.RefusingBaseUrl().ToString() };

    /// <summary>A corpus file of documents separated by a line holding a single NUL.</summary>
    private static string WriteCorpus(string folder, string name, IEnumerable<string> documents)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, string.Join(CorpusText.Separator, documents) + "\n");
        return path;
    }

    /// <summary>~12 MB of text over 30,000 made-up words: the import takes a moment and the tokenizer a few seconds.</summary>
    private static string WriteLargeCorpus(string folder)
    {
        var random = new Random(5);
        string[] syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "qu", "ber", "dan", "fel", "gor", "hin", "jul", "kor", "lim", "mor"];
        var words = Enumerable.Range(0, 30_000).Select(_ => string.Concat(Enumerable.Range(0, random.Next(1, 5)).Select(_ => syllables[random.Next(syllables.Length)]))).ToArray();
        var documents = Enumerable.Range(0, 8_000).Select(_ => string.Join(' ', Enumerable.Range(0, 200).Select(_ => words[random.Next(words.Length)])) + ".");
        return WriteCorpus(folder, "large.txt", documents);
    }

    /// <summary>Every file of the cache's data, tokenizer and token cache, by relative path, with a SHA-256 of its bytes.</summary>
    private static SortedDictionary<string, string> Snapshot(string cache)
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in (string[])["data", "tokenizer", "tokens"])
        {
            var folder = Path.Combine(cache, part);
            if (!Directory.Exists(folder))
                continue;
            foreach (var file in Directory.GetFiles(folder, "*", SearchOption.AllDirectories))
                files[Path.GetRelativePath(cache, file)] = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));
        }
        return files;
    }

    private static List<string> AllDocuments(string cache)
        => [.. Directory.GetFiles(Path.Combine(cache, "data"), "shard_*.parquet").SelectMany(ParquetShards.Read)];

    private static void Prepare(string cache, string from, int vocabSize = 300)
    {
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--from", from, "--vocab-size", vocabSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(exit == 0, $"prepare --from {from} failed ({exit}): {stderr}\n{stdout}");
    }

    [Fact]
    public void Prepare_from_b_into_a_cache_of_a_keeps_none_of_as_shards_or_token_files()
    {
        using var folder = new TempFolder();
        var cache = folder.File("cache");
        // A: 45,000 documents, 3 training shards; B: 500 documents, 1 training shard.
        Prepare(cache, WriteCorpus(folder.Path, "a.txt", Enumerable.Range(0, 45_000).Select(i => $"alpha document {i} of the first corpus")));
        Assert.Equal(4, Directory.GetFiles(Path.Combine(cache, "data")).Length);

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--vocab-size", "300",
            "--from", WriteCorpus(folder.Path, "b.txt", Enumerable.Range(0, 500).Select(i => $"beta document {i} of the second corpus")));

        Assert.True(exit == 0, stderr);
        Assert.Contains("1 training shard(s)", stdout, StringComparison.Ordinal);
        Assert.Equal(["shard_00000.parquet", ParquetShards.FileName(ParquetShards.ValidationIndex)],
            Directory.GetFiles(Path.Combine(cache, "data")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.All(AllDocuments(cache), d => Assert.StartsWith("beta", d, StringComparison.Ordinal));
        Assert.Empty(Directory.GetFiles(Path.Combine(cache, "tokens"), "shard_00001*"));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(cache, "tokens")).Length);
    }

    [Fact]
    public void A_failing_tokenizer_step_leaves_the_previous_cache_intact()
    {
        using var folder = new TempFolder();
        var cache = folder.File("cache");
        Prepare(cache, WriteCorpus(folder.Path, "a.txt", Enumerable.Range(0, 300).Select(i => $"alpha document {i}")));
        var before = Snapshot(cache);
        var b = WriteCorpus(folder.Path, "b.txt", Enumerable.Range(0, 300).Select(i => $"beta document {i}"));

        // 100 tokens cannot hold the 256 bytes: the tokenizer step fails after the shards were imported.
        Assert.ThrowsAny<ArgumentException>(() => PrepareCommand.Run(new CachePaths(cache), b, 100, 1_000_000, 0.01, cancel: TestContext.Current.CancellationToken));

        Assert.Equal(before, Snapshot(cache));
        Assert.All(AllDocuments(cache), d => Assert.StartsWith("alpha", d, StringComparison.Ordinal));
    }

    [Fact]
    public void An_interrupted_prepare_leaves_the_previous_cache_intact_and_the_next_one_works()
    {
        using var folder = new TempFolder();
        var cache = folder.File("cache");
        var a = WriteCorpus(folder.Path, "a.txt", Enumerable.Range(0, 300).Select(i => $"alpha document {i}"));
        Prepare(cache, a);
        var before = Snapshot(cache);

        using (var prepare = CliProcess.Start("prepare", "--cache", cache, "--from", WriteLargeCorpus(folder.Path)))
        {
            prepare.WaitForOutput("data: imported", TimeSpan.FromSeconds(60)); // the new shards are written; the tokenizer is next
            prepare.Signal("INT");
            Assert.True(prepare.WaitForExit(TimeSpan.FromSeconds(60)), "prepare still running 60 s after SIGINT");
            Assert.NotEqual(0, prepare.ExitCode);
        }

        Assert.Equal(before, Snapshot(cache));
        Assert.All(AllDocuments(cache), d => Assert.StartsWith("alpha", d, StringComparison.Ordinal));
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--vocab-size", "300");
        Assert.True(exit == 0, stderr);
        Assert.Contains($"using the shards already in {Path.Combine(cache, "data")}", stdout, StringComparison.Ordinal);
        Assert.All(AllDocuments(cache), d => Assert.StartsWith("alpha", d, StringComparison.Ordinal));
    }

    [Fact]
    public void A_second_prepare_or_a_train_while_a_prepare_runs_is_refused_with_a_clear_message()
    {
        using var folder = new TempFolder();
        var cache = folder.File("cache");
        var a = WriteCorpus(folder.Path, "a.txt", Enumerable.Range(0, 300).Select(i => $"alpha document {i}"));
        using var first = CliProcess.Start("prepare", "--cache", cache, "--from", WriteLargeCorpus(folder.Path));
        first.WaitForOutput("data: imported", TimeSpan.FromSeconds(60));

        var (exit, _, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--from", a, "--vocab-size", "300");
        Assert.NotEqual(0, exit);
        Assert.Contains($"another `autoresearch prepare` is updating the cache '{cache}'", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache);
        Assert.NotEqual(0, exit);
        Assert.Contains($"`autoresearch prepare` is updating the cache '{cache}'", stderr, StringComparison.Ordinal);

        Assert.True(first.WaitForExit(TimeSpan.FromSeconds(120)), "the first prepare did not finish");
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.DoesNotContain(AllDocuments(cache), d => d.StartsWith("alpha", StringComparison.Ordinal));
    }

    [Fact]
    public void Prepare_while_a_train_runs_on_the_cache_is_refused_and_the_data_stays()
    {
        using var folder = new TempFolder();
        var cache = folder.File("cache");
        var (exit, _, stderr) = DoctorCommandTests.RunCliWith(Offline, "prepare", "--cache", cache); // the embedded sample, 8192 tokens
        Assert.True(exit == 0, stderr);
        var before = Snapshot(cache);
        using var train = CliProcess.Start("train", "--device", "cpu", "--cache", cache, "--seq-len", "32", "--time-budget", "300");
        train.WaitForOutput("step 00000", TimeSpan.FromSeconds(60));

        (exit, _, stderr) = DoctorCommandTests.RunCli("prepare", "--cache", cache, "--vocab-size", "300",
            "--from", WriteCorpus(folder.Path, "a.txt", Enumerable.Range(0, 300).Select(i => $"alpha document {i}")));

        Assert.NotEqual(0, exit);
        Assert.Contains($"the cache '{cache}' is in use by a running `autoresearch train`", stderr, StringComparison.Ordinal);
        Assert.False(train.HasExited, train.Stderr);
        Assert.Equal(before, Snapshot(cache));
    }

    [Fact]
    public void Prepare_offline_says_the_embedded_sample_is_for_smoke_tests()
    {
        using var folder = new TempFolder();
        var (exit, stdout, stderr) = DoctorCommandTests.RunCliWith(Offline, "prepare", "--cache", folder.File("cache"), "--vocab-size", "300");
        Assert.True(exit == 0, stderr);
        var line = Assert.Single(stdout.Split('\n'), l => l.Contains("smoke tests", StringComparison.Ordinal));
        Assert.Contains("embedded sample", line, StringComparison.Ordinal);
        Assert.Contains("val_bpb", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--vocab-size", "100", "--vocab-size must be at least 260")]
    [InlineData("--max-chars", "0", "--max-chars must be at least 1")]
    [InlineData("--val-fraction", "NaN", "--val-fraction must lie strictly between 0 and 1; got NaN")]
    [InlineData("--val-fraction", "1", "--val-fraction must lie strictly between 0 and 1; got 1")]
    public void Tokenizer_settings_are_refused_while_parsing_before_anything_is_downloaded(string flag, string value, string message)
    {
        using var folder = new TempFolder();
        var cache = folder.File("cache");
        var (exit, stdout, stderr) = DoctorCommandTests.RunCliWith(Offline, "prepare", "--cache", cache, flag, value);
        Assert.Equal(CliErrors.UsageExitCode, exit);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("data:", stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(cache));
    }

    [Fact]
    public void A_prepare_that_fails_after_falling_back_to_the_embedded_sample_does_not_block_the_next_offline_one()
    {
        using var folder = new TempFolder();
        var cache = new CachePaths(folder.File("cache"));
        var refusing = LoopbackShardServer.RefusingBaseUrl();
        // Offline: the embedded sample is staged, then the tokenizer step fails (100 tokens cannot hold the 256 bytes).
        Assert.ThrowsAny<ArgumentException>(() => PrepareCommand.Run(cache, null, 100, 1_000_000, 0.01, baseUrl: refusing,
            cancel: TestContext.Current.CancellationToken));

        // The staged sample is not an unfinished download that only the network could complete: the next offline run uses the sample.
        Assert.Equal(0, PrepareCommand.Run(cache, null, 300, 1_000_000, 0.01, baseUrl: refusing, cancel: TestContext.Current.CancellationToken));
        Assert.True(File.Exists(Path.Combine(cache.Data, ParquetShards.FileName(ParquetShards.ValidationIndex))));
    }
}

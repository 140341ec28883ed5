using System.Collections.Concurrent;
using System.Diagnostics;
using AutoResearch.Data.Shards;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Data.Tests.Shards;

public class ShardDownloaderTests
{
    private static readonly string Validation = ParquetShards.FileName(ParquetShards.ValidationIndex);

    /// <summary>Real shards written by ParquetShards.Write: training shards 0 … count−1 and the validation shard, as bytes by file name.</summary>
    private static Dictionary<string, byte[]> MakeShards(int trainShards)
    {
        var folder = TestGpu.NewTempDirectory("served");
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var index in ShardDownloader.ShardIndices(trainShards))
        {
            var name = ParquetShards.FileName(index);
            var documents = Enumerable.Range(0, 50 + index % 7).Select(d => $"shard {index} document {d}: {new string('x', d * 13)}").ToList();
            ParquetShards.Write(Path.Combine(folder, name), documents);
            files[name] = File.ReadAllBytes(Path.Combine(folder, name));
        }
        Directory.Delete(folder, recursive: true);
        return files;
    }

    private static ShardDownloader Downloader(Uri baseUrl, int parallelism = 4, TimeSpan? baseDelay = null)
        => new(baseUrl) { BaseDelay = baseDelay ?? TimeSpan.FromMilliseconds(1), Parallelism = parallelism, StallTimeout = TimeSpan.FromSeconds(20) };

    private static void AssertSameFiles(IReadOnlyDictionary<string, byte[]> expected, string folder)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), FileNames(folder));
        foreach (var (name, bytes) in expected)
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(folder, name))), $"{name} differs from the served file");
    }

    /// <summary>Every file in the folder, temporary ones included, sorted.</summary>
    private static string[] FileNames(string folder)
        => [.. Directory.GetFiles(folder).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task Download_fetches_the_training_shards_then_the_validation_shard_byte_for_byte()
    {
        var files = MakeShards(3);
        using var server = new LoopbackShardServer(files);
        using var downloader = Downloader(server.BaseUrl);
        var folder = TestGpu.NewTempDirectory("download");
        var observer = new RecordingObserver();

        var (downloaded, skipped, bytes) = await downloader.DownloadAsync(folder, 3, observer, TestContext.Current.CancellationToken);

        Assert.Equal((4, 0, files.Values.Sum(f => (long)f.Length)), (downloaded, skipped, bytes));
        AssertSameFiles(files, folder);
        Assert.Equal(4, server.Requests.Count);
        Assert.Equal(Validation, server.Requests[^1]);
        Assert.Equal((4, 0), observer.Plan);
        Assert.Equal(new[] { "shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet", Validation }, observer.PlannedFiles);
        Assert.Equal(files.Keys.Order(StringComparer.Ordinal), observer.Completed.Order(StringComparer.Ordinal));
        Assert.Equal(bytes, observer.ReceivedBytes);
        Assert.Empty(observer.Failures);
    }

    [Fact]
    public async Task Retries_recover_from_server_errors_cut_off_bodies_resets_and_bodies_that_are_not_parquet()
    {
        var files = MakeShards(3);
        using var server = new LoopbackShardServer(files);
        server.Script("shard_00000.parquet", ShardFault.ServerError, ShardFault.ServerError);
        server.Script("shard_00001.parquet", ShardFault.CutOff);
        server.Script("shard_00002.parquet", ShardFault.Reset);
        // Four failures of four kinds: the fifth and last attempt succeeds.
        server.Script(Validation, ShardFault.NotParquet, ShardFault.CutOff, ShardFault.ResetMidBody, ShardFault.ServerError);
        using var downloader = Downloader(server.BaseUrl);
        var folder = TestGpu.NewTempDirectory("retry");
        var observer = new RecordingObserver();

        var (downloaded, _, _) = await downloader.DownloadAsync(folder, 3, observer, TestContext.Current.CancellationToken);

        Assert.Equal(4, downloaded);
        AssertSameFiles(files, folder); // and no temporary file is left beside them
        Assert.Equal((3, 2, 2, 5), (server.RequestCount("shard_00000.parquet"), server.RequestCount("shard_00001.parquet"),
            server.RequestCount("shard_00002.parquet"), server.RequestCount(Validation)));
        string[] Reasons(string file) => [.. observer.Failures.Where(f => f.File == file).OrderBy(f => f.Attempt).Select(f => f.Reason)];
        Assert.Equal(["HTTP 500 Internal Server Error", "HTTP 500 Internal Server Error"], Reasons("shard_00000.parquet"));
        Assert.Contains("ended", Assert.Single(Reasons("shard_00001.parquet")), StringComparison.Ordinal);
        var validation = Reasons(Validation);
        Assert.Equal(4, validation.Length);
        Assert.StartsWith("the downloaded file is not a readable Parquet file", validation[0], StringComparison.Ordinal);
        Assert.Contains("ended", validation[1], StringComparison.Ordinal);
        Assert.Contains("reset", validation[2], StringComparison.Ordinal);
        Assert.Equal("HTTP 500 Internal Server Error", validation[3]);
        // Exponential back-off: the validation shard waited 1, 2, 4 and 8 times the base delay.
        Assert.Equal(new double[] { 1, 2, 4, 8 }, observer.Failures.Where(f => f.File == Validation).OrderBy(f => f.Attempt).Select(f => f.RetryIn!.Value.TotalMilliseconds));
    }

    [Theory]
    [InlineData(ShardFault.ServerError, "HTTP 500")]
    [InlineData(ShardFault.CutOff, "ended")]
    [InlineData(ShardFault.NotParquet, "not a readable Parquet file")]
    [InlineData(ShardFault.ResetMidBody, "reset")]
    public async Task A_shard_that_fails_every_attempt_leaves_no_file_and_the_error_names_it(ShardFault fault, string lastFailure)
    {
        var files = MakeShards(2);
        using var server = new LoopbackShardServer(files);
        server.Script("shard_00001.parquet", Enumerable.Repeat(fault, ShardDownloader.MaxAttempts).ToArray());
        using var downloader = Downloader(server.BaseUrl);
        var folder = TestGpu.NewTempDirectory("fail");

        var e = await Assert.ThrowsAsync<ShardDownloadException>(() => downloader.DownloadAsync(folder, 2, null, TestContext.Current.CancellationToken));

        Assert.Contains("shard_00001.parquet", e.Message, StringComparison.Ordinal);
        Assert.Contains(downloader.UrlOf(1).ToString(), e.Message, StringComparison.Ordinal);
        Assert.Contains($"after {ShardDownloader.MaxAttempts} attempt(s)", e.Message, StringComparison.Ordinal);
        Assert.Contains(lastFailure, e.Message, StringComparison.Ordinal);
        Assert.Equal(ShardDownloader.MaxAttempts, server.RequestCount("shard_00001.parquet"));
        // No half file and no temporary file; the validation shard is not fetched after a failed training shard.
        Assert.Equal(["shard_00000.parquet"], FileNames(folder));
        Assert.Equal(0, server.RequestCount(Validation));
    }

    [Fact]
    public async Task A_shard_the_server_does_not_have_fails_at_once_naming_it()
    {
        var files = MakeShards(1);
        files.Remove(Validation);
        using var server = new LoopbackShardServer(files);
        using var downloader = Downloader(server.BaseUrl, baseDelay: TimeSpan.FromSeconds(30));
        var folder = TestGpu.NewTempDirectory("missing");

        var e = await Assert.ThrowsAsync<ShardDownloadException>(() => downloader.DownloadAsync(folder, 1, null, TestContext.Current.CancellationToken));

        Assert.Contains(Validation, e.Message, StringComparison.Ordinal);
        Assert.Contains("HTTP 404", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, server.RequestCount(Validation)); // a 404 is not retried
        Assert.Equal(["shard_00000.parquet"], FileNames(folder));
    }

    [Fact]
    public async Task Complete_shards_already_present_are_not_requested_and_a_broken_one_is_fetched_again()
    {
        var files = MakeShards(3);
        var folder = TestGpu.NewTempDirectory("resume");
        File.WriteAllBytes(Path.Combine(folder, "shard_00000.parquet"), files["shard_00000.parquet"]);
        File.WriteAllBytes(Path.Combine(folder, Validation), files[Validation]);
        File.WriteAllBytes(Path.Combine(folder, "shard_00002.parquet"), files["shard_00002.parquet"][..100]); // truncated
        // Left by an interrupted prepare whose process is gone (Linux process ids stay below 2^22): deleted.
        File.WriteAllBytes(Path.Combine(folder, "shard_00001.parquet.999999999.tmp"), [1, 2, 3]);
        using var server = new LoopbackShardServer(files);
        using var downloader = Downloader(server.BaseUrl);
        var observer = new RecordingObserver();

        var (downloaded, skipped, _) = await downloader.DownloadAsync(folder, 3, observer, TestContext.Current.CancellationToken);

        Assert.Equal((2, 2), (downloaded, skipped));
        Assert.Equal((2, 2), observer.Plan);
        Assert.Equal(new[] { "shard_00001.parquet", "shard_00002.parquet" }, server.Requests.Order(StringComparer.Ordinal));
        AssertSameFiles(files, folder);
    }

    [Fact]
    public async Task A_refused_connection_before_any_response_is_reported_as_unreachable_without_retrying()
    {
        var url = LoopbackShardServer.RefusingBaseUrl();
        // Back-off of a minute: the test only finishes in time if an unreachable server is not retried.
        using var downloader = Downloader(url, baseDelay: TimeSpan.FromMinutes(1));
        var folder = TestGpu.NewTempDirectory("offline");
        var watch = Stopwatch.StartNew();

        var e = await Assert.ThrowsAsync<ShardSourceUnreachableException>(() => downloader.DownloadAsync(folder, 2, null, TestContext.Current.CancellationToken));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
        Assert.Contains(url.Authority, e.Message, StringComparison.Ordinal);
        Assert.Empty(FileNames(folder));
    }

    [Fact]
    public async Task A_server_that_stops_after_answering_is_an_ordinary_failure_not_offline()
    {
        var files = MakeShards(2);
        // One request served, then the listener closes: the later connections are refused.
        using var server = new LoopbackShardServer(files, maxRequests: 1);
        using var downloader = Downloader(server.BaseUrl, parallelism: 1);
        var folder = TestGpu.NewTempDirectory("gone");

        var e = await Assert.ThrowsAsync<ShardDownloadException>(() => downloader.DownloadAsync(folder, 2, null, TestContext.Current.CancellationToken));

        Assert.Equal("shard_00001.parquet", e.FileName);
        Assert.Equal(["shard_00000.parquet"], FileNames(folder));
        Assert.True(files["shard_00000.parquet"].AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(folder, "shard_00000.parquet"))));
    }

    [Fact]
    public void The_base_address_comes_from_the_flag_and_must_be_http()
    {
        Assert.Equal("http://127.0.0.1:9/shards/", new ShardDownloader(ShardDownloader.ResolveBaseUrl("http://127.0.0.1:9/shards")).BaseUrl.ToString());
        Assert.Equal("http://127.0.0.1:9/shards/shard_06542.parquet",
            new ShardDownloader(new Uri("http://127.0.0.1:9/shards/")).UrlOf(ParquetShards.ValidationIndex).ToString());
        var e = Assert.Throws<ArgumentException>(() => ShardDownloader.ResolveBaseUrl("ftp://example.org/x/"));
        Assert.Contains("ftp://example.org/x/", e.Message, StringComparison.Ordinal);
        Assert.StartsWith("https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main/", ShardDownloader.DefaultBaseUrl, StringComparison.Ordinal);
        Assert.Equal(new[] { 0, 1, 2, ParquetShards.ValidationIndex }, ShardDownloader.ShardIndices(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => ShardDownloader.ShardIndices(0));
    }

    private sealed class RecordingObserver : IShardDownloadObserver
    {
        private long receivedBytes;

        public (int ToDownload, int Present) Plan { get; private set; }

        public IReadOnlyList<string> PlannedFiles { get; private set; } = [];

        public ConcurrentQueue<string> Completed { get; } = new();

        public ConcurrentQueue<(string File, int Attempt, string Reason, TimeSpan? RetryIn)> Failures { get; } = new();

        public long ReceivedBytes => Interlocked.Read(ref receivedBytes);

        void IShardDownloadObserver.Planned(IReadOnlyList<string> toDownload, int alreadyPresent)
        {
            PlannedFiles = toDownload;
            Plan = (toDownload.Count, alreadyPresent);
        }

        public void Started(string fileName, int attempt, long? totalBytes)
        {
        }

        public void Received(string fileName, int bytes) => Interlocked.Add(ref receivedBytes, bytes);

        void IShardDownloadObserver.Completed(string fileName, long bytes, TimeSpan elapsed) => Completed.Enqueue(fileName);

        public void AttemptFailed(string fileName, int attempt, string reason, TimeSpan? retryIn) => Failures.Enqueue((fileName, attempt, reason, retryIn));
    }
}

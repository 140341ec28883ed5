using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Finding 3: reads never wait behind the frontier query, the dashboard or writes.</summary>
public sealed class ReadLatencyTests
{
    private const int Chains = 100, ChainLength = 100;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>10,000 commits in 100 chains of 100 (so 100 leaves), written straight into the hub's database.</summary>
    private static void SeedCommits(TestHub hub, int seed)
    {
        var rng = new Random(seed);
        var commits = new List<GitRepository.CommitInfo>(Chains * ChainLength);
        for (int chain = 0; chain < Chains; chain++)
        {
            string? parent = null;
            for (int k = 0; k < ChainLength; k++)
            {
                string hash = Convert.ToHexStringLower(rng.GetItems<byte>(Enumerable.Range(0, 256).Select(b => (byte)b).ToArray(), 20));
                commits.Add(new GitRepository.CommitInfo(hash, parent is null ? [] : [parent], $"chain {chain} step {k}"));
                parent = hash;
            }
        }
        using var store = new HubStore(Path.Combine(hub.DataDirectory, "hub.db"), TimeProvider.System);
        store.AddCommits(commits, "seeder");
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    [Fact]
    public async Task Leaves_of_ten_thousand_commits_answer_in_under_20_ms()
    {
        int seed = Environment.TickCount;
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        SeedCommits(hub, seed);
        for (int i = 0; i < 3; i++)
            await c.GetStringAsync("/api/git/leaves?limit=100", Ct);
        var ms = new List<double>();
        for (int i = 0; i < 15; i++)
        {
            long t = Stopwatch.GetTimestamp();
            string json = await c.GetStringAsync("/api/git/leaves?limit=100", Ct);
            ms.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            Assert.Equal(Chains, JsonDocument.Parse(json).RootElement.GetArrayLength());
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"leaves at {Chains * ChainLength} commits: median {Median(ms):F1} ms, max {ms.Max():F1} ms (seed {seed})");
        Assert.True(Median(ms) < 20, $"median {Median(ms):F1} ms over 15 calls (seed {seed})");
    }

    [Fact]
    public async Task Api_reads_do_not_wait_behind_ten_dashboard_readers()
    {
        int seed = Environment.TickCount;
        await using var hub = await TestHub.StartAsync(o => o with { DashboardCacheTime = TimeSpan.FromSeconds(2) });
        string key = await hub.RegisterAsync("alice");
        using var c = hub.Client(key);
        SeedCommits(hub, seed);
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 10).Select(_ => Task.Run(async () =>
        {
            using var reader = hub.Client(key);
            int n = 0;
            while (!stop.IsCancellationRequested)
            {
                using var r = await reader.GetAsync("/", stop.Token).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskScheduler.Default);
                n++;
            }
            return n;
        }, Ct)).ToArray();
        await Task.Delay(500, Ct);
        var ms = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            long t = Stopwatch.GetTimestamp();
            using var r = await c.GetAsync("/api/channels", Ct);
            ms.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            Assert.True(r.IsSuccessStatusCode);
            await Task.Delay(50, Ct);
        }
        await stop.CancelAsync();
        int pages = (await Task.WhenAll(readers)).Sum();
        TestContext.Current.TestOutputHelper?.WriteLine($"GET /api/channels beside 10 dashboard readers ({pages} pages): median {Median(ms):F1} ms, max {ms.Max():F1} ms");
        Assert.True(Median(ms) < 50, $"median {Median(ms):F1} ms, max {ms.Max():F1} ms");
        Assert.True(pages > 10, $"the dashboard readers got only {pages} pages");
    }
}

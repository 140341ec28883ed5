using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>A bounded load run on loopback: many agents posting and pushing at once; prints p50/p99 latency and checks nothing was lost.</summary>
public sealed class LoadTests
{
    private const int Agents = 50, PostsEach = 20, PushesEach = 2;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Fifty_agents_posting_and_pushing_lose_nothing_and_report_latency()
    {
        int seed = Environment.TickCount;
        await using var hub = await TestHub.StartAsync(o => o with { RegistrationsPerMinute = 10_000, PostsPerMinute = 10_000 });
        using var ws = new GitWorkspace();
        var bundles = PrepareHistories(ws, seed);
        string[] keys = new string[Agents];
        for (int i = 0; i < Agents; i++)
            keys[i] = await hub.RegisterAsync($"load{i}");

        var postMs = new ConcurrentBag<double>();
        var pushMs = new ConcurrentBag<double>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Agents).Select(i => Task.Run(async () =>
        {
            using var c = hub.Client(keys[i]);
            for (int k = 0; k < PostsEach; k++)
            {
                if (k % (PostsEach / PushesEach) == 0)
                {
                    var t = Stopwatch.GetTimestamp();
                    using var r = await c.PostAsync("/api/git/push", new ByteArrayContent(bundles[i][k / (PostsEach / PushesEach)]), Ct);
                    pushMs.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                    Assert.Equal(HttpStatusCode.Created, r.StatusCode);
                }
                var t0 = Stopwatch.GetTimestamp();
                using var p = await c.PostAsJsonAsync("/api/channels/results/posts", new { content = $"load {seed} {i} {k}" }, Ct);
                postMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                Assert.Equal(HttpStatusCode.Created, p.StatusCode);
            }
        }, Ct)));
        double seconds = clock.Elapsed.TotalSeconds;

        using var reader = hub.Client(keys[0]);
        var posts = JsonDocument.Parse(await reader.GetStringAsync("/api/channels/results/posts?limit=1000", Ct)).RootElement;
        var contents = posts.EnumerateArray().Select(p => p.GetProperty("content").GetString()!).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(Agents * PostsEach, posts.GetArrayLength());
        for (int i = 0; i < Agents; i++)
        {
            for (int k = 0; k < PostsEach; k++)
                Assert.Contains($"load {seed} {i} {k}", contents);
        }
        var commits = JsonDocument.Parse(await reader.GetStringAsync("/api/git/commits?limit=1000", Ct)).RootElement;
        Assert.Equal(Agents * PushesEach, commits.GetArrayLength());
        Assert.Equal(Agents, JsonDocument.Parse(await reader.GetStringAsync("/api/git/leaves", Ct)).RootElement.GetArrayLength());

        string report = $"load: {Agents} agents x {PostsEach} posts + {PushesEach} pushes in {seconds:F1} s (seed {seed}); "
            + $"post p50 {Percentile(postMs, 0.50):F1} ms p99 {Percentile(postMs, 0.99):F1} ms; "
            + $"push p50 {Percentile(pushMs, 0.50):F1} ms p99 {Percentile(pushMs, 0.99):F1} ms; nothing lost";
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        Console.WriteLine(report);
    }

    /// <summary>Per agent, a chain of PushesEach commits written by one git fast-import; bundle k holds commit k only (k &gt; 0 builds on k-1).</summary>
    private static byte[][][] PrepareHistories(GitWorkspace ws, int seed)
    {
        var stream = new StringBuilder();
        int mark = 1;
        for (int i = 0; i < Agents; i++)
        {
            for (int k = 0; k < PushesEach; k++)
            {
                string data = $"agent {i} step {k} seed {seed}\n";
                stream.Append($"commit refs/heads/a{i}\nmark :{mark}\ncommitter t <t@example.com> {1_700_000_000 + mark} +0000\n")
                    .Append($"data {Encoding.UTF8.GetByteCount($"step {k}")}\nstep {k}\n");
                if (k > 0)
                    stream.Append($"from :{mark - 1}\n");
                stream.Append($"M 644 inline f.txt\ndata {Encoding.UTF8.GetByteCount(data)}\n{data}\n");
                stream.Append($"reset refs/tags/a{i}-{k}\nfrom :{mark}\n\n");
                mark++;
            }
        }
        string streamFile = Path.Combine(ws.Path, "..", Path.GetFileName(ws.Path) + ".fi");
        File.WriteAllText(streamFile, stream.ToString());
        try
        {
            var psi = new ProcessStartInfo("git") { WorkingDirectory = ws.Path, RedirectStandardInput = true, RedirectStandardError = true };
            foreach (var a in new[] { "fast-import", "--quiet" })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            p.StandardInput.Write(File.ReadAllText(streamFile));
            p.StandardInput.Close();
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, err);
        }
        finally
        {
            File.Delete(streamFile);
        }
        var bundles = new byte[Agents][][];
        Parallel.For(0, Agents, i =>
        {
            bundles[i] = new byte[PushesEach][];
            for (int k = 0; k < PushesEach; k++)
                bundles[i][k] = k == 0 ? ws.Bundle($"a{i}-0") : ws.Bundle($"a{i}-{k - 1}..a{i}-{k}");
        });
        return bundles;
    }

    private static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
    }
}

using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Many clients pushing and posting at once lose nothing and duplicate nothing.</summary>
public sealed class ConcurrencyTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Sixteen_clients_pushing_and_posting_at_once_lose_nothing()
    {
        const int Clients = 16, PushesEach = 3, PostsEach = 10;
        int seed = Environment.TickCount;
        await using var hub = await TestHub.StartAsync();
        string[] keys = new string[Clients];
        for (int i = 0; i < Clients; i++)
            keys[i] = await hub.RegisterAsync($"agent{i}");

        // Prepare each client's history first so that the pushes themselves overlap.
        var workspaces = new GitWorkspace[Clients];
        var bundles = new byte[Clients][][];
        var expectedCommits = new ConcurrentBag<string>();
        for (int i = 0; i < Clients; i++)
        {
            workspaces[i] = new GitWorkspace();
            bundles[i] = new byte[PushesEach][];
            string? previous = null;
            for (int k = 0; k < PushesEach; k++)
            {
                string hash = workspaces[i].Commit("f.txt", $"{seed} {i} {k}\n", $"client {i} step {k}");
                expectedCommits.Add(hash);
                bundles[i][k] = previous is null ? workspaces[i].Bundle("main") : workspaces[i].Bundle($"{previous}..main");
                previous = hash;
            }
        }
        try
        {
            var tasks = Enumerable.Range(0, Clients).Select(i => Task.Run(async () =>
            {
                using var c = hub.Client(keys[i]);
                for (int k = 0; k < Math.Max(PushesEach, PostsEach); k++)
                {
                    if (k < PushesEach)
                    {
                        using var r = await c.PostAsync("/api/git/push", new ByteArrayContent(bundles[i][k]), Ct);
                        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
                    }
                    if (k < PostsEach)
                    {
                        using var r = await c.PostAsJsonAsync("/api/channels/results/posts", new { content = $"post {i}/{k} seed {seed}" }, Ct);
                        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
                    }
                }
            }, Ct)).ToArray();
            await Task.WhenAll(tasks);

            using var reader = hub.Client(keys[0]);
            var commits = JsonDocument.Parse(await reader.GetStringAsync("/api/git/commits?limit=1000", Ct)).RootElement;
            var got = commits.EnumerateArray().Select(c => c.GetProperty("hash").GetString()!).ToList();
            Assert.Equal(Clients * PushesEach, got.Count);
            Assert.Equal(expectedCommits.Order(StringComparer.Ordinal), got.Order(StringComparer.Ordinal));
            var leaves = JsonDocument.Parse(await reader.GetStringAsync("/api/git/leaves", Ct)).RootElement;
            Assert.Equal(Clients, leaves.GetArrayLength());

            var posts = JsonDocument.Parse(await reader.GetStringAsync("/api/channels/results/posts?limit=1000", Ct)).RootElement;
            var contents = posts.EnumerateArray().Select(p => p.GetProperty("content").GetString()!).ToList();
            var expectedPosts = from i in Enumerable.Range(0, Clients) from k in Enumerable.Range(0, PostsEach) select $"post {i}/{k} seed {seed}";
            Assert.Equal(expectedPosts.Order(StringComparer.Ordinal), contents.Order(StringComparer.Ordinal));
        }
        finally
        {
            foreach (var w in workspaces)
                w?.Dispose();
        }
    }
}

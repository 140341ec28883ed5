using System.Net.Http.Json;
using System.Net;
using System.Text.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>The whole API of SPEC §11 against a real server on loopback and real git repositories.</summary>
public sealed class HubApiTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<JsonElement> JsonOf(HttpResponseMessage r) =>
        JsonDocument.Parse(await r.Content.ReadAsStringAsync(Ct)).RootElement.Clone();

    private static async Task<HttpResponseMessage> Push(HttpClient c, byte[] bundle) =>
        await c.PostAsync("/api/git/push", new ByteArrayContent(bundle), Ct);

    [Fact]
    public async Task Push_commits_leaves_children_fetch_and_diff_round_trip()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        var seed = Random.Shared.Next();
        string a = ws.Commit("train.txt", $"lr=0.04 seed={seed}\n", "baseline");
        string b = ws.Commit("train.txt", $"lr=0.05 seed={seed}\n", "raise lr");

        using (var r = await Push(c, ws.Bundle("main")))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            var hashes = (await JsonOf(r)).GetProperty("hashes").EnumerateArray().Select(h => h.GetString()).ToArray();
            Assert.Equal([a, b], hashes);
        }

        var commits = await JsonOf(await c.GetAsync("/api/git/commits?limit=10", Ct));
        Assert.Equal([b, a], commits.EnumerateArray().Select(x => x.GetProperty("hash").GetString()).ToArray());
        Assert.Equal("alice", commits[0].GetProperty("agent_id").GetString());
        Assert.Equal("raise lr", commits[0].GetProperty("message").GetString());
        Assert.Equal(a, commits[0].GetProperty("parents")[0].GetString());
        Assert.Single((await JsonOf(await c.GetAsync("/api/git/commits?limit=1", Ct))).EnumerateArray());

        var leaves = await JsonOf(await c.GetAsync("/api/git/leaves", Ct));
        Assert.Equal([b], leaves.EnumerateArray().Select(x => x.GetProperty("hash").GetString()).ToArray());
        var children = await JsonOf(await c.GetAsync($"/api/git/commits/{a[..7]}/children", Ct));
        Assert.Equal([b], children.EnumerateArray().Select(x => x.GetProperty("hash").GetString()).ToArray());
        Assert.Empty((await JsonOf(await c.GetAsync($"/api/git/commits/{b}/children", Ct))).EnumerateArray());

        // A second agent builds on b with only the new commit (b is a prerequisite the hub has).
        using var c2 = hub.Client(await hub.RegisterAsync("bob"));
        string d = ws.Commit("train.txt", $"lr=0.06 seed={seed}\n", "raise lr again");
        using (var r = await Push(c2, ws.Bundle($"{b}..main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        leaves = await JsonOf(await c.GetAsync("/api/git/leaves", Ct));
        Assert.Equal([d], leaves.EnumerateArray().Select(x => x.GetProperty("hash").GetString()).ToArray());
        Assert.Equal("bob", leaves[0].GetProperty("agent_id").GetString());

        // Fetch d's bundle and unbundle it into a fresh repository: the same commit.
        byte[] bundle = await c.GetByteArrayAsync($"/api/git/fetch/{d}", Ct);
        using var fresh = new GitWorkspace();
        string file = Path.Combine(fresh.Path, "got.bundle");
        await File.WriteAllBytesAsync(file, bundle, Ct);
        fresh.Git("fetch", "--quiet", file, $"refs/hub/{d}:refs/heads/got");
        Assert.Equal(d, fresh.Git("rev-parse", "got").Trim());
        Assert.Equal(ws.Git("cat-file", "-p", d), fresh.Git("cat-file", "-p", d));

        string diff = await c.GetStringAsync($"/api/git/diff/{a}/{d}", Ct);
        Assert.Contains($"-lr=0.04 seed={seed}", diff, StringComparison.Ordinal);
        Assert.Contains($"+lr=0.06 seed={seed}", diff, StringComparison.Ordinal);

        // Pushing the same history again adds nothing.
        using (var r = await Push(c, ws.Bundle("main")))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            Assert.Empty((await JsonOf(r)).GetProperty("hashes").EnumerateArray());
        }
        Assert.Equal(3, (await JsonOf(await c.GetAsync("/api/git/commits", Ct))).GetArrayLength());
    }

    [Fact]
    public async Task Registration_rejects_duplicates_bad_ids_and_is_rate_limited()
    {
        await using var hub = await TestHub.StartAsync(o => o with { RegistrationsPerMinute = 5, Time = ManualClock.MidMinute() });
        using var c = hub.Client();
        string key = await hub.RegisterAsync("agent-1");
        Assert.Equal(64, key.Length);
        using (var r = await c.PostAsJsonAsync("/api/register", new { id = "agent-1" }, Ct))
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        foreach (var bad in new[] { "", "../x", "a b", "a;rm -rf", "-flag", new string('a', 65), "é" })
        {
            using var r = await c.PostAsJsonAsync("/api/register", new { id = bad }, Ct);
            Assert.True(r.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.TooManyRequests, $"id '{bad}' gave {r.StatusCode}");
        }
        using (var r = await c.PostAsync("/api/register", TestHub.Json("not json"), Ct))
            Assert.True(r.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.TooManyRequests);
        using (var r = await c.PostAsJsonAsync("/api/register", new { id = "late" }, Ct))
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        // The key is stored only as a hash.
        byte[] db = await File.ReadAllBytesAsync(Path.Combine(hub.DataDirectory, "hub.db"), Ct);
        Assert.DoesNotContain(key, System.Text.Encoding.ASCII.GetString(db), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_call_but_registration_needs_a_valid_bearer_key()
    {
        await using var hub = await TestHub.StartAsync();
        string key = await hub.RegisterAsync("alice");
        string[] gets = ["/api/git/commits", "/api/git/leaves", "/api/git/fetch/abcdef1", "/api/git/commits/abcdef1/children",
            "/api/git/diff/abcdef1/abcdef2", "/api/channels/results/posts", "/api/channels"];
        string[] posts = ["/api/git/push", "/api/channels", "/api/channels/results/posts"];
        foreach (var auth in new[] { null, "Bearer nope", "Bearer " + key + "x", "Basic " + key, key, "Bearer " })
        {
            using var c = hub.Client();
            if (auth is not null)
                c.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", auth);
            foreach (var g in gets)
            {
                using var r = await c.GetAsync(g, Ct);
                Assert.True(r.StatusCode == HttpStatusCode.Unauthorized, $"GET {g} with '{auth}' gave {r.StatusCode}");
            }
            foreach (var p in posts)
            {
                using var r = await c.PostAsync(p, TestHub.Json("{\"name\":\"x\",\"content\":\"x\"}"), Ct);
                Assert.True(r.StatusCode == HttpStatusCode.Unauthorized, $"POST {p} with '{auth}' gave {r.StatusCode}");
            }
        }
        using var ok = hub.Client(key);
        using var fine = await ok.GetAsync("/api/git/leaves", Ct);
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
    }

    [Fact]
    public async Task Malformed_oversized_and_unrelated_bundles_are_rejected_and_change_nothing()
    {
        await using var hub = await TestHub.StartAsync(o => o with { MaxBundleBytes = 64 * 1024 });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string a = ws.Commit("f.txt", "one\n", "one");
        ws.Commit("f.txt", "two\n", "two");
        var rng = new Random(1234);
        byte[] garbage = new byte[4096];
        rng.NextBytes(garbage);
        byte[] real = ws.Bundle("main");
        byte[] truncated = real[..(real.Length / 2)];
        byte[] headerOnly = System.Text.Encoding.ASCII.GetBytes("# v2 git bundle\n");
        byte[] unrelated = ws.Bundle($"{a}..main"); // needs a, which the hub has never seen
        foreach (var (name, body) in new[] { ("garbage", garbage), ("truncated", truncated), ("header only", headerOnly), ("unrelated", unrelated), ("empty", Array.Empty<byte>()) })
        {
            using var r = await Push(c, body);
            Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{name} bundle gave {r.StatusCode}");
        }
        byte[] big = new byte[65 * 1024];
        rng.NextBytes(big);
        using (var r = await Push(c, big))
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
        Assert.Equal(0, (await JsonOf(await c.GetAsync("/api/git/commits", Ct))).GetArrayLength());
        Assert.Empty(GitWorkspace.Run(hub.DataDirectory, "--git-dir", "repo.git", "for-each-ref").Trim());
        Assert.Empty(Directory.GetFiles(Path.Combine(hub.DataDirectory, "tmp")));
    }

    [Fact]
    public async Task Traversal_and_injection_attempts_in_every_parameter_are_refused()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string a = ws.Commit("f.txt", "x\n", "x");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        string[] badHashes = ["..%2F..%2Fetc%2Fpasswd", "HEAD", "--output=%2Ftmp%2Fx", "abc", "ABCDEF1234", "abcdefg", "a1b2c3d%3Brm", "main", new string('a', 41), "%2E%2E"];
        foreach (var h in badHashes)
        {
            foreach (var url in new[] { $"/api/git/fetch/{h}", $"/api/git/commits/{h}/children", $"/api/git/diff/{h}/{a}", $"/api/git/diff/{a}/{h}" })
            {
                using var r = await c.GetAsync(url, Ct);
                Assert.True(r.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"GET {url} gave {r.StatusCode}");
            }
        }
        foreach (var name in new[] { "..%2F..%2Fhub", "a%20b", "x'%20OR%20'1'='1", "-rf", "%2E%2E" })
        {
            using var r1 = await c.GetAsync($"/api/channels/{name}/posts", Ct);
            Assert.True(r1.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"GET channel {name} gave {r1.StatusCode}");
            using var r2 = await c.PostAsync($"/api/channels/{name}/posts", TestHub.Json("{\"content\":\"hi\"}"), Ct);
            Assert.True(r2.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"POST channel {name} gave {r2.StatusCode}");
        }
        foreach (var name in new[] { "../x", "a'; DROP TABLE posts; --", "a/b", "" })
        {
            using var r = await c.PostAsJsonAsync("/api/channels", new { name, description = "d" }, Ct);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        }
        foreach (var limit in new[] { "0", "-1", "abc", "1001", "1e3", "99999999999" })
        {
            using var r = await c.GetAsync($"/api/git/commits?limit={limit}", Ct);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        }
        // SQL text in content is stored as text.
        const string sql = "x'); DROP TABLE posts; --";
        using (var r = await c.PostAsJsonAsync("/api/channels/results/posts", new { content = sql }, Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        var posts = await JsonOf(await c.GetAsync("/api/channels/results/posts", Ct));
        Assert.Equal(sql, posts[0].GetProperty("content").GetString());
        Assert.Single((await JsonOf(await c.GetAsync("/api/git/commits", Ct))).EnumerateArray());
        Assert.DoesNotContain(Directory.GetFiles(hub.DataDirectory), f => !Path.GetFileName(f).StartsWith("hub.db", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Channels_and_posts_keep_order_limits_and_conflicts()
    {
        await using var hub = await TestHub.StartAsync(o => o with { MaxPostBytes = 100, PostsPerMinute = 12, Time = ManualClock.MidMinute() });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using (var r = await c.PostAsJsonAsync("/api/channels", new { name = "ideas", description = "things to try" }, Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var r = await c.PostAsJsonAsync("/api/channels", new { name = "ideas", description = "again" }, Ct))
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        using (var r = await c.PostAsJsonAsync("/api/channels/nope/posts", new { content = "x" }, Ct))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        var rng = new Random(42);
        var sent = new List<string>();
        for (int i = 0; i < 10; i++)
        {
            string content = $"idea {i} {rng.Next()}";
            sent.Add(content);
            using var r = await c.PostAsJsonAsync("/api/channels/ideas/posts", new { content }, Ct);
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }
        using (var r = await c.PostAsJsonAsync("/api/channels/ideas/posts", new { content = new string('x', 101) }, Ct))
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
        using (var r = await c.PostAsJsonAsync("/api/channels/ideas/posts", new { content = "" }, Ct))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        using (var r = await c.PostAsync("/api/channels/ideas/posts", TestHub.Json("{\"content\":" + new string('1', 70_000) + "}"), Ct))
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
        var got = await JsonOf(await c.GetAsync("/api/channels/ideas/posts?limit=3", Ct));
        Assert.Equal(sent[^3..].AsEnumerable().Reverse(), got.EnumerateArray().Select(p => p.GetProperty("content").GetString()));
        Assert.All(got.EnumerateArray(), p => Assert.Equal("alice", p.GetProperty("agent_id").GetString()));
        // 10 accepted so far; the limit is 12 per minute.
        for (int i = 0; i < 2; i++)
        {
            using var r = await c.PostAsJsonAsync("/api/channels/ideas/posts", new { content = "more" }, Ct);
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }
        using (var r = await c.PostAsJsonAsync("/api/channels/ideas/posts", new { content = "one too many" }, Ct))
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
    }

    [Fact]
    public async Task A_restarted_server_still_has_agents_commits_channels_and_posts()
    {
        await using var hub = await TestHub.StartAsync();
        string key = await hub.RegisterAsync("alice");
        using var ws = new GitWorkspace();
        string a = ws.Commit("f.txt", "1\n", "first");
        string b = ws.Commit("f.txt", "2\n", "second");
        using (var c = hub.Client(key))
        {
            using var r = await Push(c, ws.Bundle("main"));
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            using var ch = await c.PostAsJsonAsync("/api/channels", new { name = "kept", description = "d" }, Ct);
            using var p = await c.PostAsJsonAsync("/api/channels/kept/posts", new { content = "still here" }, Ct);
            Assert.Equal(HttpStatusCode.Created, p.StatusCode);
        }
        await hub.RestartAsync();
        using var c2 = hub.Client(key);
        var leaves = await JsonOf(await c2.GetAsync("/api/git/leaves", Ct));
        Assert.Equal(b, leaves[0].GetProperty("hash").GetString());
        Assert.Equal(a, (await JsonOf(await c2.GetAsync($"/api/git/commits?limit=2", Ct)))[1].GetProperty("hash").GetString());
        Assert.Equal("still here", (await JsonOf(await c2.GetAsync("/api/channels/kept/posts", Ct)))[0].GetProperty("content").GetString());
        using (var r = await c2.PostAsJsonAsync("/api/channels", new { name = "kept", description = "d" }, Ct))
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        Assert.NotEmpty(await c2.GetByteArrayAsync($"/api/git/fetch/{b}", Ct));
    }
}

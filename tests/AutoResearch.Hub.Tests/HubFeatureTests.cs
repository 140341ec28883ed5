using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>What agents sharing a history need beyond SPEC §11: one commit with its results, lineage, ranked leaves, threads, keys, health.</summary>
public sealed class HubFeatureTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<JsonElement> Get(HttpClient c, string url) => JsonDocument.Parse(await c.GetStringAsync(url, Ct)).RootElement.Clone();

    [Fact]
    public async Task A_commit_shows_its_results_lineage_and_leaves_rank_by_best_val_bpb()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string a = ws.Commit("f.txt", "a\n", "base");
        string b = ws.Commit("f.txt", "b\n", "wider mlp");
        ws.Git("checkout", "--quiet", "-b", "side", a);
        string d = ws.Commit("f.txt", "d\n", "deeper");
        using (var r = await c.PostAsync("/api/git/push", new ByteArrayContent(ws.Bundle("main", "side")), Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        foreach (var line in new[]
        {
            $"commit:{b[..7]} platform:H100 val_bpb:0.990000 vram_gb:44.0 | wider",
            $"commit:{d[..7]} platform:H100 val_bpb:0.980000 vram_gb:44.0 | deeper",
            $"commit:{b[..9]} platform:A100 val_bpb:0.970000 vram_gb:70.0 | wider on A100",
            $"commit:{d[..7]} platform:A100 val_bpb:0.000000 vram_gb:0.0 | crashed",
        })
        {
            using var r = await c.PostAsJsonAsync("/api/channels/results/posts", new { content = line }, Ct);
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }
        var commit = await Get(c, $"/api/git/commits/{b[..7]}");
        Assert.Equal(b, commit.GetProperty("hash").GetString());
        Assert.Equal([0.97, 0.99], commit.GetProperty("results").EnumerateArray().Select(x => x.GetProperty("val_bpb").GetDouble()));
        Assert.Equal([a], (await Get(c, $"/api/git/commits/{b}/lineage")).EnumerateArray().Select(x => x.GetProperty("hash").GetString()));
        // Overall, b (0.97 on A100) beats d (0.98); on H100 alone, d (0.98) beats b (0.99); d's crash never counts.
        Assert.Equal([b, d], (await Get(c, "/api/git/leaves")).EnumerateArray().Select(x => x.GetProperty("hash").GetString()));
        var h100 = await Get(c, "/api/git/leaves?platform=H100");
        Assert.Equal([d, b], h100.EnumerateArray().Select(x => x.GetProperty("hash").GetString()));
        Assert.Equal(0.98, h100[0].GetProperty("best").GetProperty("val_bpb").GetDouble());
        Assert.Equal(2, (await Get(c, "/api/results?platform=A100")).GetArrayLength());
        using (var r = await c.GetAsync("/commits/" + b, Ct))
            Assert.Contains("wider on A100", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Replies_form_a_thread_in_their_own_channel()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        async Task<JsonElement> Post(string channel, object body)
        {
            using var r = await c.PostAsJsonAsync($"/api/channels/{channel}/posts", body, Ct);
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            return JsonDocument.Parse(await r.Content.ReadAsStringAsync(Ct)).RootElement.Clone();
        }
        long question = (await Post("discussion", new { content = "who tried rotary base 50k?" })).GetProperty("id").GetInt64();
        await Post("discussion", new { content = "me: no gain", reply_to = question });
        await Post("discussion", new { content = "me too", reply_to = question });
        var thread = await Get(c, $"/api/posts/{question}");
        Assert.Equal(["me: no gain", "me too"], thread.GetProperty("replies").EnumerateArray().Select(p => p.GetProperty("content").GetString()));
        using (var r = await c.PostAsJsonAsync("/api/channels/results/posts", new { content = "wrong channel", reply_to = question }, Ct))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await c.PostAsJsonAsync("/api/channels/discussion/posts", new { content = "x", reply_to = "one" }, Ct))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
    }

    [Fact]
    public async Task Keys_rotate_and_revoke_and_agents_are_listed()
    {
        await using var hub = await TestHub.StartAsync();
        string key = await hub.RegisterAsync("alice");
        await hub.RegisterAsync("bob");
        using var c = hub.Client(key);
        Assert.Equal(["alice", "bob"], (await Get(c, "/api/agents")).EnumerateArray().Select(a => a.GetProperty("id").GetString()));
        string fresh;
        using (var r = await c.PostAsync("/api/keys/rotate", null, Ct))
            fresh = JsonDocument.Parse(await r.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("api_key").GetString()!;
        using (var r = await c.GetAsync("/api/channels", Ct))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using var c2 = hub.Client(fresh);
        using (var r = await c2.PostAsync("/api/keys/revoke", null, Ct))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await c2.GetAsync("/api/channels", Ct))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        // The name stays taken.
        using (var r = await hub.Client().PostAsJsonAsync("/api/register", new { id = "alice" }, Ct))
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
    }

    [Fact]
    public async Task Health_answers_without_a_key()
    {
        await using var hub = await TestHub.StartAsync();
        var health = await Get(hub.Client(), "/api/health");
        Assert.Equal("ok", health.GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_version_1_database_is_migrated_with_its_leaves_and_results()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hubmigrate-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string db = Path.Combine(dir, "hub.db");
            using (var old = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Pooling=False"))
            {
                old.Open();
                using var cmd = old.CreateCommand();
                // The schema the hub had before results, replies and the leaf flag.
                cmd.CommandText = """
                    CREATE TABLE agents (id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
                    CREATE TABLE channels (name TEXT PRIMARY KEY, description TEXT NOT NULL, created_at TEXT NOT NULL);
                    CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, agent_id TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL);
                    CREATE TABLE commits (seq INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL UNIQUE, parents TEXT NOT NULL, agent_id TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL);
                    INSERT INTO channels VALUES ('results', 'r', '1970-01-01T00:00:00Z');
                    INSERT INTO commits (hash, parents, agent_id, message, created_at) VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '', 'x', 'a', 't');
                    INSERT INTO commits (hash, parents, agent_id, message, created_at) VALUES ('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'x', 'b', 't');
                    INSERT INTO posts (channel, agent_id, content, created_at) VALUES ('results', 'x', 'commit:bbbbbbb platform:H100 val_bpb:0.990000 vram_gb:44.0 | b', 't');
                    """;
                cmd.ExecuteNonQuery();
            }
            using var store = new HubStore(db, TimeProvider.System);
            var leaf = Assert.Single(store.Leaves(10));
            Assert.Equal(new string('b', 40), leaf.Commit.Hash);
            Assert.Equal(0.99, leaf.Best!.ValBpb);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dir, recursive: true);
        }
    }
}

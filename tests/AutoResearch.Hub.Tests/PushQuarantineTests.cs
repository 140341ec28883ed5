using System.Net;
using System.Text;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Findings 1 and 2: a push lands through a quarantine; a rejected push changes nothing and leaves no bytes behind.</summary>
public sealed class PushQuarantineTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static Task<HttpResponseMessage> Push(HttpClient c, byte[] bundle) => c.PostAsync("/api/git/push", new ByteArrayContent(bundle), Ct);

    /// <summary>A bundle by hand: its header (prerequisites, one ref) and a pack of exactly the listed objects.</summary>
    private static byte[] HandMadeBundle(GitWorkspace ws, string[] prerequisites, string tip, params string[] objects)
    {
        var header = new StringBuilder("# v2 git bundle\n");
        foreach (var p in prerequisites)
            header.Append('-').Append(p).Append(" prerequisite\n");
        header.Append(tip).Append(" refs/heads/main\n\n");
        byte[] pack = ws.PackObjects(objects);
        return [.. Encoding.ASCII.GetBytes(header.ToString()), .. pack];
    }

    private static long RepositoryBytes(TestHub hub) =>
        new[] { "repo.git", "tmp" }.Select(d => Path.Combine(hub.DataDirectory, d)).Where(Directory.Exists)
            .Sum(d => new DirectoryInfo(d).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length));

    [Fact]
    public async Task A_pack_missing_the_commits_tree_is_refused_and_git_gc_still_succeeds()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string parent = ws.Commit("f.txt", "one\n", "one");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        string child = ws.Commit("f.txt", "two\n", "two");

        // The commit alone: its tree and blob left out, its parent declared as the base.
        using (var r = await Push(c, HandMadeBundle(ws, [parent], child, child)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("error", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        var leaves = await c.GetStringAsync("/api/git/leaves", Ct);
        Assert.Contains(parent, leaves, StringComparison.Ordinal);
        Assert.DoesNotContain(child, leaves, StringComparison.Ordinal);
        using (var r = await c.GetAsync($"/api/git/fetch/{child}", Ct))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        GitWorkspace.Run(hub.DataDirectory, "--git-dir", "repo.git", "fsck", "--strict", "--no-dangling");
        GitWorkspace.Run(hub.DataDirectory, "--git-dir", "repo.git", "gc", "--quiet");
    }

    [Fact]
    public async Task A_commit_whose_parent_is_missing_and_undeclared_is_refused_with_400()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        ws.Commit("f.txt", "one\n", "one");
        string child = ws.Commit("f.txt", "two\n", "two");
        // Commit, tree and blob, no prerequisite line: the parent is neither in the bundle nor on the hub.
        byte[] bundle = HandMadeBundle(ws, [], child, child, ws.Git("rev-parse", "HEAD^{tree}").Trim(), ws.Git("rev-parse", "HEAD:f.txt").Trim());
        using var r = await Push(c, bundle);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal("[]", await c.GetStringAsync("/api/git/commits", Ct));
    }

    [Fact]
    public async Task Rejected_pushes_leave_zero_bytes_behind()
    {
        await using var hub = await TestHub.StartAsync(o => o with { MaxBundleBytes = 8 * 1024 * 1024 });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string first = ws.Commit("f.txt", "one\n", "one");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        long before = RepositoryBytes(hub);

        // 3 MB of incompressible data, then the pack's trailing checksum broken.
        var rng = new Random(19);
        byte[] blob = new byte[3 * 1024 * 1024];
        rng.NextBytes(blob);
        ws.CommitBytes("big.bin", blob, "big");
        byte[] good = ws.Bundle($"{first}..main");
        byte[] broken = (byte[])good.Clone();
        broken[^1] ^= 0xFF;
        broken[^7] ^= 0x55;
        for (int i = 0; i < 3; i++)
        {
            using var r = await Push(c, broken);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        }
        Assert.Equal(before, RepositoryBytes(hub));
        // A damaged middle, a truncated pack and a pack missing objects: refused the same way.
        byte[] damaged = (byte[])good.Clone();
        damaged[good.Length / 2] ^= 0xFF;
        foreach (var body in new[] { damaged, good[..(good.Length - 1000)], HandMadeBundle(ws, [first], ws.Git("rev-parse", "HEAD").Trim(), ws.Git("rev-parse", "HEAD").Trim()) })
        {
            using var r = await Push(c, body);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        }
        Assert.Equal(before, RepositoryBytes(hub));
        using (var r = await Push(c, good))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        Assert.True(RepositoryBytes(hub) > before + blob.Length / 2);
    }

    [Fact]
    public async Task Pushes_are_rate_limited_and_held_to_a_daily_quota_per_agent()
    {
        // The limit counts pushes in each clock minute: a clock that stands still keeps all four in one.
        var clock = ManualClock.MidMinute();
        await using var hub = await TestHub.StartAsync(o => o with { PushesPerMinute = 3, PushQuotaBytesPerDay = 64 * 1024, Time = clock });
        using var alice = hub.Client(await hub.RegisterAsync("alice"));
        using var bob = hub.Client(await hub.RegisterAsync("bob"));
        using var ws = new GitWorkspace();
        string a = ws.Commit("f.txt", "one\n", "one");
        byte[] bundle = ws.Bundle("main");
        for (int i = 0; i < 3; i++)
        {
            using var r = await Push(alice, bundle);
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }
        using (var r = await Push(alice, bundle))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
            Assert.Contains("pushes", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        // The next minute opens a new allowance.
        clock.Advance(TimeSpan.FromMinutes(1));
        using (var r = await Push(alice, bundle))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        // Bob has his own allowance, but 100 KB of incompressible data is over the 64 KB a day quota.
        var rng = new Random(5);
        byte[] blob = new byte[100 * 1024];
        rng.NextBytes(blob);
        ws.CommitBytes("big.bin", blob, "big");
        using (var r = await Push(bob, ws.Bundle($"{a}..main")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
            Assert.Contains("quota", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
    }
}

using System.Net;
using System.Text.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>
/// What a pushed commit's contents can do to the hub: a message cannot pose as other commits or reach git as an option, and a
/// push's commits, objects and diffs are bounded, so that one agent cannot make the hub's pages, memory or disk blow up.
/// </summary>
public sealed class PushContentTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static Task<HttpResponseMessage> Push(HttpClient c, byte[] bundle) => c.PostAsync("/api/git/push", new ByteArrayContent(bundle), Ct);

    private static async Task<JsonElement> Json(HttpClient c, string path) => JsonDocument.Parse(await c.GetStringAsync(path, Ct)).RootElement.Clone();

    private static string CommitVerbatim(GitWorkspace ws, string file, string content, string message)
    {
        File.WriteAllText(Path.Combine(ws.Path, file), content);
        ws.Git("add", file);
        // --cleanup=verbatim: the message as given, control characters and all.
        ws.Git("-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "--quiet", "--cleanup=verbatim", "-m", message);
        return ws.Git("rev-parse", "HEAD").Trim();
    }

    [Fact]
    public async Task A_commit_message_cannot_pose_as_other_commits_or_pass_options_to_git()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("mallory"));
        using var ws = new GitWorkspace();
        string victim = ws.Commit("train.py", "lr = 0.04\n", "the victim's best");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        string blob = ws.Git("rev-parse", "HEAD:train.py").Trim();
        string database = Path.Combine(hub.DataDirectory, "hub.db");
        long databaseBytes = new FileInfo(database).Length;
        // The separators a `git log --format` listing would use, then a made-up record: a blob as a commit whose parents are
        // the victim and a git option that would truncate the database.
        string forged = $"x\x1e{blob}\x1f{victim} --output={database}\x1fforged\x1e";
        string attacker = CommitVerbatim(ws, "train.py", "lr = 0.05\n", forged);
        using (var r = await Push(c, ws.Bundle($"{victim}..main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);

        var commits = await Json(c, "/api/git/commits");
        Assert.Equal([victim, attacker], commits.EnumerateArray().Select(e => e.GetProperty("hash").GetString()).Order().ToArray().OrderBy(h => h == victim ? 0 : 1));
        var pushed = commits.EnumerateArray().Single(e => e.GetProperty("hash").GetString() == attacker);
        Assert.Equal([victim], pushed.GetProperty("parents").EnumerateArray().Select(p => p.GetString()));
        // The stored subject keeps the text, the control characters made spaces.
        string message = pushed.GetProperty("message").GetString()!;
        Assert.DoesNotContain('\x1e', message);
        Assert.DoesNotContain('\x1f', message);
        Assert.StartsWith("x ", message, StringComparison.Ordinal);
        using (var r = await c.GetAsync($"/api/git/commits/{blob}", Ct))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Equal(attacker, Assert.Single((await Json(c, "/api/git/leaves")).EnumerateArray()).GetProperty("hash").GetString());

        // The commit's page and its diff run git with the real parent; the database is untouched and still opens.
        using (var r = await c.GetAsync($"/commits/{attacker}", Ct))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        string diff = await c.GetStringAsync($"/api/git/diff/{victim}/{attacker}", Ct);
        Assert.Contains("+lr = 0.05", diff, StringComparison.Ordinal);
        Assert.True(new FileInfo(database).Length >= databaseBytes, "the database was truncated");
        await hub.RestartAsync();
        using var again = hub.Client(await hub.RegisterAsync("alice"));
        Assert.Equal(2, (await Json(again, "/api/git/commits")).GetArrayLength());
    }

    [Fact]
    public async Task Long_subjects_are_cut_and_oversized_commits_are_refused()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string first = CommitVerbatim(ws, "f.txt", "1\n", new string('a', 1000) + "\n\nbody");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        string message = Assert.Single((await Json(c, "/api/git/commits")).EnumerateArray()).GetProperty("message").GetString()!;
        Assert.Equal(new string('a', new HubOptions { DataDirectory = "x" }.Git.MaxSubjectChars) + "…", message);

        // A 20 KB message (the commit object past 16 KB): refused, naming the limit; nothing of it lands.
        CommitVerbatim(ws, "f.txt", "2\n", new string('b', 20_000));
        using (var r = await Push(c, ws.Bundle($"{first}..main")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("commits may have at most 16384", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        Assert.Single((await Json(c, "/api/git/commits")).EnumerateArray());
    }

    [Fact]
    public async Task Files_objects_and_commits_of_a_push_are_bounded()
    {
        await using var hub = await TestHub.StartAsync(o => o with
        {
            Git = o.Git with { MaxBlobBytes = 100_000, MaxPushObjectBytes = 250_000, MaxCommitsPerPush = 5, MaxObjectsPerPush = 20 },
        });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string root = ws.Commit("f.txt", "root\n", "root");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);

        // One file over the per-file limit (text that compresses to almost nothing: the bundle's size says little).
        ws.Commit("big.txt", new string('x', 150_000), "big");
        using (var r = await Push(c, ws.Bundle($"{root}..main")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("files may have at most 100000", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        ws.Git("reset", "--quiet", "--hard", root);

        // Files each within the limit, together over the push's.
        for (int i = 0; i < 3; i++)
            ws.Commit($"part{i}.txt", new string((char)('a' + i), 90_000), $"part {i}");
        using (var r = await Push(c, ws.Bundle($"{root}..main")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("a push may bring at most 250000", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        ws.Git("reset", "--quiet", "--hard", root);

        // One commit of 25 small files: 27 objects (the commit, its tree, 25 files) where a push may bring 20.
        for (int i = 0; i < 25; i++)
            File.WriteAllText(Path.Combine(ws.Path, $"small{i}.txt"), $"{i}\n");
        ws.Git("add", ".");
        ws.Git("-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "--quiet", "-m", "many files");
        using (var r = await Push(c, ws.Bundle($"{root}..main")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("more than 20 objects", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        ws.Git("reset", "--quiet", "--hard", root);

        // Six small commits: one more than a push may bring; five land.
        for (int i = 0; i < 6; i++)
            ws.Commit("f.txt", $"{i}\n", $"step {i}");
        using (var r = await Push(c, ws.Bundle($"{root}..main")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("a push may bring at most 5", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        ws.Git("branch", "five", "main~1");
        using (var r = await Push(c, ws.Bundle($"{root}..five")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        Assert.Equal(6, (await Json(c, "/api/git/commits")).GetArrayLength());
    }

    [Fact]
    public async Task A_diff_is_read_up_to_its_limit_and_says_where_it_was_cut()
    {
        await using var hub = await TestHub.StartAsync(o => o with { Git = o.Git with { MaxDiffBytes = 2000 } });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string before = ws.Commit("f.txt", "start\n", "start");
        string after = ws.Commit("f.txt", string.Join('\n', Enumerable.Range(0, 2000).Select(i => $"line {i}")) + "\n", "many lines");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        string diff = await c.GetStringAsync($"/api/git/diff/{before}/{after}", Ct);
        Assert.StartsWith("diff --git", diff, StringComparison.Ordinal);
        Assert.EndsWith("(the diff is longer than 2000 bytes: cut here)\n", diff, StringComparison.Ordinal);
        Assert.True(diff.Length < 2200, $"{diff.Length} characters");
        Assert.Contains("+line 0", diff, StringComparison.Ordinal);
        Assert.DoesNotContain("+line 1999", diff, StringComparison.Ordinal);
        // A short diff comes whole.
        string small = await c.GetStringAsync($"/api/git/diff/{before}/{before}", Ct);
        Assert.Equal("", small);
    }

    [Fact]
    public async Task Pushes_checked_side_by_side_do_not_together_pass_the_daily_quota()
    {
        // Random bytes do not compress: each bundle is about 40 KB; the quota holds two of them.
        await using var hub = await TestHub.StartAsync(o => o with { PushQuotaBytesPerDay = 100_000 });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        var bundles = new List<byte[]>();
        for (int i = 0; i < 6; i++)
        {
            using var ws = new GitWorkspace();
            var bytes = new byte[40_000];
            new Random(i).NextBytes(bytes);
            ws.CommitBytes("noise.bin", bytes, $"noise {i}");
            bundles.Add(ws.Bundle("main"));
        }
        var responses = await Task.WhenAll(bundles.Select(b => Push(c, b)));
        var codes = responses.Select(r => r.StatusCode).ToArray();
        foreach (var r in responses)
            r.Dispose();
        Assert.Equal(2, codes.Count(s => s == HttpStatusCode.Created));
        Assert.Equal(4, codes.Count(s => s == HttpStatusCode.TooManyRequests));
        Assert.Equal(2, (await Json(c, "/api/git/commits")).GetArrayLength());
    }

    [Fact]
    public async Task Objects_no_commit_points_to_count_against_the_limits_too()
    {
        await using var hub = await TestHub.StartAsync(o => o with { Git = o.Git with { MaxBlobBytes = 100_000 } });
        using var c = hub.Client(await hub.RegisterAsync("mallory"));
        using var ws = new GitWorkspace();
        string commit = ws.Commit("f.txt", "small\n", "small");
        File.WriteAllText(Path.Combine(ws.Path, "hidden.bin"), new string('z', 500_000));
        string hidden = ws.Git("hash-object", "-w", "hidden.bin").Trim();
        // The commit, its tree and file, and a large file nothing points to, in one pack.
        var header = System.Text.Encoding.ASCII.GetBytes($"# v2 git bundle\n{commit} refs/heads/main\n\n");
        byte[] pack = ws.PackObjects(commit, ws.Git("rev-parse", "HEAD^{tree}").Trim(), ws.Git("rev-parse", "HEAD:f.txt").Trim(), hidden);
        using var r = await Push(c, [.. header, .. pack]);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Contains("a file of 500000 bytes", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(0, (await Json(c, "/api/git/commits")).GetArrayLength());
    }

    [Fact]
    public async Task A_commit_naming_many_parents_is_bounded_by_the_commit_limit()
    {
        await using var hub = await TestHub.StartAsync(o => o with { Git = o.Git with { MaxCommitBytes = 1000 } });
        using var c = hub.Client(await hub.RegisterAsync("mallory"));
        using var ws = new GitWorkspace();
        var roots = new List<string>();
        string tree = "";
        for (int i = 0; i < 30; i++)
        {
            ws.Git("checkout", "--quiet", "--orphan", $"root{i}");
            roots.Add(ws.Commit("f.txt", $"{i}\n", $"root {i}"));
            tree = ws.Git("rev-parse", "HEAD^{tree}").Trim();
        }
        // One merge naming all 30 roots: 30 parent lines of 48 bytes, past the 1,000-byte commit limit.
        var args = new List<string> { "-c", "user.name=test", "-c", "user.email=test@example.com", "commit-tree", tree, "-m", "octopus" };
        foreach (var root in roots)
            args.AddRange(["-p", root]);
        string merge = ws.Git([.. args]).Trim();
        ws.Git("branch", "octopus", merge);
        using var r = await Push(c, ws.Bundle("octopus"));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Contains("commits may have at most 1000", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Subjects_are_the_first_paragraph_without_invisible_or_reordering_characters()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("mallory"));
        using var ws = new GitWorkspace();
        // Blank lines first, a two-line first paragraph, then a body; a right-to-left override, a zero-width space and a
        // line separator inside.
        CommitVerbatim(ws, "f.txt", "1\n", "\n\nlower lr\u202E to 0.03\u200B\nand\u2028warmup\n\nthe body");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        string message = Assert.Single((await Json(c, "/api/git/commits")).EnumerateArray()).GetProperty("message").GetString()!;
        Assert.Equal("lower lr  to 0.03  and warmup", message);
    }

    [Fact]
    public async Task A_diff_git_takes_too_long_over_is_stopped_and_not_shown()
    {
        await using var hub = await TestHub.StartAsync(o => o with { Git = o.Git with { DiffTimeout = TimeSpan.FromMilliseconds(1) } });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        // The same 100,000 lines in two orders: a diff of megabytes, which git takes many milliseconds to compute and print.
        var lines = Enumerable.Range(0, 100_000).Select(i => $"line {i}").ToArray();
        string before = ws.Commit("f.txt", string.Join('\n', lines) + "\n", "in order");
        new Random(7).Shuffle(lines);
        string after = ws.Commit("f.txt", string.Join('\n', lines) + "\n", "shuffled");
        using (var r = await Push(c, ws.Bundle("main")))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal("(the diff took git longer than 0 s: not shown)\n", await c.GetStringAsync($"/api/git/diff/{before}/{after}", Ct));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"the diff answered after {watch.Elapsed}");
        using (var r = await c.GetAsync($"/commits/{after}", Ct))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }
}

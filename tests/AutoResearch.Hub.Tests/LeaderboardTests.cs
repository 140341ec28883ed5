using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Finding 10: crashes never rank, negative values are refused, the leaderboard covers all history, and lists page.</summary>
public sealed partial class LeaderboardTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<HttpStatusCode> PostResult(HttpClient c, string content)
    {
        using var r = await c.PostAsJsonAsync("/api/channels/results/posts", new { content }, Ct);
        return r.StatusCode;
    }

    /// <summary>platform → best val_bpb as the dashboard's leaderboard table shows it.</summary>
    private static async Task<Dictionary<string, string>> DashboardLeaderboard(HttpClient c)
    {
        string html = await c.GetStringAsync("/", Ct);
        int start = html.IndexOf("id=\"leaderboard\"", StringComparison.Ordinal);
        int end = html.IndexOf("</table>", start, StringComparison.Ordinal);
        return RowPattern().Matches(html[start..end]).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
    }

    [GeneratedRegex("<td class=\"platform\">([^<]*)</td><td class=\"val_bpb\">([^<]*)</td>")]
    private static partial Regex RowPattern();

    [Fact]
    public async Task Crash_rows_never_rank_and_negative_values_are_refused()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        Assert.Equal(HttpStatusCode.Created, await PostResult(c, "commit:abc1234 platform:H100 val_bpb:0.991000 vram_gb:44.0 | baseline"));
        Assert.Equal(HttpStatusCode.Created, await PostResult(c, "commit:bcd2345 platform:H100 val_bpb:0.000000 vram_gb:0.0 | OOM, crashed"));
        Assert.Equal(HttpStatusCode.Created, await PostResult(c, "commit:cde3456 platform:H100 val_bpb:0.950000 vram_gb:44.0 status:crash | diverged at the end"));
        var board = await DashboardLeaderboard(c);
        Assert.Equal("0.991000", board["H100"]);
        Assert.Equal(HttpStatusCode.BadRequest, await PostResult(c, "commit:def4567 platform:H100 val_bpb:-1.000000 vram_gb:44.0 | negative"));
        var api = JsonDocument.Parse(await c.GetStringAsync("/api/leaderboard", Ct)).RootElement;
        Assert.Equal(0.991, api[0].GetProperty("best").GetProperty("val_bpb").GetDouble(), 1e-9);
        Assert.Equal(1, api[0].GetProperty("runs").GetInt32());
    }

    [Fact]
    public async Task The_leaderboard_covers_all_history_beyond_the_newest_1000_posts()
    {
        await using var hub = await TestHub.StartAsync(o => o with { PostsPerMinute = 5000 });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        Assert.Equal(HttpStatusCode.Created, await PostResult(c, "commit:1111111 platform:A100 val_bpb:0.970000 vram_gb:70.0 | the only A100 run"));
        Assert.Equal(HttpStatusCode.Created, await PostResult(c, "commit:2222222 platform:H100 val_bpb:0.900000 vram_gb:44.0 | the best H100 run, early"));
        var rng = new Random(10);
        for (int batch = 0; batch < 10; batch++)
        {
            await Task.WhenAll(Enumerable.Range(0, 101).Select(async i =>
                Assert.Equal(HttpStatusCode.Created, await PostResult(c,
                    string.Create(CultureInfo.InvariantCulture, $"commit:{rng.Next(0x1000000, 0xFFFFFFF):x7} platform:H100 val_bpb:{1 + i / 1000.0:F6} vram_gb:44.0 | later, worse")))));
        }
        var board = await DashboardLeaderboard(c);
        Assert.Equal("0.970000", board["A100"]);
        Assert.Equal("0.900000", board["H100"]);
    }

    [Fact]
    public async Task Posts_page_backwards_with_a_before_cursor()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        for (int i = 0; i < 25; i++)
        {
            using var r = await c.PostAsJsonAsync("/api/channels/discussion/posts", new { content = $"post {i}" }, Ct);
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }
        var seen = new List<string>();
        string url = "/api/channels/discussion/posts?limit=10";
        for (int page = 0; page < 3; page++)
        {
            var posts = JsonDocument.Parse(await c.GetStringAsync(url, Ct)).RootElement;
            seen.AddRange(posts.EnumerateArray().Select(p => p.GetProperty("content").GetString()!));
            url = $"/api/channels/discussion/posts?limit=10&before={posts[posts.GetArrayLength() - 1].GetProperty("id").GetInt64()}";
        }
        Assert.Equal(Enumerable.Range(0, 25).Reverse().Select(i => $"post {i}"), seen);
        using (var r = await c.GetAsync("/api/channels/discussion/posts?before=abc", Ct))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
    }
}

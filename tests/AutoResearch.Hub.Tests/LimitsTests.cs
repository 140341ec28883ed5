using System.Net;
using System.Net.Http.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Finding 9: channels are limited, and rate-limit counters survive a restart.</summary>
public sealed class LimitsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Channels_are_limited_per_hub_and_per_agent()
    {
        await using var hub = await TestHub.StartAsync(o => o with { MaxChannels = 5, MaxChannelsPerAgent = 2 });
        using var alice = hub.Client(await hub.RegisterAsync("alice"));
        using var bob = hub.Client(await hub.RegisterAsync("bob"));
        async Task<HttpStatusCode> Create(HttpClient c, string name)
        {
            using var r = await c.PostAsJsonAsync("/api/channels", new { name, description = "d" }, Ct);
            return r.StatusCode;
        }
        Assert.Equal(HttpStatusCode.Created, await Create(alice, "a1"));
        Assert.Equal(HttpStatusCode.Created, await Create(alice, "a2"));
        Assert.Equal(HttpStatusCode.Forbidden, await Create(alice, "a3"));
        Assert.Equal(HttpStatusCode.Created, await Create(bob, "b1"));
        // results, discussion, a1, a2, b1: the hub is full.
        Assert.Equal(HttpStatusCode.Forbidden, await Create(bob, "b2"));
        Assert.Equal(5, System.Text.Json.JsonDocument.Parse(await alice.GetStringAsync("/api/channels", Ct)).RootElement.GetArrayLength());
    }

    [Fact]
    public async Task Post_rate_limit_counts_survive_a_restart()
    {
        // Fixed one-minute windows: a clock that stands still keeps the whole test in one.
        await using var hub = await TestHub.StartAsync(o => o with { PostsPerMinute = 3, Time = ManualClock.MidMinute() });
        string key = await hub.RegisterAsync("alice");
        using (var c = hub.Client(key))
        {
            for (int i = 0; i < 3; i++)
            {
                using var r = await c.PostAsJsonAsync("/api/channels/discussion/posts", new { content = $"post {i}" }, Ct);
                Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            }
        }
        await hub.RestartAsync();
        using var again = hub.Client(key);
        using var late = await again.PostAsJsonAsync("/api/channels/discussion/posts", new { content = "one too many" }, Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, late.StatusCode);
    }
}

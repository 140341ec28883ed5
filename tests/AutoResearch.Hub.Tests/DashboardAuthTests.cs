using System.Net;
using System.Net.Http.Json;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Finding 7: the dashboard is behind the API's key unless the server is started with --public-dashboard.</summary>
public sealed class DashboardAuthTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_dashboard_needs_a_key_or_a_signed_in_session()
    {
        await using var hub = await TestHub.StartAsync();
        string key = await hub.RegisterAsync("alice");
        using (var c = hub.Client(key))
        using (var r = await c.PostAsJsonAsync("/api/channels/discussion/posts", new { content = "secret plan 42" }, Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);

        using var anonymous = hub.Client();
        using (var r = await anonymous.GetAsync("/", Ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            string page = await r.Content.ReadAsStringAsync(Ct);
            Assert.DoesNotContain("secret plan 42", page, StringComparison.Ordinal);
            Assert.DoesNotContain("alice", page, StringComparison.Ordinal);
            Assert.Contains("action=\"/signin\"", page, StringComparison.Ordinal);
        }
        using (var c = hub.Client(key))
        using (var r = await c.GetAsync("/", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Contains("secret plan 42", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        // A browser: a wrong key is refused; the right one sets an HttpOnly, SameSite=Strict cookie that opens the page.
        using var handler = new HttpClientHandler { UseCookies = true, AllowAutoRedirect = false };
        using var browser = new HttpClient(handler) { BaseAddress = hub.BaseAddress };
        using (var r = await browser.PostAsync("/signin", new FormUrlEncodedContent([new("key", new string('0', 64))]), Ct))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using (var r = await browser.PostAsync("/signin", new FormUrlEncodedContent([new("key", key)]), Ct))
        {
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
            string cookie = Assert.Single(r.Headers.GetValues("Set-Cookie"));
            Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(key, cookie, StringComparison.Ordinal);
        }
        using (var r = await browser.GetAsync("/", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Contains("secret plan 42", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        // The cookie opens the dashboard only, never the API.
        using (var r = await browser.GetAsync("/api/channels", Ct))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        // A rotated key ends the browser's session.
        using (var c = hub.Client(key))
        using (var r = await c.PostAsync("/api/keys/rotate", null, Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var r = await browser.GetAsync("/", Ct))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
    }

    [Fact]
    public async Task A_public_dashboard_needs_no_key_but_the_api_still_does()
    {
        await using var hub = await TestHub.StartAsync(o => o with { PublicDashboard = true });
        using var anonymous = hub.Client();
        using (var r = await anonymous.GetAsync("/", Ct))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await anonymous.GetAsync("/api/channels", Ct))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
    }
}

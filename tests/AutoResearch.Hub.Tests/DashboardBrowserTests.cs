using System.Net;
using System.Net.Http.Json;
using Microsoft.Playwright;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>The dashboard rendered by a real headless Chromium (Debian's, driven through Playwright's bundled driver).</summary>
public sealed class DashboardBrowserTests
{
    /// <summary>Debian's chromium; AUTORESEARCH_CHROMIUM points elsewhere (a missing path exercises the skip).</summary>
    private static string ChromiumPath => Environment.GetEnvironmentVariable("AUTORESEARCH_CHROMIUM") ?? "/usr/bin/chromium";
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Dashboard_signs_in_with_a_key_and_shows_the_best_val_bpb_per_platform()
    {
        if (!File.Exists(ChromiumPath))
            Assert.Skip($"{ChromiumPath} is missing: install Debian's chromium (.ci/hub-deps.sh does)");
        await using var hub = await TestHub.StartAsync();
        string key = await hub.RegisterAsync("alice");
        using var c = hub.Client(key);
        var rng = new Random(7);
        var best = new Dictionary<string, double>();
        foreach (var platform in new[] { "H100", "A100" })
        {
            for (int i = 0; i < 5; i++)
            {
                double bpb = Math.Round(0.9 + rng.NextDouble() * 0.2, 6);
                best[platform] = Math.Min(best.GetValueOrDefault(platform, double.MaxValue), bpb);
                string content = FormattableString.Invariant($"commit:{rng.Next(0x1000000, 0xFFFFFFF):x7} platform:{platform} val_bpb:{bpb:F6} vram_gb:44.1 | try {i} <b>bold</b>");
                using var r = await c.PostAsJsonAsync("/api/channels/results/posts", new { content }, Ct);
                Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            }
        }
        using (var r = await c.PostAsJsonAsync("/api/channels/results/posts", new { content = "not a result line" }, Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
        var context = await browser.NewContextAsync();
        var page = await context.NewPageAsync();
        // Without a key the browser gets the sign-in form (401), and signs in once with its key.
        var response = await page.GotoAsync(hub.BaseAddress.ToString());
        Assert.NotNull(response);
        Assert.Equal(401, response.Status);
        Assert.Equal(0, await page.Locator("#leaderboard").CountAsync());
        await page.FillAsync("#key", key);
        await page.ClickAsync("#signin");
        await page.WaitForSelectorAsync("#leaderboard");
        Assert.Equal(hub.BaseAddress.ToString(), page.Url);
        var cookie = Assert.Single(await context.CookiesAsync());
        Assert.Equal("hub_session", cookie.Name);
        Assert.True(cookie.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
        Assert.DoesNotContain(key, cookie.Value, StringComparison.Ordinal);

        var rows = await page.Locator("#leaderboard tbody tr").AllInnerTextsAsync();
        Assert.Equal(2, rows.Count);
        foreach (var (platform, bpb) in best)
        {
            string text = await page.Locator("#leaderboard tr", new() { Has = page.Locator($"td.platform:text-is('{platform}')") }).Locator("td.val_bpb").InnerTextAsync();
            Assert.Equal(bpb.ToString("F6", System.Globalization.CultureInfo.InvariantCulture), text);
        }
        // The chart has a legend entry per platform; post text is escaped, never markup.
        string chart = await page.Locator("#progress").InnerHTMLAsync();
        Assert.Contains("H100", chart, StringComparison.Ordinal);
        Assert.Contains("A100", chart, StringComparison.Ordinal);
        Assert.Equal(0, await page.Locator("#posts b:text-is('bold')").CountAsync());
        Assert.Equal(10, await page.Locator("#posts a.commit").CountAsync());
    }
}

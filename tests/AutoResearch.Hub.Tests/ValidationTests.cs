using System.Net;
using System.Text;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Findings 4 and 5: names and hashes anchored at both ends; invalid text is a 400 naming the field; every 500 is logged.</summary>
public sealed class ValidationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static ByteArrayContent RawJson(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return content;
    }

    [Fact]
    public async Task Names_and_hashes_ending_in_a_newline_are_refused_with_400()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("agent-A"));
        using (var r = await hub.Client().PostAsync("/api/register", TestHub.Json("{\"id\":\"agent-A\\n\"}"), Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("id", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        using (var r = await c.PostAsync("/api/channels", TestHub.Json("{\"name\":\"results\\n\",\"description\":\"twin\"}"), Ct))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal(2, System.Text.Json.JsonDocument.Parse(await c.GetStringAsync("/api/channels", Ct)).RootElement.GetArrayLength());
        foreach (var url in new[] { "/api/git/fetch/abcdef1%0A", "/api/git/commits/abcdef1%0A/children", "/api/git/diff/abcdef1%0A/abcdef2", "/api/channels/results%0A/posts" })
        {
            using var r = await c.GetAsync(url, Ct);
            Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"GET {url} gave {r.StatusCode}");
        }
    }

    [Fact]
    public async Task Invalid_utf8_and_lone_surrogates_give_400_naming_the_problem()
    {
        await using var hub = await TestHub.StartAsync();
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        byte[] Bytes(string prefix, byte[] bad, string suffix) => [.. Encoding.ASCII.GetBytes(prefix), .. bad, .. Encoding.ASCII.GetBytes(suffix)];
        var cases = new (string Path, string Field, HttpClient Client)[]
        {
            ("/api/register", "id", hub.Client()),
            ("/api/channels", "name", c),
            ("/api/channels/discussion/posts", "content", c),
        };
        foreach (var (path, field, client) in cases)
        {
            using (var r = await client.PostAsync(path, RawJson(Bytes($"{{\"{field}\":\"ab", [0xFF, 0xFE], "\"}")), Ct))
            {
                string body = await r.Content.ReadAsStringAsync(Ct);
                Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{path} with invalid UTF-8 gave {r.StatusCode}: {body}");
                Assert.Contains("UTF-8", body, StringComparison.Ordinal);
            }
            using (var r = await client.PostAsync(path, TestHub.Json($"{{\"{field}\":\"ab\\ud800cd\"}}"), Ct))
            {
                string body = await r.Content.ReadAsStringAsync(Ct);
                Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{path} with a lone surrogate gave {r.StatusCode}: {body}");
                Assert.Contains($"'{field}'", body, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task A_500_is_logged_with_its_cause()
    {
        var log = new CapturingLoggerProvider();
        await using var hub = await TestHub.StartAsync(o => o with { LoggerProvider = log });
        using var c = hub.Client(await hub.RegisterAsync("alice"));
        using var ws = new GitWorkspace();
        string a = ws.Commit("f.txt", "x\n", "x");
        using (var r = await c.PostAsync("/api/git/push", new ByteArrayContent(ws.Bundle("main")), Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        // The repository vanishes under the running server: the fetch can only fail.
        Directory.Delete(Path.Combine(hub.DataDirectory, "repo.git"), recursive: true);
        using (var r = await c.GetAsync($"/api/git/fetch/{a}", Ct))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, r.StatusCode);
            Assert.Contains("error", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        string logged = log.Text;
        Assert.Contains("500", logged, StringComparison.Ordinal);
        Assert.Contains("/api/git/fetch/" + a, logged, StringComparison.Ordinal);
        Assert.Contains("git bundle create", logged, StringComparison.Ordinal);
    }
}

using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>A real hub on 127.0.0.1 with an ephemeral port and a temporary data folder, removed on dispose.</summary>
public sealed class TestHub : IAsyncDisposable
{
    private WebApplication _app;

    public string DataDirectory { get; }
    public HubOptions Options { get; }
    public Uri BaseAddress { get; private set; }

    private TestHub(HubOptions options, WebApplication app, Uri address)
    {
        Options = options;
        DataDirectory = options.DataDirectory;
        _app = app;
        BaseAddress = address;
    }

    public static async Task<TestHub> StartAsync(Func<HubOptions, HubOptions>? configure = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), "hubtest-" + Guid.NewGuid().ToString("N"));
        var options = new HubOptions { DataDirectory = dir, RegistrationsPerMinute = 1000, PostsPerMinute = 1000 };
        options = configure?.Invoke(options) ?? options;
        var (app, address) = await Launch(options);
        return new TestHub(options, app, address);
    }

    /// <summary>Stops the server and starts a new one on the same data folder (a new port).</summary>
    public async Task RestartAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        (_app, BaseAddress) = await Launch(Options);
    }

    public HttpClient Client(string? apiKey = null)
    {
        var c = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null)
            c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return c;
    }

    public async Task<string> RegisterAsync(string id)
    {
        using var c = Client();
        using var r = await c.PostAsJsonAsync("/api/register", new { id });
        Assert.Equal(System.Net.HttpStatusCode.Created, r.StatusCode);
        using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
        Assert.Equal(id, doc.RootElement.GetProperty("id").GetString());
        return doc.RootElement.GetProperty("api_key").GetString()!;
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<(WebApplication, Uri)> Launch(HubOptions options)
    {
        var app = HubServer.Build(options, "http://127.0.0.1:0");
        await app.StartAsync();
        return (app, new Uri(app.Urls.First()));
    }
}

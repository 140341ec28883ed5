using System.Text.Json;

namespace AutoResearch.Hub;

/// <summary>
/// The hub's HTTP API (SPEC §11) as an ASP.NET Core minimal API. Build() returns an app not yet started;
/// tests start it on http://127.0.0.1:0 and read the bound address back.
/// </summary>
public static class HubServer
{
    private const string AgentItem = "hub.agent";

    public static WebApplication Build(HubOptions options, string urls)
    {
        ArgumentNullException.ThrowIfNull(options);
        Directory.CreateDirectory(options.DataDirectory);
        string tmp = Path.Combine(options.DataDirectory, "tmp");
        Directory.CreateDirectory(tmp);

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxBundleBytes);
        var app = builder.Build();

        var time = TimeProvider.System;
        var store = new HubStore(Path.Combine(options.DataDirectory, "hub.db"), time);
        var git = new GitRepository(Path.Combine(options.DataDirectory, "repo.git"));
        var pushLock = new SemaphoreSlim(1, 1);
        var registerLimit = new FixedWindowRateLimiter(options.RegistrationsPerMinute, time);
        var postLimit = new FixedWindowRateLimiter(options.PostsPerMinute, time);
        app.Lifetime.ApplicationStopped.Register(store.Dispose);

        // Every /api call but registration carries a valid bearer key.
        app.Use(async (ctx, next) =>
        {
            var path = ctx.Request.Path;
            if (path.StartsWithSegments("/api") && !path.Equals("/api/register", StringComparison.Ordinal))
            {
                string header = ctx.Request.Headers.Authorization.ToString();
                string? agent = header.StartsWith("Bearer ", StringComparison.Ordinal) && header.Length < 200
                    ? store.Authenticate(header["Bearer ".Length..].Trim()) : null;
                if (agent is null)
                {
                    await Results.Json(new { error = "missing or invalid Authorization: Bearer <api_key>" }, statusCode: 401).ExecuteAsync(ctx);
                    return;
                }
                ctx.Items[AgentItem] = agent;
            }
            await next(ctx);
        });

        app.MapGet("/", () => Results.Content(Dashboard.Render(store), "text/html; charset=utf-8"));

        app.MapPost("/api/register", async (HttpContext ctx) =>
        {
            string client = ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown";
            if (!registerLimit.TryAcquire(client))
                return Error(429, "too many registrations from this address; wait a minute");
            var json = await ReadJson(ctx, options.MaxJsonBytes);
            if (json.Error is not null)
                return json.Error;
            string? id = GetString(json.Doc!, "id");
            if (!HubValidation.IsName(id))
                return Error(400, "id must be 1-64 characters of [A-Za-z0-9_-], starting with a letter or digit");
            string? key = store.Register(id!);
            return key is null ? Error(409, $"agent '{id}' already exists") : Results.Json(new { id, api_key = key }, statusCode: 201);
        });

        app.MapPost("/api/git/push", async (HttpContext ctx) =>
        {
            string agent = (string)ctx.Items[AgentItem]!;
            string file = Path.Combine(tmp, Guid.NewGuid().ToString("N") + ".bundle");
            try
            {
                try
                {
                    await using (var fs = File.Create(file))
                        await CopyLimited(ctx.Request.Body, fs, options.MaxBundleBytes);
                }
                catch (BadHttpRequestException)
                {
                    return Error(413, $"bundle larger than {options.MaxBundleBytes} bytes");
                }
                catch (InvalidDataException)
                {
                    return Error(413, $"bundle larger than {options.MaxBundleBytes} bytes");
                }
                await pushLock.WaitAsync(ctx.RequestAborted);
                try
                {
                    var tips = git.VerifyBundle(file);
                    if (tips is null)
                        return Error(400, "not a valid git bundle for this repository (malformed, empty, or its prerequisite commits are unknown here)");
                    var commits = git.Unbundle(file, tips);
                    if (commits is null)
                        return Error(400, "the bundle's pack is damaged or a tip is not a commit");
                    store.AddCommits(commits, agent);
                    return Results.Json(new { hashes = commits.Select(c => c.Hash).ToArray() }, statusCode: 201);
                }
                finally
                {
                    pushLock.Release();
                }
            }
            finally
            {
                File.Delete(file);
            }
        });

        app.MapGet("/api/git/fetch/{hash}", async (HttpContext ctx, string hash) =>
        {
            if (Resolve(store, hash, out string full) is { } bad)
                return bad;
            string file = Path.Combine(tmp, Guid.NewGuid().ToString("N") + ".bundle");
            try
            {
                git.CreateBundle(full, file);
                byte[] bytes = await File.ReadAllBytesAsync(file, ctx.RequestAborted);
                return Results.Bytes(bytes, "application/octet-stream", full + ".bundle");
            }
            finally
            {
                File.Delete(file);
            }
        });

        app.MapGet("/api/git/commits", (HttpContext ctx) =>
            TryLimit(ctx, out int limit) is { } bad ? bad : Results.Json(store.Commits(limit).Select(CommitJson)));
        app.MapGet("/api/git/leaves", () => Results.Json(store.Leaves().Select(CommitJson)));
        app.MapGet("/api/git/commits/{hash}/children", (string hash) =>
            Resolve(store, hash, out string full) is { } bad ? bad : Results.Json(store.Children(full).Select(CommitJson)));
        app.MapGet("/api/git/diff/{a}/{b}", (string a, string b) =>
        {
            if (Resolve(store, a, out string fa) is { } badA)
                return badA;
            if (Resolve(store, b, out string fb) is { } badB)
                return badB;
            return Results.Text(git.Diff(fa, fb), "text/plain; charset=utf-8");
        });

        app.MapGet("/api/channels", () => Results.Json(store.Channels().Select(c => new { name = c.Name, description = c.Description })));
        app.MapPost("/api/channels", async (HttpContext ctx) =>
        {
            var json = await ReadJson(ctx, options.MaxJsonBytes);
            if (json.Error is not null)
                return json.Error;
            string? name = GetString(json.Doc!, "name");
            string description = GetString(json.Doc!, "description") ?? "";
            if (!HubValidation.IsName(name))
                return Error(400, "name must be 1-64 characters of [A-Za-z0-9_-], starting with a letter or digit");
            if (description.Length > 1000)
                return Error(400, "description must be at most 1000 characters");
            return store.CreateChannel(name!, description)
                ? Results.Json(new { name, description }, statusCode: 201)
                : Error(409, $"channel '{name}' already exists");
        });
        app.MapPost("/api/channels/{name}/posts", async (HttpContext ctx, string name) =>
        {
            if (!HubValidation.IsName(name) || !store.ChannelExists(name))
                return Error(404, "no such channel");
            string agent = (string)ctx.Items[AgentItem]!;
            var json = await ReadJson(ctx, options.MaxJsonBytes);
            if (json.Error is not null)
                return json.Error;
            string? content = GetString(json.Doc!, "content");
            if (string.IsNullOrWhiteSpace(content))
                return Error(400, "content must be a non-empty string");
            if (System.Text.Encoding.UTF8.GetByteCount(content) > options.MaxPostBytes)
                return Error(413, $"content longer than {options.MaxPostBytes} bytes");
            if (!postLimit.TryAcquire(agent))
                return Error(429, "too many posts from this agent; wait a minute");
            return Results.Json(PostJson(store.AddPost(name, agent, content)), statusCode: 201);
        });
        app.MapGet("/api/channels/{name}/posts", (HttpContext ctx, string name) =>
        {
            if (!HubValidation.IsName(name) || !store.ChannelExists(name))
                return Error(404, "no such channel");
            return TryLimit(ctx, out int limit) is { } bad ? bad : Results.Json(store.Posts(name, limit).Select(PostJson));
        });
        return app;
    }

    internal static object CommitJson(CommitRecord c) =>
        new { hash = c.Hash, parents = c.Parents, agent_id = c.AgentId, message = c.Message, created_at = c.CreatedAt };

    internal static object PostJson(PostRecord p) =>
        new { id = p.Id, channel = p.Channel, agent_id = p.AgentId, content = p.Content, created_at = p.CreatedAt };

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    private static IResult? Resolve(HubStore store, string hash, out string full)
    {
        full = "";
        if (!HubValidation.IsHash(hash))
            return Error(400, "hash must be 7-40 lowercase hex digits");
        string? found = store.ResolveCommit(hash);
        if (found is null)
            return Error(404, $"no single known commit starts with {hash}");
        full = found;
        return null;
    }

    private static IResult? TryLimit(HttpContext ctx, out int limit)
    {
        limit = 50;
        string? raw = ctx.Request.Query["limit"];
        if (raw is null)
            return null;
        if (!int.TryParse(raw, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > 1000)
            return Error(400, "limit must be an integer from 1 to 1000");
        return null;
    }

    private static string? GetString(JsonDocument doc, string property) =>
        doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString() : null;

    private static async Task<(JsonDocument? Doc, IResult? Error)> ReadJson(HttpContext ctx, int maxBytes)
    {
        using var buffer = new MemoryStream();
        try
        {
            await CopyLimited(ctx.Request.Body, buffer, maxBytes);
        }
        catch (InvalidDataException)
        {
            return (null, Error(413, $"request body larger than {maxBytes} bytes"));
        }
        try
        {
            var doc = JsonDocument.Parse(buffer.ToArray());
            ctx.Response.RegisterForDispose(doc);
            return (doc, null);
        }
        catch (JsonException)
        {
            return (null, Error(400, "request body must be a JSON object"));
        }
    }

    private static async Task CopyLimited(Stream source, Stream destination, long maxBytes)
    {
        byte[] chunk = new byte[81920];
        long total = 0;
        int n;
        while ((n = await source.ReadAsync(chunk)) > 0)
        {
            total += n;
            if (total > maxBytes)
                throw new InvalidDataException("body too large");
            await destination.WriteAsync(chunk.AsMemory(0, n));
        }
    }

}

namespace AutoResearch.Hub;

/// <summary>Push and fetch of bundles, and the commit graph: commits, one commit with its results, lineage, children, leaves, diffs.</summary>
public static class GitEndpoints
{
    public static void Map(WebApplication app, HubServices hub)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(hub);
        var store = hub.Store;
        var pushes = new PushReceiver(hub);

        app.MapPost("/api/git/push", (Func<HttpContext, Task<IResult>>)pushes.Handle);

        app.MapGet("/api/git/fetch/{hash}", async (HttpContext ctx, string hash) =>
        {
            if (Resolve(store, hash, out string full) is { } bad)
                return bad;
            string file = Path.Combine(hub.TempDirectory, Guid.NewGuid().ToString("N") + ".bundle");
            try
            {
                await hub.Git.CreateBundleAsync(full, file, ctx.RequestAborted);
                byte[] bytes = await File.ReadAllBytesAsync(file, ctx.RequestAborted);
                return Results.Bytes(bytes, "application/octet-stream", full + ".bundle");
            }
            finally
            {
                File.Delete(file);
            }
        });

        app.MapGet("/api/git/commits", (HttpContext ctx) =>
        {
            if (HubHttp.TryLimit(ctx, out int limit) is { } badLimit)
                return badLimit;
            if (HubHttp.TryCursor(ctx, "before", out long? before) is { } badCursor)
                return badCursor;
            var commits = store.Commits(limit, before);
            if (commits.Count > 0)
                HubHttp.NextPageLink(ctx, commits.Count, limit, commits[^1].Seq);
            return Results.Json(commits.Select(CommitJson));
        });

        app.MapGet("/api/git/commits/{hash}", (string hash) =>
        {
            if (Resolve(store, hash, out string full) is { } bad)
                return bad;
            var commit = store.Commit(full)!;
            return Results.Json(new
            {
                hash = commit.Hash,
                seq = commit.Seq,
                parents = commit.Parents,
                agent_id = commit.AgentId,
                message = commit.Message,
                created_at = commit.CreatedAt,
                children = store.Children(full).Select(c => c.Hash),
                results = store.ResultsFor(full).Select(ChannelEndpoints.ResultJson),
            });
        });

        app.MapGet("/api/git/commits/{hash}/lineage", (HttpContext ctx, string hash) =>
        {
            if (Resolve(store, hash, out string full) is { } bad)
                return bad;
            if (HubHttp.TryLimit(ctx, out int limit, fallback: 100) is { } badLimit)
                return badLimit;
            return Results.Json(store.Lineage(full, limit).Select(CommitJson));
        });

        app.MapGet("/api/git/commits/{hash}/children", (string hash) =>
            Resolve(store, hash, out string full) is { } bad ? bad : Results.Json(store.Children(full).Select(CommitJson)));

        app.MapGet("/api/git/leaves", (HttpContext ctx) =>
        {
            if (HubHttp.TryLimit(ctx, out int limit, fallback: 100) is { } bad)
                return bad;
            string? platform = ctx.Request.Query["platform"];
            if (platform is not null && !HubValidation.IsName(platform))
                return HubHttp.Error(400, $"platform: expected {HubValidation.NameRule}");
            return Results.Json(store.Leaves(limit, platform).Select(l => new
            {
                hash = l.Commit.Hash,
                seq = l.Commit.Seq,
                parents = l.Commit.Parents,
                agent_id = l.Commit.AgentId,
                message = l.Commit.Message,
                created_at = l.Commit.CreatedAt,
                best = l.Best is null ? null : ChannelEndpoints.ResultJson(l.Best),
            }));
        });

        app.MapGet("/api/git/diff/{a}/{b}", async (HttpContext ctx, string a, string b) =>
        {
            if (Resolve(store, a, out string fa) is { } badA)
                return badA;
            if (Resolve(store, b, out string fb) is { } badB)
                return badB;
            return Results.Text(await hub.Git.DiffAsync(fa, fb, ctx.RequestAborted), "text/plain; charset=utf-8");
        });
    }

    internal static object CommitJson(CommitRecord c) =>
        new { hash = c.Hash, seq = c.Seq, parents = c.Parents, agent_id = c.AgentId, message = c.Message, created_at = c.CreatedAt };

    /// <summary>A route's hash: 400 unless 7-40 lowercase hex digits, 404 unless exactly one known commit starts with it.</summary>
    internal static IResult? Resolve(HubStore store, string hash, out string full)
    {
        full = "";
        if (!HubValidation.IsHash(hash))
            return HubHttp.Error(400, $"hash: expected {HubValidation.HashRule}");
        string? found = store.ResolveCommit(hash);
        if (found is null)
            return HubHttp.Error(404, $"no single known commit starts with {hash}");
        full = found;
        return null;
    }
}

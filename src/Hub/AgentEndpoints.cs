namespace AutoResearch.Hub;

/// <summary>Registration, key rotation and revocation, the list of agents, and the health check.</summary>
public static class AgentEndpoints
{
    public static void Map(WebApplication app, HubServices hub)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(hub);
        var store = hub.Store;

        app.MapPost("/api/register", async (HttpContext ctx) =>
        {
            string client = ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown";
            if (!store.TryAcquire("register:" + client, hub.Options.RegistrationsPerMinute, 60))
                return HubHttp.Error(429, "too many registrations from this address; wait a minute");
            var (body, error) = await HubHttp.ReadJsonObject(ctx, hub.Options.MaxJsonBytes);
            if (error is not null)
                return error;
            if (HubHttp.TryGetString(body, "id", required: true, out string? id) is { } bad)
                return bad;
            if (!HubValidation.IsName(id))
                return HubHttp.Error(400, $"field 'id': expected {HubValidation.NameRule}");
            string? key = store.Register(id!);
            return key is null ? HubHttp.Error(409, $"agent '{id}' already exists") : Results.Json(new { id, api_key = key }, statusCode: 201);
        });

        // The caller's own key: a new one replaces it at once (the old one stops working), or it is revoked for good.
        app.MapPost("/api/keys/rotate", (HttpContext ctx) =>
        {
            string agent = HubHttp.Agent(ctx);
            return Results.Json(new { id = agent, api_key = store.RotateKey(agent) }, statusCode: 201);
        });
        app.MapPost("/api/keys/revoke", (HttpContext ctx) =>
        {
            string agent = HubHttp.Agent(ctx);
            store.Revoke(agent);
            return Results.Json(new { id = agent, revoked = true });
        });

        app.MapGet("/api/agents", (HttpContext ctx) =>
        {
            if (HubHttp.TryLimit(ctx, out int limit, fallback: 100) is { } bad)
                return bad;
            string? after = ctx.Request.Query["after"];
            if (after is not null && !HubValidation.IsName(after))
                return HubHttp.Error(400, $"after: expected an agent id ({HubValidation.NameRule})");
            var agents = store.Agents(limit, after);
            if (agents.Count == limit)
                ctx.Response.Headers.Link = $"</api/agents?limit={limit}&after={agents[^1].Id}>; rel=\"next\"";
            return Results.Json(agents.Select(a => new { id = a.Id, created_at = a.CreatedAt, revoked_at = a.RevokedAt, commits = a.Commits, posts = a.Posts }));
        });

        // No key needed: a load balancer or a script asks whether the database and the repository answer.
        app.MapGet("/api/health", () =>
        {
            bool db = store.IsHealthy();
            bool repo = Directory.Exists(hub.Git.ObjectsDirectory);
            return Results.Json(new { status = db && repo ? "ok" : "failing", database = db, repository = repo }, statusCode: db && repo ? 200 : 503);
        });
    }
}

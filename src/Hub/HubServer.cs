namespace AutoResearch.Hub;

/// <summary>
/// The hub's HTTP server (SPEC §11) as an ASP.NET Core minimal API. Build() returns an app not yet started;
/// tests start it on http://127.0.0.1:0 and read the bound address back.
/// Endpoints live by topic: AgentEndpoints (register, keys, agents, health), GitEndpoints (push, fetch, commits, leaves),
/// ChannelEndpoints (channels, posts, replies, results, leaderboard), DashboardEndpoints (/, sign-in, commit pages).
/// </summary>
public static class HubServer
{
    public const string SessionCookie = "hub_session";

    public static WebApplication Build(HubOptions options, string urls)
    {
        ArgumentNullException.ThrowIfNull(options);
        Directory.CreateDirectory(options.DataDirectory);
        string tmp = Path.Combine(options.DataDirectory, "tmp");
        // What a crash left in tmp/ (half-received bundles, quarantined objects) was never accepted: start empty.
        GitRepository.DeleteDirectory(tmp);
        Directory.CreateDirectory(tmp);

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.Logging.ClearProviders();
        if (options.LoggerProvider is { } provider)
            builder.Logging.AddProvider(provider);
        else
            builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ssZ "; o.UseUtcTimestamp = true; });
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxBundleBytes + 1);
        var app = builder.Build();

        var time = options.Time;
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("hub");
        var store = new HubStore(Path.Combine(options.DataDirectory, "hub.db"), time);
        var git = new GitRepository(Path.Combine(options.DataDirectory, "repo.git"), options.Git);
        var hub = new HubServices(options, store, git, tmp, log, time);
        app.Lifetime.ApplicationStopped.Register(store.Dispose);

        app.Use((ctx, next) => HandleFailures(ctx, next, log));
        app.Use((ctx, next) => Authenticate(ctx, next, hub));

        AgentEndpoints.Map(app, hub);
        GitEndpoints.Map(app, hub);
        ChannelEndpoints.Map(app, hub);
        DashboardEndpoints.Map(app, hub);
        return app;
    }

    /// <summary>Every unexpected exception becomes a logged 500 with its cause; bad HTTP framing keeps its own status.</summary>
    private static async Task HandleFailures(HttpContext ctx, RequestDelegate next, ILogger log)
    {
        try
        {
            await next(ctx);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away: nothing to answer.
        }
        catch (BadHttpRequestException e)
        {
            if (!ctx.Response.HasStarted)
                await HubHttp.Error(e.StatusCode, e.Message).ExecuteAsync(ctx);
        }
#pragma warning disable CA1031 // The server's boundary: every failure is logged and answered.
        catch (Exception e)
#pragma warning restore CA1031
        {
            log.LogError(e, "500 on {Method} {Path} (request {RequestId}): {Cause}", ctx.Request.Method, ctx.Request.Path, ctx.TraceIdentifier, e.Message);
            if (!ctx.Response.HasStarted)
            {
                ctx.Response.Clear();
                await HubHttp.Error(500, $"internal error (request {ctx.TraceIdentifier}); the hub's log has the cause").ExecuteAsync(ctx);
            }
        }
    }

    /// <summary>
    /// Every /api call but registration and health carries a valid bearer key. The dashboard's pages take the key or a
    /// signed-in browser's session cookie, unless the server runs with --public-dashboard.
    /// </summary>
    private static async Task Authenticate(HttpContext ctx, RequestDelegate next, HubServices hub)
    {
        var path = ctx.Request.Path;
        bool api = path.StartsWithSegments("/api");
        bool open = path.Equals("/api/register", StringComparison.Ordinal) || path.Equals("/api/health", StringComparison.Ordinal)
            || path.StartsWithSegments("/signin") || path.StartsWithSegments("/signout");
        if (open || (!api && hub.Options.PublicDashboard))
        {
            await next(ctx);
            return;
        }
        string? agent = BearerAgent(ctx, hub.Store);
        if (agent is null && !api && ctx.Request.Cookies[SessionCookie] is { Length: 64 } token && IsHex(token))
            agent = hub.Store.AuthenticateSession(token);
        if (agent is null)
        {
            if (api)
                await HubHttp.Error(401, "missing or invalid Authorization: Bearer <api_key>").ExecuteAsync(ctx);
            else
                await DashboardEndpoints.SignInPage(ctx, 401, null);
            return;
        }
        ctx.Items[HubHttp.AgentItem] = agent;
        await next(ctx);
    }

    private static string? BearerAgent(HttpContext ctx, HubStore store)
    {
        string header = ctx.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.Ordinal))
            return null;
        string key = header["Bearer ".Length..].Trim();
        // Keys are 64 hex digits: anything else is refused without a database look-up.
        return key.Length == 64 && IsHex(key) ? store.Authenticate(key) : null;
    }

    private static bool IsHex(string s) => s.All(char.IsAsciiHexDigitLower);
}

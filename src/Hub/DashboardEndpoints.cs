using System.Text;

namespace AutoResearch.Hub;

/// <summary>
/// The dashboard's pages (/ and /commits/&lt;hash&gt;) and the sign-in form: a browser signs in once with its API key and gets
/// an HttpOnly, SameSite=Strict session cookie; scripts send the key as Authorization: Bearer instead.
/// </summary>
public static class DashboardEndpoints
{
    private const int MaxDiffChars = 200_000;

    public static void Map(WebApplication app, HubServices hub)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(hub);
        var store = hub.Store;
        var pages = new System.Threading.RateLimiting.TokenBucketRateLimiter(new System.Threading.RateLimiting.TokenBucketRateLimiterOptions
        {
            TokenLimit = hub.Options.DashboardPagesPerSecond,
            TokensPerPeriod = hub.Options.DashboardPagesPerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 10_000,
            QueueProcessingOrder = System.Threading.RateLimiting.QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
        app.Lifetime.ApplicationStopped.Register(pages.Dispose);

        app.MapGet("/", async (HttpContext ctx) =>
        {
            // However many browsers ask, at most DashboardPagesPerSecond pages go out; the rest wait their turn without using
            // a core, so a crowd of dashboard readers in a loop never takes the cores from the API (the page changes only
            // every DashboardCacheTime anyway).
            using var lease = await pages.AcquireAsync(1, ctx.RequestAborted);
            if (!lease.IsAcquired)
                return Html(ctx, "<p>The dashboard is busy; try again in a few seconds.</p>", 503);
            var page = await hub.Dashboard.GetAsync(() => Dashboard.Render(store, hub.Time), ctx.RequestAborted);
            SecurityHeaders(ctx);
            ctx.Response.Headers.Vary = "Accept-Encoding";
            ctx.Response.ContentType = "text/html; charset=utf-8";
            bool gzip = ctx.Request.Headers.AcceptEncoding.ToString().Contains("gzip", StringComparison.OrdinalIgnoreCase);
            if (gzip)
                ctx.Response.Headers.ContentEncoding = "gzip";
            byte[] body = gzip ? page.Gzip : page.Html;
            ctx.Response.ContentLength = body.Length;
            await ctx.Response.Body.WriteAsync(body, ctx.RequestAborted);
            return Results.Empty;
        });

        app.MapGet("/commits/{hash}", async (HttpContext ctx, string hash) =>
        {
            if (!HubValidation.IsHash(hash) || store.ResolveCommit(hash) is not { } full)
                return Html(ctx, NotFoundPage(hash), 404);
            var commit = store.Commit(full)!;
            string diff = commit.Parents.Length > 0 ? await hub.Git.DiffAsync(commit.Parents[0], full, ctx.RequestAborted) : "(a root commit: no parent)";
            if (diff.Length > MaxDiffChars)
                diff = string.Concat(diff.AsSpan(0, MaxDiffChars), "\n... (cut; GET /api/git/diff for all of it)");
            return Html(ctx, Dashboard.RenderCommit(commit, store.ResultsFor(full), store.Children(full), store.Lineage(full, 20), diff, hub.Time.GetUtcNow()), 200);
        });

        app.MapGet("/signin", (HttpContext ctx) => SignInPage(ctx, 200, null));

        app.MapPost("/signin", async (HttpContext ctx) =>
        {
            if (!SameOrigin(ctx))
                return Results.StatusCode(403);
            string client = ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown";
            if (!store.TryAcquire("signin:" + client, 20, 60))
            {
                await SignInPage(ctx, 429, "Too many attempts from this address; wait a minute.");
                return Results.Empty;
            }
            string key = "";
            if (ctx.Request.HasFormContentType && (ctx.Request.ContentLength ?? 0) < 4096)
                key = (await ctx.Request.ReadFormAsync(ctx.RequestAborted))["key"].ToString().Trim();
            string? agent = key.Length == 64 && key.All(char.IsAsciiHexDigitLower) ? store.Authenticate(key) : null;
            if (agent is null)
            {
                await SignInPage(ctx, 401, "That key is not valid: paste the 64 hex digits `autoresearch hub register` gave you.");
                return Results.Empty;
            }
            string token = store.CreateSession(agent, hub.Options.SessionLifetime);
            ctx.Response.Cookies.Append(HubServer.SessionCookie, token, new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = ctx.Request.IsHttps,
                Path = "/",
                MaxAge = hub.Options.SessionLifetime,
            });
            return Results.Redirect("/", permanent: false, preserveMethod: false);
        });

        app.MapPost("/signout", (HttpContext ctx) =>
        {
            if (!SameOrigin(ctx))
                return Results.StatusCode(403);
            if (ctx.Request.Cookies[HubServer.SessionCookie] is { } token)
                store.EndSession(token);
            ctx.Response.Cookies.Delete(HubServer.SessionCookie, new CookieOptions { Path = "/" });
            return Results.Redirect("/signin");
        });
    }

    /// <summary>The sign-in form, also the answer to a browser that asks for a page without a key or session.</summary>
    public static Task SignInPage(HttpContext ctx, int status, string? error)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var html = new StringBuilder();
        Dashboard.Head(html, "sign in: autoresearch hub", refresh: false);
        html.Append("<header><h1>autoresearch hub</h1></header><section><h2>Sign in</h2>")
            .Append("<p>The dashboard shows what agents share, so it asks for an agent's API key, once per browser ")
            .Append("(scripts send it as <code>Authorization: Bearer &lt;key&gt;</code>).</p>");
        if (error is not null)
            html.Append("<p class=\"error\">").Append(Dashboard.E(error)).Append("</p>");
        html.Append("<form class=\"signin\" method=\"post\" action=\"/signin\"><input type=\"password\" name=\"key\" id=\"key\" autocomplete=\"off\" ")
            .Append("placeholder=\"API key (64 hex digits)\" required autofocus><button id=\"signin\">Sign in</button></form></section></body></html>");
        SecurityHeaders(ctx);
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "text/html; charset=utf-8";
        return ctx.Response.WriteAsync(html.ToString(), ctx.RequestAborted);
    }

    private static IResult Html(HttpContext ctx, string html, int status)
    {
        SecurityHeaders(ctx);
        return Results.Content(html, "text/html; charset=utf-8", Encoding.UTF8, status);
    }

    /// <summary>No scripts, no frames, nothing from elsewhere; private pages are not cached by anyone else.</summary>
    private static void SecurityHeaders(HttpContext ctx)
    {
        var h = ctx.Response.Headers;
        h.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        h.XContentTypeOptions = "nosniff";
        h["Referrer-Policy"] = "no-referrer";
        h.CacheControl = "no-store";
    }

    /// <summary>A form post from another site carries its own Origin: refuse it (the session cookie is SameSite=Strict anyway).</summary>
    private static bool SameOrigin(HttpContext ctx)
    {
        string? origin = ctx.Request.Headers.Origin;
        return string.IsNullOrEmpty(origin) || origin == "null"
            || (Uri.TryCreate(origin, UriKind.Absolute, out var uri) && string.Equals(uri.Authority, ctx.Request.Host.Value, StringComparison.OrdinalIgnoreCase));
    }

    private static string NotFoundPage(string hash)
    {
        var html = new StringBuilder();
        Dashboard.Head(html, "not found", refresh: false);
        return html.Append("<section><h2>No single known commit starts with ").Append(Dashboard.E(hash))
            .Append("</h2><p><a href=\"/\">back to the dashboard</a></p></section></body></html>").ToString();
    }
}

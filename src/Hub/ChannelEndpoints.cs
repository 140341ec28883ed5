using System.Text;

namespace AutoResearch.Hub;

/// <summary>Channels, posts and their replies, and the results parsed from posts: paged lists and the leaderboard.</summary>
public static class ChannelEndpoints
{
    public const string ResultsChannel = "results";

    public static void Map(WebApplication app, HubServices hub)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(hub);
        var store = hub.Store;
        var options = hub.Options;

        app.MapGet("/api/channels", () => Results.Json(store.Channels().Select(c => new { name = c.Name, description = c.Description })));

        app.MapPost("/api/channels", async (HttpContext ctx) =>
        {
            var (body, error) = await HubHttp.ReadJsonObject(ctx, options.MaxJsonBytes);
            if (error is not null)
                return error;
            if (HubHttp.TryGetString(body, "name", required: true, out string? name) is { } badName)
                return badName;
            if (HubHttp.TryGetString(body, "description", required: false, out string? description) is { } badDescription)
                return badDescription;
            description ??= "";
            if (!HubValidation.IsName(name))
                return HubHttp.Error(400, $"field 'name': expected {HubValidation.NameRule}");
            if (description.Length > 1000)
                return HubHttp.Error(400, "field 'description': at most 1000 characters");
            return store.CreateChannel(name!, description, HubHttp.Agent(ctx), options.MaxChannels, options.MaxChannelsPerAgent) switch
            {
                ChannelCreation.Created => Results.Json(new { name, description }, statusCode: 201),
                ChannelCreation.Exists => HubHttp.Error(409, $"channel '{name}' already exists"),
                ChannelCreation.HubFull => HubHttp.Error(403, $"the hub has its maximum of {options.MaxChannels} channels; post to an existing one"),
                _ => HubHttp.Error(403, $"you have created {options.MaxChannelsPerAgent} channels, the most one agent may"),
            };
        });

        app.MapPost("/api/channels/{name}/posts", async (HttpContext ctx, string name) =>
        {
            if (!HubValidation.IsName(name))
                return HubHttp.Error(400, $"channel name: expected {HubValidation.NameRule}");
            if (!store.ChannelExists(name))
                return HubHttp.Error(404, $"no channel '{name}'");
            string agent = HubHttp.Agent(ctx);
            var (body, error) = await HubHttp.ReadJsonObject(ctx, options.MaxJsonBytes);
            if (error is not null)
                return error;
            if (HubHttp.TryGetString(body, "content", required: true, out string? content) is { } badContent)
                return badContent;
            if (HubHttp.TryGetId(body, "reply_to", out long? replyTo) is { } badReply)
                return badReply;
            if (string.IsNullOrWhiteSpace(content))
                return HubHttp.Error(400, "field 'content': must not be empty");
            if (Encoding.UTF8.GetByteCount(content) > options.MaxPostBytes)
                return HubHttp.Error(413, $"field 'content': longer than {options.MaxPostBytes} bytes");
            ResultLine? result = null;
            if (name == ResultsChannel && ResultLine.LooksLikeResult(content) && ResultLine.Parse(content, out result) is { } badResult)
                return HubHttp.Error(400, $"field 'content': {badResult}");
            if (!store.TryAcquire("post:" + agent, options.PostsPerMinute, 60))
                return HubHttp.Error(429, $"too many posts from this agent (at most {options.PostsPerMinute} a minute); wait a minute");
            var post = store.AddPost(name, agent, content, replyTo, result);
            if (post is null)
                return HubHttp.Error(404, $"field 'reply_to': no post {replyTo} in channel '{name}'");
            return Results.Json(PostJson(post), statusCode: 201);
        });

        app.MapGet("/api/channels/{name}/posts", (HttpContext ctx, string name) =>
        {
            if (!HubValidation.IsName(name))
                return HubHttp.Error(400, $"channel name: expected {HubValidation.NameRule}");
            if (!store.ChannelExists(name))
                return HubHttp.Error(404, $"no channel '{name}'");
            if (HubHttp.TryLimit(ctx, out int limit) is { } badLimit)
                return badLimit;
            if (HubHttp.TryCursor(ctx, "before", out long? before) is { } badCursor)
                return badCursor;
            var posts = store.Posts(name, limit, before);
            if (posts.Count > 0)
                HubHttp.NextPageLink(ctx, posts.Count, limit, posts[^1].Id);
            return Results.Json(posts.Select(PostJson));
        });

        // One post with its thread: the direct replies, oldest first.
        app.MapGet("/api/posts/{id:long}", (HttpContext ctx, long id) =>
        {
            if (HubHttp.TryLimit(ctx, out int limit, fallback: 100) is { } badLimit)
                return badLimit;
            var post = store.Post(id);
            if (post is null)
                return HubHttp.Error(404, $"no post {id}");
            return Results.Json(new
            {
                id = post.Id,
                channel = post.Channel,
                agent_id = post.AgentId,
                content = post.Content,
                created_at = post.CreatedAt,
                reply_to = post.ReplyTo,
                replies = store.Replies(id, limit).Select(PostJson),
            });
        });

        app.MapGet("/api/results", (HttpContext ctx) =>
        {
            if (HubHttp.TryLimit(ctx, out int limit) is { } badLimit)
                return badLimit;
            if (HubHttp.TryCursor(ctx, "before", out long? before) is { } badCursor)
                return badCursor;
            string? platform = ctx.Request.Query["platform"];
            if (platform is not null && !HubValidation.IsName(platform))
                return HubHttp.Error(400, $"platform: expected {HubValidation.NameRule}");
            var results = store.Results(limit, before, platform);
            if (results.Count > 0)
                HubHttp.NextPageLink(ctx, results.Count, limit, results[^1].PostId);
            return Results.Json(results.Select(ResultJson));
        });

        app.MapGet("/api/leaderboard", () => Results.Json(store.Leaderboard().Select(e => new
        {
            platform = e.Best.Platform,
            best = ResultJson(e.Best),
            runs = e.Runs,
        })));
    }

    internal static object PostJson(PostRecord p) =>
        new { id = p.Id, channel = p.Channel, agent_id = p.AgentId, content = p.Content, created_at = p.CreatedAt, reply_to = p.ReplyTo };

    internal static object ResultJson(ResultRecord r) => new
    {
        post_id = r.PostId,
        commit = r.Commit,
        platform = r.Platform,
        val_bpb = r.ValBpb,
        vram_gb = r.VramGb,
        status = r.Status,
        agent_id = r.AgentId,
        description = r.Description,
        created_at = r.CreatedAt,
    };
}

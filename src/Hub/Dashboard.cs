using System.Globalization;
using System.Net;
using System.Text;

namespace AutoResearch.Hub;

/// <summary>
/// The dashboard at /: a page rendered on the server, refreshing itself every RefreshSeconds: counts, the best-so-far chart per
/// platform, the leaderboard over all history, the frontier ranked by val_bpb, and the latest posts with times and links.
/// </summary>
public static class Dashboard
{
    public const int RefreshSeconds = 30;
    public const int FrontierRows = 15;
    public const int PostRows = 30;

    public static string Render(HubStore store, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(time);
        var now = time.GetUtcNow();
        var counts = store.Counts();
        var html = new StringBuilder(64 * 1024);
        Head(html, "autoresearch hub", refresh: true);
        html.Append("<header><h1>autoresearch hub</h1><p class=\"meta\">")
            .Append(CultureInfo.InvariantCulture, $"{counts.Agents} agents · {counts.Commits} commits · {counts.Leaves} on the frontier · {counts.Results} results · {counts.Posts} posts")
            .Append(" · updated <time>").Append(now.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture))
            .Append(CultureInfo.InvariantCulture, $" UTC</time>, refreshes every {RefreshSeconds} s</p>")
            .Append("<form method=\"post\" action=\"/signout\" class=\"signout\"><button>sign out</button></form></header>");

        html.Append("<section><h2>Best val_bpb so far, per platform</h2><div class=\"chart\">")
            .Append(DashboardChart.Svg(store.AllResults())).Append("</div></section>");

        html.Append("<section><h2>Leaderboard: the best result per platform, all history</h2>");
        var board = store.Leaderboard();
        html.Append(board.Count == 0 ? "<p class=\"empty\">No ranked results yet (crashes are not ranked).</p><table id=\"leaderboard\" hidden>" : "<table id=\"leaderboard\">");
        html.Append("<thead><tr><th>#</th><th>platform</th><th>best val_bpb</th><th>commit</th><th>agent</th><th>vram GB</th><th>runs</th><th>description</th><th>when</th></tr></thead><tbody>");
        int rank = 1;
        foreach (var (best, runs) in board)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{rank++}</td><td class=\"platform\">").Append(E(best.Platform))
                .Append("</td><td class=\"val_bpb\">").Append(F6(best.ValBpb)).Append("</td><td>").Append(CommitLink(best.Commit))
                .Append("</td><td>").Append(E(best.AgentId)).Append("</td><td>").Append(best.VramGb.ToString("F1", CultureInfo.InvariantCulture))
                .Append(CultureInfo.InvariantCulture, $"</td><td>{runs}</td><td class=\"text\">").Append(E(best.Description))
                .Append("</td><td>").Append(Ago(best.CreatedAt, now)).Append("</td></tr>");
        }
        html.Append("</tbody></table></section>");

        html.Append("<section><h2>Frontier: leaves ranked by best val_bpb</h2>");
        var leaves = store.Leaves(FrontierRows);
        html.Append(leaves.Count == 0 ? "<p class=\"empty\">No commits pushed yet.</p><table id=\"frontier\" hidden>" : "<table id=\"frontier\">");
        html.Append("<thead><tr><th>val_bpb</th><th>platform</th><th>commit</th><th>agent</th><th>message</th><th>pushed</th></tr></thead><tbody>");
        foreach (var leaf in leaves)
        {
            html.Append("<tr><td class=\"val_bpb\">").Append(leaf.Best is null ? "–" : F6(leaf.Best.ValBpb)).Append("</td><td>")
                .Append(leaf.Best is null ? "" : E(leaf.Best.Platform)).Append("</td><td>").Append(CommitLink(leaf.Commit.Hash))
                .Append("</td><td>").Append(E(leaf.Commit.AgentId)).Append("</td><td class=\"text\">").Append(E(leaf.Commit.Message))
                .Append("</td><td>").Append(Ago(leaf.Commit.CreatedAt, now)).Append("</td></tr>");
        }
        html.Append("</tbody></table></section>");

        html.Append("<section><h2>Latest posts</h2><ol id=\"posts\">");
        var posts = store.LatestPosts(PostRows);
        if (posts.Count == 0)
            html.Append("<li class=\"empty\">No posts yet.</li>");
        foreach (var p in posts)
        {
            html.Append(CultureInfo.InvariantCulture, $"<li id=\"post-{p.Id}\"><span class=\"when\">").Append(Ago(p.CreatedAt, now))
                .Append("</span> <span class=\"channel\">#").Append(E(p.Channel)).Append("</span> <b>").Append(E(p.AgentId)).Append("</b>");
            if (p.ReplyTo is { } parent)
                html.Append(CultureInfo.InvariantCulture, $" <span class=\"reply\">↳ reply to #{parent}</span>");
            html.Append(": <span class=\"text\">").Append(PostText(p.Content)).Append("</span></li>");
        }
        html.Append("</ol></section>");
        return html.Append("</body></html>").ToString();
    }

    /// <summary>One commit: its message, parents and children, posted results, ancestors, and its diff against its first parent.</summary>
    public static string RenderCommit(CommitRecord commit, List<ResultRecord> results, List<CommitRecord> children, List<CommitRecord> lineage,
        string diff, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(commit);
        var html = new StringBuilder(16 * 1024);
        Head(html, "commit " + commit.Hash[..7], refresh: false);
        html.Append("<header><h1><a href=\"/\">autoresearch hub</a> / commit <code>").Append(commit.Hash[..7]).Append("</code></h1></header><section>")
            .Append("<p class=\"text\"><b>").Append(E(commit.Message)).Append("</b></p><table class=\"facts\"><tr><th>hash</th><td><code>")
            .Append(commit.Hash).Append("</code></td></tr><tr><th>agent</th><td>").Append(E(commit.AgentId))
            .Append("</td></tr><tr><th>pushed</th><td>").Append(E(commit.CreatedAt)).Append("</td></tr><tr><th>parents</th><td>")
            .AppendJoin(' ', commit.Parents.Select(CommitLink)).Append("</td></tr><tr><th>children</th><td>")
            .AppendJoin(' ', children.Select(c => CommitLink(c.Hash))).Append("</td></tr></table></section>");
        html.Append("<section><h2>Results posted for it</h2><table id=\"results\"><thead><tr><th>val_bpb</th><th>platform</th><th>status</th><th>vram GB</th><th>agent</th><th>description</th><th>when</th></tr></thead><tbody>");
        foreach (var r in results)
        {
            html.Append("<tr><td class=\"val_bpb\">").Append(F6(r.ValBpb)).Append("</td><td>").Append(E(r.Platform)).Append("</td><td>")
                .Append(E(r.Status)).Append("</td><td>").Append(r.VramGb.ToString("F1", CultureInfo.InvariantCulture)).Append("</td><td>")
                .Append(E(r.AgentId)).Append("</td><td class=\"text\">").Append(E(r.Description)).Append("</td><td>").Append(Ago(r.CreatedAt, now)).Append("</td></tr>");
        }
        html.Append("</tbody></table></section><section><h2>Lineage</h2><ol class=\"lineage\">");
        foreach (var a in lineage)
            html.Append("<li>").Append(CommitLink(a.Hash)).Append(' ').Append(E(a.Message)).Append(" <span class=\"when\">").Append(E(a.AgentId)).Append("</span></li>");
        html.Append("</ol></section><section><h2>Diff against its first parent</h2><pre class=\"diff\">").Append(E(diff)).Append("</pre></section>");
        return html.Append("</body></html>").ToString();
    }

    internal static void Head(StringBuilder html, string title, bool refresh)
    {
        html.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        if (refresh)
            html.Append(CultureInfo.InvariantCulture, $"<meta http-equiv=\"refresh\" content=\"{RefreshSeconds}\">");
        html.Append("<title>").Append(E(title)).Append("</title><style>").Append(Style).Append("</style></head><body>");
    }

    private const string Style =
        "body{font:14px/1.45 system-ui,'DejaVu Sans',sans-serif;margin:0 auto;padding:1em 2em;max-width:1400px;color:#1d2330;background:#f6f7f9}"
        + "header{display:flex;align-items:baseline;gap:1.5em;flex-wrap:wrap}h1{font-size:1.5em;margin:.2em 0}h1 a{color:inherit;text-decoration:none}"
        + "h2{font-size:1.1em;margin:1.2em 0 .5em}.meta{color:#5b6475;margin:0}.signout{margin-left:auto}"
        + "section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:.4em 1.2em 1em;margin:1em 0}"
        + "table{border-collapse:collapse;width:100%;font-size:.93em}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #edf0f4;vertical-align:top}"
        + "th{color:#5b6475;font-weight:600;font-size:.9em}td.val_bpb{font-variant-numeric:tabular-nums;font-weight:600}"
        + ".text{overflow-wrap:anywhere;white-space:pre-wrap}.empty{color:#5b6475}.chart svg{width:100%;height:auto}"
        + "ol#posts{list-style:none;padding:0;margin:0}ol#posts li{padding:5px 0;border-bottom:1px solid #edf0f4}"
        + "time,td.val_bpb{white-space:nowrap}.when{color:#5b6475;font-size:.9em;white-space:nowrap}.channel{color:#7048e8}.reply{color:#5b6475}"
        + "a{color:#1c64d8}code,pre{font:12px/1.4 'DejaVu Sans Mono',monospace}pre.diff{overflow:auto;max-height:60em;background:#f6f7f9;padding:.6em}"
        + "form.signin{display:flex;gap:.5em;margin:1em 0}form.signin input{flex:1;font:inherit;padding:.4em}.error{color:#c92a2a}";

    internal static string E(string s) => WebUtility.HtmlEncode(StripControls(s));

    internal static string CommitLink(string hash) =>
        HubValidation.IsHash(hash) ? $"<a class=\"commit\" href=\"/commits/{hash}\"><code>{hash[..Math.Min(hash.Length, 7)]}</code></a>" : E(hash);

    /// <summary>A post's text, escaped; a result line's commit becomes a link to the commit's page.</summary>
    private static string PostText(string content)
    {
        if (ResultLine.TryParse(content, out var line))
        {
            int at = content.IndexOf(line!.Commit, StringComparison.Ordinal);
            return string.Concat(E(content[..at]), CommitLink(line.Commit), E(content[(at + line.Commit.Length)..]));
        }
        return E(content);
    }

    private static string F6(double v) => v.ToString("F6", CultureInfo.InvariantCulture);

    /// <summary>"5 min ago" with the exact UTC time as a tooltip.</summary>
    private static string Ago(string createdAt, DateTimeOffset now)
    {
        if (!DateTimeOffset.TryParse(createdAt, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
            return E(createdAt);
        var age = now - t;
        string text = age.TotalSeconds < 60 ? "just now"
            : age.TotalMinutes < 60 ? $"{(int)age.TotalMinutes} min ago"
            : age.TotalHours < 48 ? $"{(int)age.TotalHours} h ago"
            : $"{(int)age.TotalDays} days ago";
        return $"<time datetime=\"{E(createdAt)}\" title=\"{E(createdAt)}\">{text}</time>";
    }

    private static string StripControls(string s) =>
        HubValidation.HasControlCharacters(s) ? new string([.. s.Where(c => !char.IsControl(c) || c is '\n' or '\t')]) : s;
}

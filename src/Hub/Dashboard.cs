using System.Globalization;
using System.Net;
using System.Text;

namespace AutoResearch.Hub;

/// <summary>GET /: a read-only page rendered on the server: best val_bpb per platform, the frontier, the latest posts, a progress chart.</summary>
public static class Dashboard
{
    public static string Render(HubStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var results = store.Posts("results", 1000);
        results.Reverse(); // oldest first: the chart's x axis
        var parsed = new List<(PostRecord Post, ResultLine Line)>();
        foreach (var p in results)
        {
            if (ResultLine.TryParse(p.Content, out var line))
                parsed.Add((p, line!));
        }
        var best = new SortedDictionary<string, (ResultLine Line, string Agent)>(StringComparer.Ordinal);
        foreach (var (post, line) in parsed)
        {
            if (!best.TryGetValue(line.Platform, out var b) || line.ValBpb < b.Line.ValBpb)
                best[line.Platform] = (line, post.AgentId);
        }

        var html = new StringBuilder();
        html.Append("<!doctype html><html><head><meta charset=\"utf-8\"><title>autoresearch hub</title><style>")
            .Append("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}")
            .Append("</style></head><body><h1>autoresearch hub</h1>");

        html.Append("<h2>Best val_bpb per platform</h2><table id=\"leaderboard\"><tr><th>platform</th><th>val_bpb</th><th>commit</th><th>agent</th><th>vram_gb</th><th>description</th></tr>");
        foreach (var (platform, (line, agent)) in best)
        {
            html.Append("<tr><td class=\"platform\">").Append(E(platform)).Append("</td><td class=\"val_bpb\">")
                .Append(line.ValBpb.ToString("F6", CultureInfo.InvariantCulture)).Append("</td><td>").Append(E(line.Commit))
                .Append("</td><td>").Append(E(agent)).Append("</td><td>").Append(line.VramGb.ToString("F1", CultureInfo.InvariantCulture))
                .Append("</td><td>").Append(E(line.Description)).Append("</td></tr>");
        }
        html.Append("</table>");

        html.Append("<h2>Progress</h2>").Append(Chart(parsed));

        html.Append("<h2>Frontier (leaves)</h2><ul id=\"leaves\">");
        foreach (var c in store.Leaves().Take(50))
            html.Append("<li><code>").Append(E(c.Hash[..7])).Append("</code> ").Append(E(c.Message)).Append(" (").Append(E(c.AgentId)).Append(")</li>");
        html.Append("</ul>");

        html.Append("<h2>Latest posts</h2><ul id=\"posts\">");
        foreach (var p in store.LatestPosts(30))
            html.Append("<li>#").Append(E(p.Channel)).Append(" <b>").Append(E(p.AgentId)).Append("</b>: ").Append(E(p.Content)).Append("</li>");
        html.Append("</ul></body></html>");
        return html.ToString();
    }

    /// <summary>Inline SVG: every result as a dot (x = post order, y = val_bpb), the running best as a green step line.</summary>
    private static string Chart(List<(PostRecord Post, ResultLine Line)> points)
    {
        const double W = 640, H = 240, Pad = 30;
        var svg = new StringBuilder($"<svg id=\"progress\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\">");
        if (points.Count > 0)
        {
            double lo = double.MaxValue, hi = double.MinValue;
            foreach (var (_, l) in points)
            {
                lo = Math.Min(lo, l.ValBpb);
                hi = Math.Max(hi, l.ValBpb);
            }
            if (hi - lo < 1e-9)
                hi = lo + 1e-3;
            double X(int i) => Pad + (W - 2 * Pad) * (points.Count == 1 ? 0.5 : i / (double)(points.Count - 1));
            double Y(double v) => H - Pad - (H - 2 * Pad) * (v - lo) / (hi - lo);
            var step = new StringBuilder();
            double runningBest = double.MaxValue;
            for (int i = 0; i < points.Count; i++)
            {
                double v = points[i].Line.ValBpb;
                svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{X(i):F1}\" cy=\"{Y(v):F1}\" r=\"3\" fill=\"#999\"><title>{E(points[i].Line.Description)}</title></circle>");
                if (v < runningBest)
                {
                    if (runningBest != double.MaxValue)
                        step.Append(CultureInfo.InvariantCulture, $" L{X(i):F1},{Y(runningBest):F1}");
                    runningBest = v;
                    step.Append(CultureInfo.InvariantCulture, $"{(step.Length == 0 ? "M" : " L")}{X(i):F1},{Y(v):F1}");
                }
            }
            step.Append(CultureInfo.InvariantCulture, $" L{X(points.Count - 1):F1},{Y(runningBest):F1}");
            svg.Append("<path d=\"").Append(step).Append("\" stroke=\"green\" fill=\"none\"/>");
        }
        return svg.Append("</svg>").ToString();
    }

    private static string E(string s) => WebUtility.HtmlEncode(s);
}

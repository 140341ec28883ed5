using System.Globalization;
using ScottPlot;

namespace AutoResearch.Hub;

/// <summary>
/// The dashboard's chart, drawn by ScottPlot as SVG on the server: x = when a result was posted (UTC), y = val_bpb;
/// per platform, every ranked result as a small translucent dot and the best-so-far as a step line, one colour each,
/// with axes, labels and a legend. Crashes have no measurement and are left out.
/// </summary>
public static class DashboardChart
{
    public const int Width = 1000;
    public const int Height = 420;

    /// <summary>Most dots drawn (the newest); the best-so-far lines always use every result.</summary>
    public const int MaxDots = 1500;

    /// <summary>SVG markup ready to inline in HTML; results in posting order.</summary>
    public static string Svg(IReadOnlyList<ResultRecord> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var ranked = results.Where(r => !r.Status.Equals("crash", StringComparison.Ordinal)).ToList();
        var plot = new Plot();
        plot.Font.Set("DejaVu Sans");
        var palette = new ScottPlot.Palettes.Category10();
        var platforms = ranked.GroupBy(r => r.Platform, StringComparer.Ordinal)
            .OrderBy(g => g.Min(r => r.ValBpb)).ThenBy(g => g.Key, StringComparer.Ordinal).ToList();
        var dotsByPlatform = ranked.Skip(Math.Max(0, ranked.Count - MaxDots))
            .GroupBy(r => r.Platform, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        for (int i = 0; i < platforms.Count; i++)
        {
            var color = palette.GetColor(i);
            var points = platforms[i].ToList();
            if (dotsByPlatform.TryGetValue(platforms[i].Key, out var dots))
            {
                // Few results: large, clear dots; many: small translucent ones, so that dense regions read as density, not a smear.
                bool few = ranked.Count < 100;
                var scatter = plot.Add.ScatterPoints(dots.Select(r => X(r)).ToArray(), dots.Select(r => r.ValBpb).ToArray(), color.WithAlpha(few ? 0.7 : 0.35));
                scatter.MarkerSize = few ? 7 : 4;
            }
            // Best so far: a step at every improvement, held out to the newest result of any platform.
            var stepX = new List<double>();
            var stepY = new List<double>();
            double best = double.PositiveInfinity;
            foreach (var r in points)
            {
                if (r.ValBpb < best)
                {
                    best = r.ValBpb;
                    stepX.Add(X(r));
                    stepY.Add(best);
                }
            }
            stepX.Add(X(ranked[^1]));
            stepY.Add(best);
            var line = plot.Add.ScatterLine(stepX.ToArray(), stepY.ToArray(), color);
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.LineWidth = 2.5f;
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"{platforms[i].Key}: best {best:F4} ({points.Count} runs)");
        }
        plot.XLabel("time posted (UTC)");
        plot.YLabel("val_bpb (lower is better)");
        var bottom = plot.Axes.DateTimeTicksBottom();
        if (bottom.TickGenerator is ScottPlot.TickGenerators.DateTimeAutomatic ticks)
            ticks.LabelFormatter = t => t.ToString("MMM d HH:mm", CultureInfo.InvariantCulture);
        if (ranked.Count == 0)
        {
            plot.Axes.SetLimits(DateTime.UtcNow.AddDays(-1).ToOADate(), DateTime.UtcNow.ToOADate(), 0.9, 1.1);
            plot.Add.Annotation("no results yet: post lines like commit:abc1234 platform:H100 val_bpb:0.99 vram_gb:44 | what changed");
        }
        else
        {
            SetLimits(plot, ranked);
            plot.ShowLegend(Edge.Bottom);
        }
        string svg = plot.GetSvgXml(Width, Height);
        // Inline it: drop the XML declaration and let CSS scale it (viewBox).
        int start = svg.IndexOf("<svg", StringComparison.Ordinal);
        svg = svg[start..];
        return string.Create(CultureInfo.InvariantCulture,
            $"<svg id=\"progress\" role=\"img\" aria-label=\"best val_bpb so far per platform\" viewBox=\"0 0 {Width} {Height}\"{svg.AsSpan(4)}");
    }

    private static double X(ResultRecord r) =>
        DateTime.Parse(r.CreatedAt, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal).ToOADate();

    // y from the best result to a high quantile: early outliers (a diverged run at 8 bpb) would otherwise flatten the curves.
    private static void SetLimits(Plot plot, List<ResultRecord> ranked)
    {
        var values = ranked.Select(r => r.ValBpb).Order().ToArray();
        double low = values[0];
        double high = values.Length < 50 ? values[^1] : values[(int)Math.Floor((values.Length - 1) * 0.98)];
        double margin = Math.Max((high - low) * 0.08, 1e-3);
        double x0 = X(ranked[0]), x1 = X(ranked[^1]);
        double xMargin = Math.Max((x1 - x0) * 0.03, 1.0 / 24 / 60);
        plot.Axes.SetLimits(x0 - xMargin, x1 + xMargin, low - margin, high + margin);
    }
}

using ScottPlot;

namespace AutoResearch.Runner.Experiment;

/// <summary>
/// The research progress chart (SPEC §10): x = experiment number, y = val_bpb; discarded runs as faint grey dots,
/// kept runs as green dots labelled with their description, the running best of the kept runs as a step line.
/// Crashes have no val_bpb and are left out.
/// </summary>
public static class ProgressChart
{
    public const int DefaultWidth = 1400;
    public const int DefaultHeight = 800;

    /// <summary>Draws the chart and returns the PNG bytes.</summary>
    public static byte[] RenderPng(ResultsAnalysis analysis, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(analysis);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 100);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 100);

        var plot = new Plot();
        var discardedX = new List<double>();
        var discardedY = new List<double>();
        for (int i = 0; i < analysis.Rows.Count; i++)
        {
            if (analysis.Rows[i].Status == ExperimentStatus.Discard)
            {
                discardedX.Add(i + 1);
                discardedY.Add(analysis.Rows[i].ValBpb);
            }
        }
        if (discardedX.Count > 0)
        {
            var discarded = plot.Add.ScatterPoints(discardedX.ToArray(), discardedY.ToArray(), Colors.Gray.WithAlpha(0.45));
            discarded.MarkerSize = 7;
            discarded.LegendText = "discarded";
        }

        int keptCount = analysis.Kept.Count;
        if (keptCount > 0)
        {
            // Running best as a step line: it holds each record until the next kept run beats it, out to the last experiment.
            var bestX = new List<double>(keptCount + 1);
            var bestY = new List<double>(keptCount + 1);
            double best = double.PositiveInfinity;
            foreach (var kept in analysis.Kept)
            {
                best = Math.Min(best, kept.Row.ValBpb);
                bestX.Add(kept.Number);
                bestY.Add(best);
            }
            bestX.Add(analysis.Rows.Count);
            bestY.Add(best);
            var bestLine = plot.Add.ScatterLine(bestX.ToArray(), bestY.ToArray(), Colors.ForestGreen.WithAlpha(0.7));
            bestLine.ConnectStyle = ConnectStyle.StepHorizontal;
            bestLine.LineWidth = 2;
            bestLine.LegendText = "running best";

            var keptX = new double[keptCount];
            var keptY = new double[keptCount];
            for (int i = 0; i < keptCount; i++)
            {
                keptX[i] = analysis.Kept[i].Number;
                keptY[i] = analysis.Kept[i].Row.ValBpb;
            }
            var keptPoints = plot.Add.ScatterPoints(keptX, keptY, Colors.Green);
            keptPoints.MarkerSize = 10;
            keptPoints.LegendText = "kept";

            foreach (var kept in analysis.Kept)
            {
                var label = plot.Add.Text(Shorten(kept.Row.Description), kept.Number, kept.Row.ValBpb);
                label.LabelFontSize = 11;
                label.LabelFontColor = Colors.DarkGreen;
                label.LabelRotation = -30;
                label.LabelAlignment = Alignment.LowerLeft;
                label.LabelOffsetX = 6;
                label.LabelOffsetY = -4;
            }
        }

        plot.Title($"Research progress: {analysis.Rows.Count} experiments, {analysis.KeepCount} kept");
        plot.XLabel("Experiment #");
        plot.YLabel("Validation BPB (lower is better)");
        plot.ShowLegend(Alignment.UpperRight);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        SetLimits(plot, analysis);
        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }

    // Focus on the kept range: discarded runs far worse than the baseline would otherwise squash the curve.
    private static void SetLimits(Plot plot, ResultsAnalysis analysis)
    {
        double low = double.PositiveInfinity, high = double.NegativeInfinity;
        foreach (var row in analysis.Rows)
        {
            if (row.Status == ExperimentStatus.Crash)
                continue;
            low = Math.Min(low, row.ValBpb);
            high = Math.Max(high, row.ValBpb);
        }
        if (analysis.Kept.Count > 0)
        {
            double baseline = analysis.Kept[0].Row.ValBpb;
            double span = Math.Max(baseline - low, 1e-3);
            high = Math.Min(high, baseline + 0.5 * span);
        }
        if (double.IsInfinity(low))
        {
            low = 0;
            high = 1;
        }
        double margin = Math.Max((high - low) * 0.08, 1e-3);
        // Extra room to the right for the last labels.
        plot.Axes.SetLimits(0, Math.Max(analysis.Rows.Count, 1) * 1.08 + 1, low - margin, high + margin);
    }

    private static string Shorten(string description) =>
        description.Length <= 48 ? description : string.Concat(description.AsSpan(0, 45), "...");
}

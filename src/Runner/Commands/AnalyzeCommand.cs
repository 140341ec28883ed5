using System.CommandLine;
using System.Globalization;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;
using Spectre.Console;

namespace AutoResearch.Runner;

/// <summary>`autoresearch analyze`: summarise results.tsv as tables and draw progress.png.</summary>
public static class AnalyzeCommand
{
    private const int TopImprovements = 10;

    public static Command Create()
    {
        var results = new Argument<string>("results") { Description = "The results table", DefaultValueFactory = _ => ResultsFile.DefaultFileName };
        var output = new Option<string>("--out") { Description = "Where to write the chart (PNG)", DefaultValueFactory = _ => "progress.png" };
        var command = new Command("analyze", "Count keep/discard/crash, list the kept experiments, the biggest improvements and the crashes, and draw progress.png.")
        {
            results, output,
        };
        command.SetAction(parse =>
        {
            Run(parse.GetValue(results)!, parse.GetValue(output)!, AnsiConsole.Console);
            return 0;
        });
        return command;
    }

    /// <summary>Prints the tables to <paramref name="console"/> and writes the chart atomically to <paramref name="chartPath"/>.</summary>
    public static ResultsAnalysis Run(string resultsPath, string chartPath, IAnsiConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        var analysis = new ResultsAnalysis(ResultsFile.Read(resultsPath));
        TrainPreflight.CheckSavePath(chartPath, "--out", "progress.png"); // before the tables, so a bad path is the only output

        var counts = new Table().Title("Experiments").AddColumns("status", "count");
        counts.AddRow("keep", Number(analysis.KeepCount));
        counts.AddRow("discard", Number(analysis.DiscardCount));
        counts.AddRow("crash", Number(analysis.CrashCount));
        counts.AddRow("[bold]total[/]", Number(analysis.Rows.Count));
        console.Write(counts);

        // Δ is new − old: negative when val_bpb fell (better).
        var kept = new Table().Title("Kept experiments, in order").AddColumns("#", "commit", "val_bpb", "Δ vs previous kept", "memory_gb", "description");
        foreach (var k in analysis.Kept)
            kept.AddRow(Number(k.Number), Markup.Escape(k.Row.Commit), Bpb(k.Row.ValBpb), Delta(-k.Improvement), Gb(k.Row.MemoryGb), Markup.Escape(k.Row.Description));
        console.Write(kept);

        var best = new Table().Title($"Biggest improvements (top {TopImprovements})").AddColumns("#", "commit", "val_bpb", "Δ vs previous kept", "description");
        foreach (var k in analysis.BiggestImprovements(TopImprovements))
            best.AddRow(Number(k.Number), Markup.Escape(k.Row.Commit), Bpb(k.Row.ValBpb), Delta(-k.Improvement), Markup.Escape(k.Row.Description));
        console.Write(best);

        var crashes = new Table().Title("Crashes").AddColumns("#", "commit", "description");
        foreach (var c in analysis.Crashes)
            crashes.AddRow(Number(c.Number), Markup.Escape(c.Row.Commit), Markup.Escape(c.Row.Description));
        console.Write(crashes);

        AtomicFile.WriteBytes(chartPath, ProgressChart.RenderPng(analysis));
        console.MarkupLine($"Chart written to [green]{Markup.Escape(chartPath)}[/].");
        return analysis;
    }

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);
    private static string Bpb(double value) => value.ToString("F6", CultureInfo.InvariantCulture);
    private static string Gb(double value) => value.ToString("F1", CultureInfo.InvariantCulture);
    /// <summary>A change in val_bpb, new − old, with its sign: "-0.004700" for a fall.</summary>
    private static string Delta(double change) => double.IsNaN(change) ? "baseline" : change.ToString("+0.000000;-0.000000;0.000000", CultureInfo.InvariantCulture);
}

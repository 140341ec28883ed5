using System.CommandLine;
using AutoResearch.Runner.Experiment;

namespace AutoResearch.Runner;

/// <summary>`autoresearch results add`: log one experiment to results.tsv (SPEC §10).</summary>
public static class ResultsCommand
{
    public static Command Create()
    {
        var command = new Command("results", "Manage results.tsv, the experiment log (tab-separated, never committed).");
        command.Subcommands.Add(CreateAdd());
        return command;
    }

    private static Command CreateAdd()
    {
        var status = new Option<string>("--status")
        {
            Description = "keep (val_bpb improved), discard (it did not) or crash (no result)",
            Required = true,
        };
        status.AcceptOnlyFromAmong("keep", "discard", "crash");
        var description = new Option<string>("--description") { Description = "What the experiment changed, one line without tabs", Required = true };
        var log = new Option<string>("--log") { Description = "The run's log, holding its summary block", DefaultValueFactory = _ => "run.log" };
        var file = new Option<string>("--file") { Description = "The results table to append to", DefaultValueFactory = _ => ResultsFile.DefaultFileName };
        var commit = new Option<string?>("--commit") { Description = "Commit hash to log (default: git rev-parse --short=7 HEAD)" };

        var add = new Command("add", "Append one row to results.tsv: commit, val_bpb and memory_gb from the run's log, status, description.")
        {
            status, description, log, file, commit,
        };
        add.SetAction(parse =>
        {
            ResultRow row = AddRow(
                ResultRow.ParseStatus(parse.GetValue(status)!),
                parse.GetValue(description)!,
                parse.GetValue(log)!,
                parse.GetValue(file)!,
                parse.GetValue(commit));
            parse.InvocationConfiguration.Output.WriteLine(row.ToTsvLine());
            return 0;
        });
        return add;
    }

    /// <summary>
    /// Builds the row (reading the log unless the run crashed; a val_bpb that is NaN, infinite or not above 0 is refused) and
    /// appends it atomically under the table's lock.
    /// </summary>
    public static ResultRow AddRow(ExperimentStatus status, string description, string logPath, string resultsPath, string? commit)
    {
        ResultRow.ValidateDescription(description);
        RunSummary? summary = null;
        if (status != ExperimentStatus.Crash)
        {
            if (!File.Exists(logPath))
                throw new FileNotFoundException($"--log: {logPath} does not exist (run training with its output redirected there, or pass --log).", logPath);
            summary = RunSummary.ParseLog(File.ReadAllText(logPath), logPath);
            if (summary is not null && !(summary.ValBpb > 0 && double.IsFinite(summary.ValBpb)))
                throw new InvalidDataException($"--log: {logPath} reports val_bpb {summary.ValBpb.ToString(System.Globalization.CultureInfo.InvariantCulture)}, "
                    + "which is not a result (a diverged or broken run): log it with --status crash");
        }
        string hash = commit ?? GitCommit.ShortHash(Environment.CurrentDirectory);
        ResultRow row = ResultRow.FromRun(hash, status, description, summary);
        ResultsFile.Append(resultsPath, row);
        return row;
    }
}

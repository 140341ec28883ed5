using System.CommandLine;

namespace AutoResearch.Runner;

/// <summary>The `autoresearch` command line: every command, each in its own file under Commands/ and added here, one line each.</summary>
public static class CommandLineRoot
{
    public static RootCommand Create()
    {
        var root = new RootCommand("autoresearch: train a small GPT on one NVIDIA GPU for a fixed time budget and report val_bpb.");
        root.Options.Add(CliErrors.VerboseOption);
        root.Subcommands.Add(DoctorCommand.Create());
        root.Subcommands.Add(ProfileCommand.Create());
        root.Subcommands.Add(ParityCommand.Create());
        root.Subcommands.Add(PrepareCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(KnobsCommand.Create());
        root.Subcommands.Add(PathsCommand.Create());
        root.Subcommands.Add(Sweep.SweepCommand.Create());
        root.Subcommands.Add(SampleCommand.Create());
        root.Subcommands.Add(ResultsCommand.Create());
        root.Subcommands.Add(AnalyzeCommand.Create());
        root.Subcommands.Add(HubCommand.Create());
        root.Subcommands.Add(CompileKernelCommand.Create());
        root.Subcommands.Add(StallsCommand.Create());
        return root;
    }
}

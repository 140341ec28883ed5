using System.CommandLine;
using AutoResearch.Runner;

var root = new RootCommand("autoresearch: train a small GPT on one NVIDIA GPU for a fixed time budget and report val_bpb.");
root.Options.Add(CliErrors.VerboseOption);
// Each command lives in its own file under Commands/ and is added here, one line each.
root.Subcommands.Add(DoctorCommand.Create());
root.Subcommands.Add(ProfileCommand.Create());
root.Subcommands.Add(ParityCommand.Create());
root.Subcommands.Add(PrepareCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(KnobsCommand.Create());
root.Subcommands.Add(AutoResearch.Runner.Sweep.SweepCommand.Create());
root.Subcommands.Add(SampleCommand.Create());
root.Subcommands.Add(ResultsCommand.Create());
root.Subcommands.Add(AnalyzeCommand.Create());
root.Subcommands.Add(HubCommand.Create());
return CliErrors.Invoke(root, args);

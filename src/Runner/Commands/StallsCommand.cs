using System.CommandLine;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch stalls`: where a kernel's warps wait, instruction by instruction, from Nsight Compute's source page exported as
/// CSV (<see cref="SassStallTable"/>). Needs no GPU: the report can come from another machine.
/// </summary>
public static class StallsCommand
{
    public const int DefaultTop = 25;

    public static Command Create()
    {
        var csv = new Argument<string>("csv")
        {
            Description = "The CSV of `ncu --import REPORT.ncu-rep --page source --csv --print-source sass` (the report collected with --section SourceCounters)",
        };
        var top = new Option<int>("--top") { Description = "How many instructions to list, those with the most stall samples first", DefaultValueFactory = _ => DefaultTop }
            .AtLeastOne();
        var kernel = new Option<string?>("--kernel") { Description = "Only the kernels whose name contains this (default: every kernel in the file)" };
        var command = new Command("stalls",
            "Summarise an Nsight Compute source page (SASS, with warp stall sampling): each kernel's stall reasons, the instructions its warps wait on most, "
            + "local memory, uncoalesced global accesses and bank conflicts. Example: ncu --clock-control none --section SourceCounters -k regex:^flash_attention_backward$ "
            + "-c 1 -o bwd autoresearch profile --device-batch 32 --steps 1; ncu --import bwd.ncu-rep --page source --csv --print-source sass > bwd.csv; autoresearch stalls bwd.csv")
        {
            csv, top, kernel,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(csv)!;
            var kernels = SassStallTable.Read(path);
            var filter = parse.GetValue(kernel);
            var chosen = filter is null ? kernels : kernels.Where(k => k.Kernel.Contains(filter, StringComparison.Ordinal)).ToList();
            if (chosen.Count == 0)
                throw new ArgumentException($"--kernel {filter}: no kernel of {path} has it in its name (the file has {string.Join(", ", kernels.Select(k => k.Kernel))})");
            var output = parse.InvocationConfiguration.Output;
            for (int i = 0; i < chosen.Count; i++)
            {
                if (i > 0)
                    output.WriteLine();
                foreach (var line in SassStallTable.Report(chosen[i], parse.GetValue(top)))
                    output.WriteLine(line);
            }
            return 0;
        });
        return command;
    }
}

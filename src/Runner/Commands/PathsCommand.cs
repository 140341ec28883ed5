using System.CommandLine;
using System.Text;
using AutoResearch.Model.Gpu;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Sweep;
using Spectre.Console;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch paths`: which kernel each op of the model runs for a configuration of knobs (<see cref="KernelPaths"/>), and
/// why an op leaves its fastest path, decided from the shape alone, without a GPU: what a knob change does to the kernels
/// before a 5-minute run is spent on it. <c>--sweep</c> lists the sweep's configurations (built in, or <c>--configs</c>) in
/// one markdown table.
/// </summary>
public static class PathsCommand
{
    public static Command Create()
    {
        var set = KnobOptions.CreateSetOption();
        var depth = new Option<int>("--depth") { Description = "Layers (the knob Depth)", DefaultValueFactory = _ => Hyperparameters.Default.Depth };
        var batch = new Option<int>("--device-batch") { Description = "Rows per micro-batch (B; the knob DeviceBatchSize)", DefaultValueFactory = _ => Hyperparameters.Default.DeviceBatchSize };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per row (T)", DefaultValueFactory = _ => ExperimentConstants.MaxSeqLen }.AtLeastOne();
        var compute = new Option<int>("--compute")
        {
            Description = "The GPU's compute capability, major number, to decide for (9: Hopper, where our GEMM and attention kernels run)",
            DefaultValueFactory = _ => 9,
        }.AtLeastOne();
        var cublasMlp = new Option<bool>("--cublas-mlp") { Description = "As profile --cublas-mlp: the MLP on cuBLAS plus activation passes" };
        var cublasQk = new Option<bool>("--cublas-qk") { Description = "As profile --cublas-qk: q and k on cuBLAS plus a rotary + QK-norm pass" };
        var sweep = new Option<bool>("--sweep")
        {
            Description = "List every configuration of the sweep (built in, or --configs) as a markdown table of the ops off their fast path; "
                + "each takes its own knobs and rows, so --set, --depth, --device-batch, --seq-len and --cublas-* do not go with it",
        };
        var configs = new Option<FileInfo?>("--configs") { Description = "With --sweep: a file of configurations, one a line: 'name: Knob=Value ... [@rows]'" };
        var command = new Command("paths", "Show which kernel each op runs for a configuration of knobs (--set Name=Value), and why an op leaves its fast path; "
            + "no GPU needed. --sweep lists the sweep's configurations.")
        {
            set, depth, batch, seqLen, compute, cublasMlp, cublasQk, sweep, configs,
        };
        command.SetAction(parse =>
        {
            bool Given(Option option) => parse.GetResult(option) is { Implicit: false };
            int major = parse.GetValue(compute);
            if (parse.GetValue(sweep))
            {
                if (Given(set) || Given(depth) || Given(batch) || Given(seqLen) || Given(cublasMlp) || Given(cublasQk))
                    throw new ArgumentException("--sweep takes each configuration's own knobs and rows: give --set, --depth, --device-batch, --seq-len, --cublas-mlp and --cublas-qk without it");
                var list = parse.GetValue(configs) is { } file ? SweepCommand.ReadConfigs(file.FullName) : SweepConfig.Defaults;
                Console.Write(SweepTable(list, major));
                return 0;
            }
            if (Given(configs))
                throw new ArgumentException("--configs lists sweep configurations: give it with --sweep");
            var h = KnobOptions.ResolveDepthAndBatch(parse, depth, batch, set);
            var shape = h.Shape(ExperimentConstants.VocabSize, parse.GetValue(seqLen));
            long tokens = (long)h.DeviceBatchSize * shape.SeqLen;
            if (tokens > int.MaxValue)
                throw new ArgumentException($"--device-batch {h.DeviceBatchSize} × --seq-len {shape.SeqLen} = {tokens} tokens a micro-batch; the model takes at most {int.MaxValue}");
            var paths = KernelPaths.For(major, shape, h.DeviceBatchSize, !parse.GetValue(cublasMlp), !parse.GetValue(cublasQk), h.RecomputesMlp);
            if (Console.IsOutputRedirected)
                AnsiConsole.Console.Profile.Width = KnobsCommand.RedirectedWidth;
            Write(AnsiConsole.Console, shape.Describe(), Knobs.Changed(h), paths);
            return 0;
        });
        return command;
    }

    /// <summary>The shape, the knobs changed, and a table of the ops (op, path, why it is not the fast one).</summary>
    public static void Write(IAnsiConsole console, string shape, IReadOnlyList<string> changedKnobs, KernelPaths paths)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(changedKnobs);
        ArgumentNullException.ThrowIfNull(paths);
        console.WriteLine($"shape: {shape}");
        console.WriteLine($"knobs: {(changedKnobs.Count == 0 ? "defaults" : string.Join(' ', changedKnobs))}; decided for compute {paths.ComputeMajor}.x");
        var rows = paths.Rows();
        var table = new Table().AddColumns("op", "path", "off the fast path because");
        foreach (var row in rows)
            table.AddRow(Markup.Escape(row.Op), Markup.Escape(row.Path), row.Fallback is null ? "" : $"[yellow]{Markup.Escape(row.Fallback)}[/]");
        console.Write(table);
        var off = rows.Count(r => !r.Fast);
        console.WriteLine(off == 0 ? "Every op takes its fast path." : $"{off} op(s) off the fast path.");
    }

    /// <summary>One markdown row a configuration: its knobs, rows, shape and the ops off their fast path (or the error that
    /// refuses its knobs).</summary>
    public static string SweepTable(IReadOnlyList<SweepConfig> configs, int computeMajor)
    {
        ArgumentNullException.ThrowIfNull(configs);
        var text = new StringBuilder();
        text.AppendLine($"Kernel paths of the sweep's configurations at T {ExperimentConstants.MaxSeqLen}, decided for compute {computeMajor}.x:");
        text.AppendLine();
        text.AppendLine("| configuration | knobs | rows | width | heads (q/kv × D) | MLP | off the fast path |");
        text.AppendLine("| --- | --- | ---: | ---: | --- | --- | --- |");
        foreach (var c in configs)
        {
            string knobs = c.Sets.Count == 0 ? "defaults" : string.Join(' ', c.Sets);
            try
            {
                var h = c.Knobs(ExperimentConstants.MaxSeqLen);
                var shape = h.Shape(ExperimentConstants.VocabSize, ExperimentConstants.MaxSeqLen);
                var paths = KernelPaths.For(computeMajor, shape, c.DeviceBatch, recomputeMlp: h.RecomputesMlp);
                text.AppendLine($"| {c.Name} | {knobs} | {c.DeviceBatch} | {shape.ModelDim} | {SweepCommand.HeadsCell(shape)} | "
                    + $"{SweepCommand.MlpCell(shape, paths)} | {SweepCommand.Cell(SweepCommand.OffFastPath(paths))} |");
            }
            catch (ArgumentException e)
            {
                text.AppendLine($"| {c.Name} | {knobs} | {c.DeviceBatch} | | | | refused: {SweepCommand.Cell(e.Message)} |");
            }
        }
        return text.ToString();
    }
}

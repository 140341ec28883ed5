using System.CommandLine;
using System.Globalization;
using System.Text;
using AutoResearch.Data;
using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;

namespace AutoResearch.Runner.Sweep;

/// <summary>
/// `autoresearch sweep`: for each configuration of knobs (<see cref="SweepConfig.Defaults"/>, or a file of them), on the GPU:
/// GPU-vs-CPU parity of the loss and every gradient at a small batch (<see cref="ModelParity"/>, T = --parity-seq-len), a short
/// `train` on the prepared data, and the median micro-step at T 2048 with its tokens/s and MFU. Writes a markdown table.
/// It answers "does this shape work, and how fast" before a 5-minute run is spent on it.
/// </summary>
public static class SweepCommand
{
    public static Command Create()
    {
        var configs = new Option<FileInfo?>("--configs") { Description = "A file of configurations, one a line: 'name: Knob=Value ... [@rows]' (default: the built-in sweep)" };
        var only = new Option<string[]>("--only") { Description = "Run only the configurations of these names (repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var paritySeqLen = new Option<int>("--parity-seq-len") { Description = "T of the parity check", DefaultValueFactory = _ => 256 };
        var parityBatch = new Option<int>("--parity-batch") { Description = "Rows of the parity check", DefaultValueFactory = _ => 1 };
        var trainSeconds = new Option<double>("--train-seconds") { Description = "Counted seconds of each short train (after its 11 warm-up steps)", DefaultValueFactory = _ => 2 };
        var steps = new Option<int>("--steps") { Description = "Timed micro-steps (after 2 warm-ups); the median is reported", DefaultValueFactory = _ => 5 };
        var output = new Option<FileInfo?>("--out") { Description = "Write the table (markdown) to this file" };
        var cache = new Option<string?>("--cache") { Description = "Cache folder with data/ and tokenizer/ (see prepare)" };
        var command = new Command("sweep", "Check and time model configurations on the GPU: parity with the CPU reference, a short train, the micro-step's speed.")
        {
            configs, only, paritySeqLen, parityBatch, trainSeconds, steps, output, cache,
        };
        command.SetAction((parse, cancel) =>
        {
            var list = parse.GetValue(configs) is { } file ? ReadConfigs(file.FullName) : SweepConfig.Defaults;
            var names = parse.GetValue(only) ?? [];
            if (names.Length > 0)
            {
                var unknown = names.Where(n => list.All(c => c.Name != n)).ToArray();
                if (unknown.Length > 0)
                    throw new ArgumentException($"--only: no configuration named {string.Join(", ", unknown)}; the configurations are {string.Join(", ", list.Select(c => c.Name))}");
                list = list.Where(c => names.Contains(c.Name)).ToArray();
            }
            RequirePositive(parse.GetValue(paritySeqLen), "--parity-seq-len");
            RequirePositive(parse.GetValue(parityBatch), "--parity-batch");
            RequirePositive(parse.GetValue(steps), "--steps");
            if (!(parse.GetValue(trainSeconds) > 0) || double.IsInfinity(parse.GetValue(trainSeconds)))
                throw new ArgumentException($"--train-seconds must be a positive number of seconds; got {parse.GetValue(trainSeconds)}");
            // Every configuration's knobs are checked before any GPU work, at both T it runs with (the parity check's and the train's).
            foreach (var c in list)
            {
                try
                {
                    var knobs = c.Knobs(ExperimentConstants.MaxSeqLen);
                    knobs.Shape(ExperimentConstants.VocabSize, ExperimentConstants.MaxSeqLen);
                    knobs.Shape(ExperimentConstants.VocabSize, parse.GetValue(paritySeqLen));
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"sweep configuration '{c.Name}': {e.Message}", e);
                }
            }
            // The table is written after the whole sweep: a path it could not be written to is refused now, not after minutes of runs.
            TrainPreflight.CheckSavePath(parse.GetValue(output)?.FullName, "--out", "sweep.md");
            var settings = new Settings(parse.GetValue(paritySeqLen), parse.GetValue(parityBatch), parse.GetValue(trainSeconds), parse.GetValue(steps),
                CachePaths.From(parse.GetValue(cache)));
            GpuTrainer.RequireDevice(); // every configuration would fail alike without one, each listing where the driver was looked for
            using (var device = CudaDevice.Open(0))
                GpuGpt.RequireFlashDevice(device.Properties); // and alike on a GPU the attention kernels cannot run on
            var rows = Run(list, settings, Console.Out, cancel);
            string table = Table(rows);
            Console.WriteLine();
            Console.WriteLine(table);
            if (parse.GetValue(output) is { } outFile)
                AtomicFile.WriteText(outFile.FullName, w => w.Write(table));
            return Task.FromResult(rows.All(r => r.Error is null && r.Parity?.Passed == true) ? 0 : 1);
        });
        return command;
    }

    /// <summary>How the sweep runs each configuration.</summary>
    public sealed record Settings(int ParitySeqLen, int ParityBatch, double TrainSeconds, int Steps, CachePaths Cache);

    /// <summary>What one configuration gave; <see cref="Error"/> holds the message of the stage that failed. <see cref="Parity"/>
    /// is against the CPU reference that rounds to bf16 where the GPU stores bf16 (the pass or fail), <see cref="Fp64Parity"/>
    /// the same GPU run against the fp64 reference.</summary>
    public sealed record Row(SweepConfig Config, ModelShape Shape, ModelParity.Result? Parity, RunSummary? Train, double MicroStepMs, double PeakMegabytes,
        KernelPaths? Paths, string? Error)
    {
        public ModelParity.Result? Fp64Parity { get; init; }

        public double TokensPerSecond => Shape.SeqLen * Config.DeviceBatch / (MicroStepMs * 1e-3);

        /// <summary>Model FLOPs utilisation against the H100's dense bf16 peak (SPEC §9's convention).</summary>
        public double MfuPercent => Shape.FlopsPerToken() * TokensPerSecond / 989.5e12 * 100;
    }

    public static IReadOnlyList<Row> Run(IReadOnlyList<SweepConfig> configs, Settings settings, TextWriter log, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(configs);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(log);
        var rows = new List<Row>();
        foreach (var config in configs)
        {
            cancel.ThrowIfCancellationRequested();
            int t = ExperimentConstants.MaxSeqLen;
            var h = config.Knobs(t);
            var shape = h.Shape(ExperimentConstants.VocabSize, t);
            log.WriteLine($"== {config.Name}: {(config.Sets.Count == 0 ? "defaults" : string.Join(' ', config.Sets))}, {config.DeviceBatch} rows; {shape.Describe()}");
            ModelParity.Result? parity = null, fp64 = null;
            RunSummary? summary = null;
            double microStep = double.NaN, peak = double.NaN;
            KernelPaths? paths = null;
            string? error = null;
            try
            {
                (parity, fp64) = CheckParity(h, settings);
                log.WriteLine($"   parity (T {settings.ParitySeqLen}, {settings.ParityBatch} row) against the bf16-rounding reference: {(parity.Passed ? "passed" : "FAILED")}; "
                    + $"loss error {parity.LossError:E2}, worst gradient {parity.Worst.Name} {parity.Worst.Error:E2}");
                if (!parity.Passed)
                    log.WriteLine("   " + parity.Describe().Replace("\n", "\n   ", StringComparison.Ordinal));
                log.WriteLine($"   against the fp64 reference: loss error {fp64.LossError:E2}, worst gradient {fp64.Worst.Name} {fp64.Worst.Error:E2}");
                summary = ShortTrain(h, settings, log, cancel);
                using var trainer = GpuTrainer.Create(shape, config.DeviceBatch, h.Optimizer(shape.ModelDim), h.Seed, settings.Cache.Kernels, h.RecomputesMlp);
                microStep = trainer.MedianMicroStepMilliseconds(settings.Steps);
                peak = trainer.PeakMemoryMegabytes;
                paths = trainer.Paths;
                var row = new Row(config, shape, parity, summary, microStep, peak, paths, null) { Fp64Parity = fp64 };
                log.WriteLine($"   micro-step {microStep:F1} ms, {row.TokensPerSecond / 1e6:F2} M tokens/s, MFU {row.MfuPercent:F1} %, peak {peak:F0} MB");
                log.WriteLine($"   off the fast path: {OffFastPath(paths)}");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                error = e.Message;
                log.WriteLine($"   FAILED: {e.Message}");
            }
            rows.Add(new Row(config, shape, parity, summary, microStep, peak, paths, error) { Fp64Parity = fp64 });
        }
        return rows;
    }

    /// <summary>
    /// The configuration's shape at the parity T, the GPU against the CPU reference on one batch of random tokens: the reference
    /// that rounds to bf16 where the GPU stores bf16 (held to the bounds), then the fp64 one (reported beside it; at depth 32
    /// bf16 storage alone moves the top layers' q and k gradients by about 5 % from it).
    /// </summary>
    private static (ModelParity.Result Rounded, ModelParity.Result Fp64) CheckParity(Hyperparameters h, Settings settings)
    {
        var shape = h.Shape(ExperimentConstants.VocabSize, settings.ParitySeqLen);
        using var device = CudaDevice.Open(0);
        using var stream = new CudaStream(device);
        using var blas = new Blas(device, stream);
        using var kernels = new KernelCache(device, KernelCache.DefaultKernelDirectory, settings.Cache.Kernels);
        return (ModelParity.Run(shape, settings.ParityBatch, h.Seed, device, stream, blas, kernels, roundedReference: true),
            ModelParity.Run(shape, settings.ParityBatch, h.Seed, device, stream, blas, kernels));
    }

    /// <summary>`train` for a few counted seconds on the prepared data, its output indented into the log; its summary.</summary>
    private static RunSummary ShortTrain(Hyperparameters h, Settings settings, TextWriter log, CancellationToken cancel)
    {
        var request = new TrainCommand.Request(h, OnCpu: false, ExperimentConstants.MaxSeqLen, settings.TrainSeconds,
            EvalTokens: 2L * h.DeviceBatchSize * ExperimentConstants.MaxSeqLen, settings.Cache, SavePath: null);
        var output = new StringWriter(CultureInfo.InvariantCulture);
        var error = new StringWriter(CultureInfo.InvariantCulture);
        int code = TrainCommand.Run(request, output, error, cancel);
        string text = output.ToString();
        var summary = RunSummary.ParseLog(text, "the short train");
        if (code != 0 || summary is null)
            throw new InvalidOperationException($"the short train exited with code {code}: {LastLines(text + error, 3)}");
        log.WriteLine($"   train: {summary.NumSteps} steps, val_bpb {summary.ValBpb:F4}, {summary.MfuPercent:F1} % MFU over the counted steps");
        return summary;
    }

    /// <summary>The ops a configuration ran off their fastest kernel path, with why (<see cref="KernelPaths.Fallbacks"/>), or
    /// "none".</summary>
    public static string OffFastPath(KernelPaths? paths) => paths is null ? "-" : paths.Fallbacks() is { Length: > 0 } list ? list : "none";

    /// <summary>The heads column: query / kv heads × head size.</summary>
    internal static string HeadsCell(ModelShape shape) => $"{shape.Heads}/{shape.KvHeads} × {shape.HeadDim}";

    /// <summary>The MLP column: activation, hidden width, and whether our fused GEMMs or cuBLAS run it (where known).</summary>
    internal static string MlpCell(ModelShape shape, KernelPaths? paths)
        => $"{shape.Activation.Name()} {shape.MlpHidden}{(paths is null ? "" : paths.FusedMlp ? " fused" : " cuBLAS")}";

    /// <summary>Text as one markdown table cell: its lines joined (a row ends at a line break), and '|' (which would end the
    /// cell) written '/'.</summary>
    internal static string Cell(string text)
        => string.Join(' ', text.Split(['\n', '\r'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Replace('|', '/');

    private static string LastLines(string text, int count)
        => string.Join(" | ", text.Split(['\n', '\r'], StringSplitOptions.RemoveEmptyEntries).TakeLast(count));

    /// <summary>The sweep's table: one row a configuration, with the baseline's MFU as the reference where it ran.</summary>
    public static string Table(IReadOnlyList<Row> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var baseline = rows.FirstOrDefault(r => r.Config.Name == "baseline" && r.Error is null);
        var text = new StringBuilder();
        text.AppendLine("| configuration | knobs | width | heads (q/kv × D) | MLP | params | rows | parity (bf16-rounding ref.): loss / worst gradient | fp64 ref.: worst gradient | short train | micro-step | tokens/s | MFU | vs baseline | peak | off the fast path |");
        text.AppendLine("| --- | --- | ---: | --- | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var r in rows)
        {
            var s = r.Shape;
            string knobs = r.Config.Sets.Count == 0 ? "defaults" : string.Join(" ", r.Config.Sets);
            string heads = HeadsCell(s);
            string mlp = MlpCell(s, r.Paths);
            string parity = r.Parity is null ? "-" : $"{(r.Parity.Passed ? "pass" : "FAIL")} {r.Parity.LossError:0.0E+0} / {r.Parity.Worst.Error:0.0E+0}";
            string fp64 = r.Fp64Parity is null ? "-" : $"{r.Fp64Parity.Worst.Error:0.0E+0}";
            string train = r.Train is null ? "-" : $"{r.Train.NumSteps} steps, val_bpb {r.Train.ValBpb:F3}";
            if (r.Error is not null)
            {
                text.AppendLine($"| {r.Config.Name} | {knobs} | {s.ModelDim} | {heads} | {mlp} | {s.ParameterCount / 1e6:F1} M | {r.Config.DeviceBatch} | {parity} | {fp64} | {train} | failed: {Cell(r.Error)} | | | | | |");
                continue;
            }
            string versus = baseline is null ? "-" : $"{r.MfuPercent / baseline.MfuPercent * 100:F0} %";
            text.AppendLine($"| {r.Config.Name} | {knobs} | {s.ModelDim} | {heads} | {mlp} | {s.ParameterCount / 1e6:F1} M | {r.Config.DeviceBatch} | {parity} | {fp64} | {train} | "
                + $"{r.MicroStepMs:F1} ms | {r.TokensPerSecond / 1e6:F2} M | {r.MfuPercent:F1} % | {versus} | {r.PeakMegabytes / 1024:F1} GB | {Cell(OffFastPath(r.Paths))} |");
        }
        return text.ToString();
    }

    /// <summary>The configurations of a --configs file (one a line; blank lines and # comments skipped), each checked.</summary>
    public static IReadOnlyList<SweepConfig> ReadConfigs(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"--configs: file '{path}' does not exist", path);
        var list = File.ReadAllLines(path).Where(l => l.Trim().Length > 0 && !l.TrimStart().StartsWith('#')).Select(SweepConfig.Parse).ToArray();
        if (list.Length == 0)
            throw new ArgumentException($"--configs: '{path}' holds no configuration (one a line: 'name: Knob=Value ... [@rows]')");
        return list;
    }

    private static void RequirePositive(int value, string flag)
    {
        if (value < 1)
            throw new ArgumentException($"{flag} must be at least 1; got {value}");
    }
}

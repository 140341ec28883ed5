using System.CommandLine;
using System.Diagnostics;
using AutoResearch.Data;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Model;
using AutoResearch.Native;
using AutoResearch.Optim;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch train`: the time-budgeted experiment of SPEC §7–9 (<see cref="TrainingLoop"/>) on the GPU, or with
/// --device cpu a reduced configuration (<see cref="CpuTrainingDefaults"/>) on the fp64 CPU reference, through the same loop.
/// Ctrl-C or SIGTERM stops with one line naming the signal and exit code 130 or 143, writing no summary.
/// </summary>
public static class TrainCommand
{
    /// <summary>Exit code of a run stopped by Ctrl-C (128 + SIGINT); SIGTERM gives 143.</summary>
    public const int InterruptedExitCode = 130;

    /// <summary>What one `train` runs: the knobs, the device and the run's own settings.</summary>
    public sealed record Request(Hyperparameters Hyperparameters, bool OnCpu, int SeqLen, double BudgetSeconds, long EvalTokens, CachePaths Cache, string? SavePath)
    {
        /// <summary>--steps: exactly this many steps, the schedules following the step instead of the clock.</summary>
        public int? Steps { get; init; }

        /// <summary>--save-optimizer: where to write the optimizer's state at the end (beside the --save checkpoint).</summary>
        public string? SaveOptimizerPath { get; init; }
    }

    public static Command Create()
    {
        var budget = new Option<double>("--time-budget") { Description = "Training seconds counted after the 11 warm-up steps", DefaultValueFactory = _ => ExperimentConstants.TimeBudgetSeconds }.PositiveFinite("seconds");
        var depth = new Option<int>("--depth") { Description = $"Layers (default {Hyperparameters.Default.Depth}; {CpuTrainingDefaults.Depth} with --device cpu)" }.AtLeastOne();
        var deviceBatch = new Option<int>("--device-batch") { Description = $"Rows per micro-batch; lower it if the GPU runs out of memory (default {Hyperparameters.Default.DeviceBatchSize}; {CpuTrainingDefaults.DeviceBatch} with --device cpu)" }.AtLeastOne();
        var totalBatch = new Option<int>("--total-batch") { Description = $"Tokens per optimizer step (default {Hyperparameters.Default.TotalBatchSize}; one micro-batch with --device cpu)" }.AtLeastOne();
        var evalTokens = new Option<long>("--eval-tokens") { Description = $"Validation tokens scored at the end (default {ExperimentConstants.EvalTokens}; {CpuTrainingDefaults.EvalTokens} with --device cpu)" }.AtLeastOne();
        var seqLen = new Option<int>("--seq-len") { Description = $"Tokens per row, --device cpu only (default {CpuTrainingDefaults.SeqLen}; the GPU run is fixed at {ExperimentConstants.MaxSeqLen}, the evaluation contract)" }.AtLeastOne();
        var cache = new Option<string?>("--cache") { Description = "Cache folder with data/ and tokenizer/ (see prepare)" };
        var steps = new Option<int?>("--steps") { Description = "Run exactly N optimizer steps, the schedules following step / N instead of the clock (an equal-step comparison of two configurations of different speed); --time-budget is then not used" }.AtLeastOne();
        var save = new Option<string?>("--save") { Description = "Write the trained weights to this .safetensors file (see sample)" };
        var saveOptimizer = new Option<string?>("--save-optimizer")
        {
            Description = "With --save: also write the optimizer's state (AdamW moments, Muon momentum and second moments, the step count) to this "
                + ".safetensors file, so that `parity --train-steps --optimizer-state` continues the run",
        };
        var device = new Option<string>("--device") { Description = "gpu, or cpu for a tiny run of a reduced configuration on the fp64 CPU reference", DefaultValueFactory = _ => "gpu" };
        device.AcceptOnlyFromAmong("gpu", "cpu");
        var set = KnobOptions.CreateSetOption();
        var command = new Command("train", "Train for the time budget (GPU, or a tiny CPU run with --device cpu), evaluate val_bpb and print the summary block. "
            + "Any knob of src/Runner/Hyperparameters.cs can be set for one run with --set Name=Value (repeatable; `autoresearch knobs` lists them); "
            + "--depth, --device-batch and --total-batch are shortcuts for Depth, DeviceBatchSize and TotalBatchSize.")
        {
            budget, steps, depth, deviceBatch, totalBatch, evalTokens, seqLen, cache, save, saveOptimizer, device, set,
        };
        command.SetAction((parse, token) =>
        {
            bool onCpu = parse.GetValue(device) == "cpu";
            bool Given(Option option) => parse.GetResult(option) is { Implicit: false };
            if (!onCpu && Given(seqLen))
                throw new ArgumentException($"--seq-len is for --device cpu only: the GPU run uses T = {ExperimentConstants.MaxSeqLen} (the evaluation contract)");
            // Each knob: the value given (a shortcut or --set), else the GPU baseline, or with --device cpu the reduced configuration.
            int t = Given(seqLen) ? parse.GetValue(seqLen) : onCpu ? CpuTrainingDefaults.SeqLen : ExperimentConstants.MaxSeqLen;
            var start = onCpu ? Hyperparameters.Default with { Depth = CpuTrainingDefaults.Depth, DeviceBatchSize = CpuTrainingDefaults.DeviceBatch } : Hyperparameters.Default;
            var shortcuts = new List<KnobOptions.Shortcut>();
            if (Given(depth))
                shortcuts.Add(new("--depth", nameof(Hyperparameters.Depth), $"{parse.GetValue(depth)}"));
            if (Given(deviceBatch))
                shortcuts.Add(new("--device-batch", nameof(Hyperparameters.DeviceBatchSize), $"{parse.GetValue(deviceBatch)}"));
            if (Given(totalBatch))
                shortcuts.Add(new("--total-batch", nameof(Hyperparameters.TotalBatchSize), $"{parse.GetValue(totalBatch)}"));
            var sets = parse.GetValue(set) ?? [];
            var h = KnobOptions.Resolve(start, shortcuts, sets);
            if (onCpu && !Given(totalBatch) && !KnobOptions.Sets(sets, nameof(Hyperparameters.TotalBatchSize)))
            {
                // The CPU default: one micro-batch per step, which TotalBatchSize (an int) must be able to hold.
                long tokens = (long)h.DeviceBatchSize * t;
                if (tokens > int.MaxValue)
                    throw new ArgumentException($"--device-batch {h.DeviceBatchSize} × --seq-len {t} = {tokens} tokens a step, more than TotalBatchSize holds ({int.MaxValue}): lower one of them");
                h = (h with { TotalBatchSize = (int)tokens }).Validate();
            }
            long eval = Given(evalTokens) ? parse.GetValue(evalTokens) : onCpu ? CpuTrainingDefaults.EvalTokens : ExperimentConstants.EvalTokens;
            if (Given(steps) && Given(budget))
                throw new ArgumentException("--steps and --time-budget exclude each other: --steps N runs N steps whatever they take");
            var request = new Request(h, onCpu, t, parse.GetValue(budget), eval, CachePaths.From(parse.GetValue(cache)), parse.GetValue(save))
            {
                Steps = parse.GetValue(steps),
                SaveOptimizerPath = parse.GetValue(saveOptimizer),
            };
            return Task.FromResult(Run(request, Console.Out, Console.Error, token));
        });
        return command;
    }

    /// <summary>
    /// Runs one training: returns 0, <see cref="TrainingLoop.FastFailExitCode"/>, or <see cref="InterruptedExitCode"/> (143 for
    /// SIGTERM) when <paramref name="cancel"/> fires (one line on <paramref name="error"/>, no summary). Other failures throw.
    /// </summary>
    public static int Run(Request request, TextWriter output, TextWriter error, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var total = Stopwatch.StartNew();
        var h = request.Hyperparameters;
        if (request.SaveOptimizerPath is not null && request.SavePath is null)
            throw new ArgumentException("--save-optimizer needs --save: the optimizer's state belongs to the weights it was saved with");
        int t = request.SeqLen;
        if (!request.OnCpu && t != ExperimentConstants.MaxSeqLen)
            throw new ArgumentException($"the GPU run uses T = {ExperimentConstants.MaxSeqLen} (the evaluation contract), not {t}");
        TrainingClock.GradientAccumulationSteps(h.TotalBatchSize, h.DeviceBatchSize, t); // a batch that does not divide fails before anything loads
        h.Shape(ExperimentConstants.VocabSize, t); // so does a shape the knobs cannot build (e.g. ShortWindow beyond T)
        if (!OptionChecks.IsPositiveFinite(request.BudgetSeconds))
            throw new ArgumentException($"--time-budget must be a positive, finite number of seconds; got {request.BudgetSeconds}");
        if (request.EvalTokens < 1)
            throw new ArgumentException($"--eval-tokens must be at least 1; got {request.EvalTokens}");
        using var cacheLock = CacheLock.ForReading(request.Cache); // no prepare replaces the data during the run
        var tokenizer = TokenizerFiles.Load(request.Cache.Tokenizer);
        // Pre-tokenized shards (prepare writes them; the loader writes any that are missing or stale on its first pass).
        var tokenizerHash = TokenizerFiles.ContentHash(request.Cache.Tokenizer);
        var tokenCache = new ShardTokenCache(request.Cache.Tokens, tokenizer, tokenizerHash);
        var (trainShards, validationShard) = ParquetShards.List(request.Cache.Data);
        TrainPreflight.Check(tokenizer, request.Cache.Tokenizer, request.SavePath, validationShard, tokenCache);
        TrainPreflight.CheckOptimizerStatePath(request.SaveOptimizerPath, (request.SavePath, "--save"));

        var shape = h.Shape(tokenizer.VocabSize, t);
        var settings = h.Optimizer(shape.ModelDim);
        output.WriteLine($"shape: {shape.Describe()}");
        if (Knobs.Changed(h) is { Count: > 0 } changed)
            output.WriteLine($"knobs: {string.Join(' ', changed)} (the rest at their defaults)");
        if (request.OnCpu)
        {
            output.WriteLine($"cpu: a reduced configuration on the fp64 CPU reference, not comparable with GPU runs: depth {h.Depth}, width {shape.ModelDim} "
                + $"({shape.Heads} head of {shape.HeadDim}), T {t}, {h.DeviceBatchSize} rows per micro-batch, {h.TotalBatchSize} tokens per step, "
                + $"vocabulary {shape.VocabSize}, {request.EvalTokens} evaluation tokens");
            if (request.SavePath is not null)
                output.WriteLine($"cpu: sample the saved weights with `autoresearch sample --checkpoint {request.SavePath} --seq-len {t} --prompt ...`");
        }
        ITrainer trainer;
        double trainerBegan = total.Elapsed.TotalSeconds;
        try
        {
            trainer = CreateTrainer(request, shape, settings, cancel);
        }
        catch (DeviceOutOfMemoryException e)
        {
            throw new InvalidOperationException(OutOfMemoryMessage(e, h.DeviceBatchSize, h.RecomputesMlp), e);
        }
        using (trainer)
        {
            var loop = new TrainingLoop(trainer, h, output)
            {
                AssumedFlopsPerSecond = request.OnCpu ? DataRepetition.CpuFlopsPerSecond : DataRepetition.GpuFlopsPerSecond,
                TrainerSetUp = (trainerBegan, total.Elapsed.TotalSeconds),
            };
            try
            {
                return loop.Run(tokenizer, trainShards, validationShard, request.BudgetSeconds, request.EvalTokens, request.SavePath, total, cancel, tokenCache,
                    Convert.ToHexStringLower(tokenizerHash), request.Steps, request.SaveOptimizerPath);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                output.WriteLine();
                output.Flush();
                var signal = TerminationSignals.Received;
                error.WriteLine($"interrupted{(signal is { } s ? " by " + TerminationSignals.Describe(s) : "")} at step {loop.Step}; no summary written");
                return TerminationSignals.ExitCode(signal);
            }
            catch (DeviceOutOfMemoryException e)
            {
                throw new InvalidOperationException(OutOfMemoryMessage(e, h.DeviceBatchSize, h.RecomputesMlp), e);
            }
        }
    }

    /// <summary>The model and optimizer of the request's device, initialised from the Seed knob.</summary>
    public static ITrainer CreateTrainer(Request request, ModelShape shape, OptimizerSettings settings, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var h = request.Hyperparameters;
        return request.OnCpu
            ? new CpuTrainer(shape, h.DeviceBatchSize, settings, h.Seed, cancel)
            : GpuTrainer.Create(shape, h.DeviceBatchSize, settings, h.Seed, request.Cache.Kernels, h.RecomputesMlp);
    }

    /// <summary>
    /// The allocation that failed, what was free, and the knobs to turn: --set Recompute=mlp when the activations are all kept,
    /// a smaller --device-batch (or --depth at 1 row).
    /// </summary>
    public static string OutOfMemoryMessage(DeviceOutOfMemoryException e, int deviceBatch, bool recomputesMlp = false)
    {
        ArgumentNullException.ThrowIfNull(e);
        string advice = deviceBatch > 1
            ? $"lower --device-batch (now {deviceBatch}; --device-batch {deviceBatch / 2} keeps the total batch with twice the accumulation steps)"
            : "--device-batch is already 1: lower --depth";
        if (!recomputesMlp)
            advice = $"{GpuTrainer.RecomputeAdvice}, or {advice}";
        return $"{e.Message}: {advice}";
    }
}

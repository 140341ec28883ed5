using System.CommandLine;
using AutoResearch.Data;
using System.Runtime.InteropServices;
using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Optim;
using AutoResearch.Optim.Gpu;
using AutoResearch.Optim.Reference;
using AutoResearch.Runner.Training;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch parity`: the loss and every parameter's gradient for a given checkpoint and token batch, written as
/// safetensors ("loss" plus the parameter names), on the GPU or with --device cpu on the fp64 reference, so any other
/// implementation can be compared with ours. The shape comes from the checkpoint (<see cref="CheckpointShape"/>); for an
/// older checkpoint that does not record it, --seq-len, --window-pattern and --set describe it. With --train-steps K it runs
/// K whole training steps instead (forward, backward, optimizer: <see cref="RunTrainSteps"/>) and writes the final weights and
/// the per-step losses.
/// </summary>
public static class ParityCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<FileInfo>("--checkpoint") { Description = "Model weights (.safetensors, reference names)", Required = true };
        var tokens = new Option<FileInfo>("--tokens") { Description = "Token rows: int32 little-endian, shape B × (T+1)", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "Where to write the loss and gradients (.safetensors)", Required = true };
        var device = new Option<string>("--device") { Description = "gpu or cpu", DefaultValueFactory = _ => "gpu" };
        device.AcceptOnlyFromAmong("gpu", "cpu");
        var seqLen = new Option<int?>("--seq-len") { Description = "T: tokens per row before the extra target token (default: the checkpoint's; 2048 for one that does not record it)" }.AtLeastOne();
        var pattern = new Option<string?>("--window-pattern") { Description = $"Attention windows per layer (S short, L full; the last layer is L; default: the checkpoint's; {Hyperparameters.Default.WindowPattern} for one that does not record it)" };
        var set = KnobOptions.CreateSetOption();
        set.Description = "Describe a checkpoint that does not record its shape: --set Name=Value, repeatable (e.g. --set HeadDim=64 --set KvHeads=2); "
            + "for one that does, a value other than the recorded one is refused. `autoresearch knobs` lists the knobs";
        set.Description += ". With --train-steps, the optimizer's knobs (learning rates, betas, WeightDecay, Precision, the schedule ratios) "
            + "may be set too; they start from the checkpoint's recorded values";
        var trainSteps = new Option<int?>("--train-steps")
        {
            Description = "Run K whole training steps (forward, backward, optimizer) instead: the token rows split evenly into K steps of one "
                + "micro-batch each; write the final weights (reference names) and the per-step losses ('losses')",
        }.AtLeastOne();
        var progressStep = new Option<double>("--progress-step")
        {
            Description = "With --train-steps: step i runs the schedules (lr multiplier, Muon weight decay) at progress (--start-step + i) × this, and the Muon momentum of step --start-step + i",
            DefaultValueFactory = _ => 0,
        };
        var against = new Option<FileInfo?>("--against")
        {
            Description = "With --train-steps: another run's output (e.g. --device cpu's) to compare with: per tensor, the cosine and the norm ratio of the "
                + "weight change from the checkpoint; exits 1 when a tensor's cosine is below 0.99 or its norm ratio is off by more than 2 %",
        };
        var perturb = new Option<double>("--perturb")
        {
            Description = "With --train-steps: multiply every starting weight by 1 + this × u (u uniform, mean 0, RMS 1; --perturb-seed): run it beside "
                + "an unperturbed run and --against gives the comparison's noise floor, how far two runs apart by this much in their inputs end up. "
                + "With Precision=reference the bf16 parameters (wte, the value embeddings) are rounded back to bf16 at the start, which undoes a "
                + "perturbation smaller than half their rounding step: the fp32 ones carry it",
            DefaultValueFactory = _ => 0,
        };
        var perturbSeed = new Option<int>("--perturb-seed") { Description = "With --perturb: the seed of the factors", DefaultValueFactory = _ => 1 };
        var optimizerState = new Option<FileInfo?>("--optimizer-state")
        {
            Description = "With --train-steps: continue from this optimizer state (`train --save-optimizer`, or this command's --save-optimizer) instead of "
                + "a fresh one: AdamW's moments and step count, Muon's momentum and NorMuon's second moments. The schedules still follow --start-step "
                + "and --progress-step, not the state's step",
        };
        var startStep = new Option<int>("--start-step")
        {
            Description = "With --train-steps: number the steps from this one, so step i runs the schedules at progress (this + i) × --progress-step "
                + "(progress past 1 counts as 1) and the Muon momentum of step this + i (to continue an earlier --train-steps run, give its start step "
                + "plus its K)",
            DefaultValueFactory = _ => 0,
        };
        startStep.Require(value => value >= 0, value => $"--start-step must be 0 or more; got {value}");
        var saveOptimizer = new Option<FileInfo?>("--save-optimizer")
        {
            Description = "With --train-steps: also write the optimizer's state after the K steps to this .safetensors file",
        };
        var command = new Command("parity", "Write the loss and every gradient for a checkpoint and a token batch, or with --train-steps K the weights after K training steps (GPU or --device cpu).")
        {
            checkpoint, tokens, output, device, seqLen, pattern, set, trainSteps, progressStep, against, perturb, perturbSeed, optimizerState, startStep,
            saveOptimizer,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(trainSteps) is int k)
            {
                if (parse.GetValue(against) is { } earlier)
                    CheckAgainst(earlier.FullName, parse.GetRequiredValue(output).FullName);
                var losses = RunTrainSteps(parse.GetRequiredValue(checkpoint).FullName, parse.GetRequiredValue(tokens).FullName, parse.GetRequiredValue(output).FullName,
                    parse.GetValue(device) == "cpu", k, parse.GetValue(progressStep), parse.GetValue(seqLen), parse.GetValue(pattern), parse.GetValue(set) ?? [],
                    parse.GetValue(perturb), parse.GetValue(perturbSeed), parse.GetValue(optimizerState)?.FullName, parse.GetValue(startStep),
                    parse.GetValue(saveOptimizer)?.FullName).Losses;
                Console.WriteLine($"losses {string.Join(", ", losses.Select(l => l.ToString("F6", System.Globalization.CultureInfo.InvariantCulture)))}; "
                    + $"weights after {k} steps written to {parse.GetRequiredValue(output).FullName}");
                if (parse.GetValue(optimizerState) is { } statePath && OptimizerState.ReadStep(statePath.FullName) is var saved && saved != parse.GetValue(startStep))
                    Console.WriteLine($"note: the optimizer state is from step {saved}; the schedules ran from step {parse.GetValue(startStep)} (--start-step)");
                if (parse.GetValue(against) is { } other)
                {
                    var rows = CompareSteps(parse.GetRequiredValue(checkpoint).FullName, other.FullName, parse.GetRequiredValue(output).FullName);
                    Console.WriteLine($"weight change against {other.FullName} (cosine ≥ {MinCosine}, norm ratio within {MaxNormRatioError:P0}):");
                    foreach (var r in rows)
                        Console.WriteLine($"  {r.Name,-40} cosine {r.Cosine:F5}  norm ratio {r.NormRatio:F4}{(r.Agrees ? "" : "  <-- off")}");
                    Console.WriteLine($"{rows.Count(r => r.Agrees)} of {rows.Count} tensors agree; worst cosine {rows.Min(r => r.Cosine):F5}, "
                        + $"norm ratios {rows.Min(r => r.NormRatio):F4}–{rows.Max(r => r.NormRatio):F4}");
                    return rows.All(r => r.Agrees) ? 0 : 1;
                }
                return 0;
            }
            if (parse.GetResult(against) is { Implicit: false })
                throw new ArgumentException("--against applies to --train-steps only");
            if (parse.GetResult(progressStep) is { Implicit: false })
                throw new ArgumentException("--progress-step applies to --train-steps only");
            if (parse.GetResult(perturb) is { Implicit: false } || parse.GetResult(perturbSeed) is { Implicit: false })
                throw new ArgumentException("--perturb and --perturb-seed apply to --train-steps only");
            foreach (var option in new Option[] { optimizerState, startStep, saveOptimizer })
            {
                if (parse.GetResult(option) is { Implicit: false })
                    throw new ArgumentException($"{option.Name} applies to --train-steps only");
            }
            var (loss, _) = Run(parse.GetRequiredValue(checkpoint).FullName, parse.GetRequiredValue(tokens).FullName, parse.GetRequiredValue(output).FullName,
                parse.GetValue(device) == "cpu", parse.GetValue(seqLen), parse.GetValue(pattern), parse.GetValue(set) ?? []);
            Console.WriteLine($"loss {loss:F6}; gradients written to {parse.GetRequiredValue(output).FullName}");
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Computes and writes the loss and gradients; returns the loss and the gradients (by name, fp32). seqLen, windowPattern
    /// and sets: null or empty to take the checkpoint's (see <see cref="CheckpointShape"/>). The shape is settled before any GPU work.
    /// </summary>
    public static (double Loss, Dictionary<string, float[]> Gradients) Run(string checkpointPath, string tokensPath, string outputPath, bool onCpu,
        int? seqLen = null, string? windowPattern = null, IReadOnlyList<string>? sets = null)
    {
        CheckOutputPath(outputPath, (checkpointPath, "--checkpoint"), (tokensPath, "--tokens"));
        var (recomputeMlp, shapeSets) = TakeRecompute(sets ?? []);
        // The optimizer's and the schedules' knobs do not touch the loss or a gradient: here they could only be ignored.
        if (shapeSets.FirstOrDefault(a => TrainingKnobs.Contains(Knobs.Find(Knobs.Split(a).Name).Name)) is { } training)
        {
            throw new ArgumentException($"--set {training} sets the optimizer or its schedule, which parity runs only with --train-steps K: "
                + "leave it out for the loss and gradients, or add --train-steps");
        }
        var tensors = SafeTensors.Read(checkpointPath);
        var shape = CheckpointShape.Resolve(checkpointPath, tensors, ModelCheckpoint.ReadInfo(checkpointPath), seqLen, windowPattern, shapeSets);
        var parameters = ModelCheckpoint.Load(checkpointPath, shape);
        var (inputs, targets, batch) = ReadTokens(tokensPath, shape.SeqLen, shape.VocabSize);
        double loss;
        var gradients = new Dictionary<string, float[]>(StringComparer.Ordinal);
        if (onCpu)
        {
            var model = new CpuGpt(shape);
            foreach (var (name, values) in parameters)
                values.CopyTo(model.Parameters[name], 0);
            var grads = model.NewGradients();
            loss = model.ForwardBackward(inputs, targets, batch, grads).Loss;
            foreach (var (name, g) in grads)
                gradients[name] = g.Select(v => (float)v).ToArray();
        }
        else
        {
            using var gpu = new GpuRun(shape, batch, parameters, recomputeMlp);
            loss = gpu.LossAndGradients(inputs, targets);
            foreach (var (name, _, _) in shape.ParameterShapes())
                gradients[name] = gpu.Model.Parameters.Download(gpu.Model.Parameters.Gradients, name);
        }
        var output = new List<SafeTensor> { new("loss", "F32", [1], [(float)loss]) };
        foreach (var (name, rows, cols) in shape.ParameterShapes())
            output.Add(new SafeTensor(name, "F32", cols == 1 && name.EndsWith("lambdas", StringComparison.Ordinal) ? [rows] : [rows, cols], gradients[name]));
        SafeTensors.Write(outputPath, output, new Dictionary<string, string> { ["device"] = onCpu ? "cpu" : "gpu" });
        return (loss, gradients);
    }

    /// <summary>
    /// The Recompute knob among the --set assignments (it changes where the GPU keeps memory, not the function: the GPU run
    /// honours it, the CPU ignores it), and the other assignments.
    /// </summary>
    private static (bool RecomputeMlp, List<string> Others) TakeRecompute(IReadOnlyList<string> sets)
    {
        var recompute = sets.Where(a => Knobs.Find(Knobs.Split(a).Name).Name == nameof(Hyperparameters.Recompute)).ToList();
        var h = Knobs.Apply(Hyperparameters.Default, recompute).Validate();
        // Where, not Except: a set repeated (the last one wins) must stay repeated.
        return (h.RecomputesMlp, sets.Where(a => !recompute.Contains(a)).ToList());
    }

    /// <summary>The knobs that set the optimizer and the schedules, not the shape: what --set may change with --train-steps.</summary>
    public static IReadOnlySet<string> TrainingKnobs { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        nameof(Hyperparameters.EmbeddingLr), nameof(Hyperparameters.UnembeddingLr), nameof(Hyperparameters.MatrixLr), nameof(Hyperparameters.ScalarLr),
        nameof(Hyperparameters.AdamBeta1), nameof(Hyperparameters.AdamBeta2), nameof(Hyperparameters.WeightDecay), nameof(Hyperparameters.Precision),
        nameof(Hyperparameters.WarmupRatio), nameof(Hyperparameters.WarmdownRatio), nameof(Hyperparameters.FinalLrFrac),
    };

    /// <summary>
    /// K training steps from a checkpoint: the token rows split evenly into K micro-batches, step i on rows [i·B/K, (i+1)·B/K)
    /// with the mean loss over its scored targets, the lr multiplier and Muon weight decay at progress min(i × progressStep, 1)
    /// and the Muon momentum of step i (SPEC §7), then the optimizer (the GPU's, or on the CPU the fp64 reference model and
    /// optimizer rounding to bf16 where the GPU stores bf16: <see cref="CpuGpt.RoundActivationsToBf16"/>, and the
    /// orthogonalisation like the GPU). Writes the final weights under the reference names and "losses" [K]; returns both.
    /// With <paramref name="optimizerStatePath"/> the optimizer continues from that state (<see cref="OptimizerState"/>) instead of
    /// a fresh one; <paramref name="startStep"/> numbers the steps from S (progress (S + i) × progressStep, the momentum of step
    /// S + i); <paramref name="saveOptimizerPath"/> receives the state after the K steps.
    /// </summary>
    public static (double[] Losses, Dictionary<string, float[]> Weights) RunTrainSteps(string checkpointPath, string tokensPath, string outputPath, bool onCpu,
        int steps, double progressStep = 0, int? seqLen = null, string? windowPattern = null, IReadOnlyList<string>? sets = null, double perturb = 0,
        int perturbSeed = 1, string? optimizerStatePath = null, int startStep = 0, string? saveOptimizerPath = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(startStep);
        if (startStep > int.MaxValue - steps)
            throw new ArgumentException($"--start-step {startStep} is too large: the last step's number must fit in an int");
        if (!(progressStep >= 0) || double.IsInfinity(progressStep))
            throw new ArgumentException($"--progress-step must be a finite non-negative number; got {progressStep}");
        if (!(perturb >= 0 && perturb < 0.1))
            throw new ArgumentException($"--perturb must be a relative size in [0, 0.1); got {perturb}");
        CheckOutputPath(outputPath, (checkpointPath, "--checkpoint"), (tokensPath, "--tokens"), (optimizerStatePath, "--optimizer-state"));
        var (recomputeMlp, all) = TakeRecompute(sets ?? []);
        var trainingSets = all.Where(a => TrainingKnobs.Contains(Knobs.Find(Knobs.Split(a).Name).Name)).ToList();
        var shapeSets = all.Where(a => !trainingSets.Contains(a)).ToList(); // not Except, which drops repeats and so changes which one is last
        var tensors = SafeTensors.Read(checkpointPath);
        var info = ModelCheckpoint.ReadInfo(checkpointPath);
        var shape = CheckpointShape.Resolve(checkpointPath, tensors, info, seqLen, windowPattern, shapeSets);
        var h = Hyperparameters.Default;
        foreach (var (name, value) in info.Knobs.Where(kv => TrainingKnobs.Contains(kv.Key)))
            h = Knobs.With(h, name, value);
        h = Knobs.Apply(h, trainingSets).Validate();
        var settings = h.Optimizer(shape.ModelDim);
        OptimizerState? state = null;
        if (optimizerStatePath is not null)
        {
            state = OptimizerState.Load(optimizerStatePath);
            state.CheckMatches(shape, settings, optimizerStatePath);
        }
        TrainPreflight.CheckOptimizerStatePath(saveOptimizerPath, (outputPath, "--out"), (checkpointPath, "--checkpoint"), (tokensPath, "--tokens"));
        var parameters = ModelCheckpoint.Load(checkpointPath, shape);
        if (perturb > 0)
            Perturb(parameters, perturb, perturbSeed, shape);
        var (inputs, targets, rows) = ReadTokens(tokensPath, shape.SeqLen, shape.VocabSize);
        if (rows % steps != 0)
            throw new ArgumentException($"--train-steps {steps}: token file '{tokensPath}' holds {rows} rows, which do not split evenly into {steps} steps");
        int batch = rows / steps, n = batch * shape.SeqLen;
        var schedule = Enumerable.Range(0, steps).Select(i =>
        {
            double progress = Math.Min((startStep + i) * progressStep, 1.0);
            return (Lr: TrainingSchedule.LearningRateMultiplier(progress, h.WarmupRatio, h.WarmdownRatio, h.FinalLrFrac),
                Momentum: TrainingSchedule.MuonMomentum(startStep + i), Decay: TrainingSchedule.MuonWeightDecay(progress, h.WeightDecay));
        }).ToArray();
        var losses = new double[steps];
        var weights = new Dictionary<string, float[]>(StringComparer.Ordinal);
        OptimizerState? finalState;
        if (onCpu)
        {
            // The CPU rounds where the GPU stores bf16 (activations, the orthogonalisation), as the reference does too.
            // Rounded where the GPU model would round on a Hopper GPU: the fused MLP GEMMs where they take the shape.
            var model = new CpuGpt(shape)
            {
                RoundActivationsToBf16 = true,
                FollowFusedMlp = MlpGemm.SupportsOnHopper(shape.Activation, (long)batch * shape.SeqLen, shape.ModelDim, shape.MlpHidden),
            };
            var reference = new List<ReferenceParameter>();
            foreach (var (name, rowsOf, cols) in shape.ParameterShapes())
            {
                var p = new ReferenceParameter(name, rowsOf, cols);
                parameters[name].CopyTo(p.Value, 0);
                reference.Add(p);
            }
            var optimizer = new MuonAdamWReference(reference, settings) { RoundLikeGpu = true };
            if (state is not null)
                optimizer.ImportState(state);
            foreach (var p in reference)
                model.Parameters[p.Name] = p.Value; // one array: the optimizer updates what the model reads
            for (int i = 0; i < steps; i++)
            {
                var gradients = reference.ToDictionary(p => p.Name, p => p.Gradient, StringComparer.Ordinal);
                foreach (var g in gradients.Values)
                    Array.Clear(g);
                losses[i] = model.ForwardBackward(inputs[(i * n)..((i + 1) * n)], targets[(i * n)..((i + 1) * n)], batch, gradients).Loss;
                optimizer.Step(schedule[i].Lr, schedule[i].Momentum, schedule[i].Decay); // as fp32, like the GPU's (RoundLikeGpu)
            }
            foreach (var p in reference)
                weights[p.Name] = Array.ConvertAll(p.Value, v => (float)v);
            finalState = saveOptimizerPath is null ? null : optimizer.ExportState();
        }
        else
        {
            using var gpu = new GpuRun(shape, batch, parameters, recomputeMlp);
            // In reference precision the optimizer rounds the bf16 parameters' masters; their bf16 copies are those values already.
            using var optimizer = new MuonAdamWGpu(gpu.Device, gpu.Stream, gpu.Blas, gpu.Kernels, gpu.Model.Parameters, settings);
            if (state is not null)
                optimizer.ImportState(state);
            for (int i = 0; i < steps; i++)
            {
                losses[i] = gpu.LossAndGradients(inputs[(i * n)..((i + 1) * n)], targets[(i * n)..((i + 1) * n)]);
                optimizer.Step((float)schedule[i].Lr, (float)schedule[i].Momentum, (float)schedule[i].Decay);
            }
            gpu.Stream.Synchronize();
            foreach (var (name, _, _) in shape.ParameterShapes())
                weights[name] = gpu.Model.Parameters.Download(gpu.Model.Parameters.Master, name);
            finalState = saveOptimizerPath is null ? null : optimizer.ExportState();
        }
        var output = new List<SafeTensor> { new("losses", "F32", [steps], Array.ConvertAll(losses, l => (float)l)) };
        foreach (var (name, rowsOf, cols) in shape.ParameterShapes())
            output.Add(new SafeTensor(name, "F32", cols == 1 && name.EndsWith("lambdas", StringComparison.Ordinal) ? [rowsOf] : [rowsOf, cols], weights[name]));
        SafeTensors.Write(outputPath, output, new Dictionary<string, string>
        {
            ["device"] = onCpu ? "cpu" : "gpu",
            ["train_steps"] = steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["progress_step"] = progressStep.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["precision"] = settings.Precision.Name(),
            ["perturb"] = perturb.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["perturb_seed"] = perturbSeed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["start_step"] = startStep.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["optimizer_state"] = optimizerStatePath is null ? "fresh" : $"from step {state!.Step}",
        });
        finalState?.Save(saveOptimizerPath!);
        return (losses, weights);
    }

    /// <summary>
    /// --out names a file that can be written (<see cref="TrainPreflight.CheckSavePath"/>) and is none of the command's inputs:
    /// the output is written after the work, over whatever the path holds, so a checkpoint given as --out would be replaced by
    /// its gradients. Checked before anything is read.
    /// </summary>
    public static void CheckOutputPath(string outputPath, params (string? Path, string Option)[] inputs)
    {
        ArgumentNullException.ThrowIfNull(outputPath);
        TrainPreflight.CheckSavePath(outputPath, "--out", "out.safetensors");
        foreach (var (input, option) in inputs)
        {
            if (input is not null && TrainPreflight.SamePath(outputPath, input))
                throw new ArgumentException($"--out '{outputPath}' is the {option} file; writing there would replace it: give the output a file of its own");
        }
    }

    /// <summary>
    /// --against, checked before the steps run: an earlier --train-steps output, not the --out file this run is about to write
    /// (the run would be compared with itself and always agree).
    /// </summary>
    private static void CheckAgainst(string againstPath, string outputPath)
    {
        if (TrainPreflight.SamePath(againstPath, outputPath))
            throw new ArgumentException($"--against '{againstPath}' is the --out file: this run would be compared with itself; give another run's output");
        if (!File.Exists(againstPath))
            throw new FileNotFoundException($"--against '{againstPath}' does not exist: give the output of an earlier `parity --train-steps` run", againstPath);
        if (!SafeTensors.ReadMetadata(againstPath).ContainsKey("train_steps"))
            throw new InvalidDataException($"--against '{againstPath}' was not written by parity --train-steps (its metadata has no train_steps): it holds no weights to compare");
    }

    /// <summary>
    /// w ← w·(1 + size·u) rounded to fp32, u uniform on [−√3, √3] (RMS 1), tensor by tensor in the shape's order from one seed:
    /// the same factors on the CPU and the GPU.
    /// </summary>
    public static void Perturb(IDictionary<string, double[]> parameters, double size, int seed, ModelShape shape)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(shape);
        var random = new Random(seed);
        foreach (var (name, _, _) in shape.ParameterShapes())
        {
            var values = parameters[name];
            for (int i = 0; i < values.Length; i++)
                values[i] = (float)(values[i] * (1 + size * Math.Sqrt(3) * (2 * random.NextDouble() - 1))); // fp32, as a checkpoint holds it
        }
    }

    public const double MinCosine = 0.99;

    public const double MaxNormRatioError = 0.02;

    /// <summary>One tensor's weight change in two --train-steps outputs from one checkpoint.</summary>
    public sealed record StepComparison(string Name, double Cosine, double NormRatio)
    {
        public bool Agrees => Cosine >= MinCosine && Math.Abs(NormRatio - 1) <= MaxNormRatioError;
    }

    /// <summary>
    /// Per tensor of the checkpoint, the weight change in <paramref name="actualPath"/> against that in <paramref name="expectedPath"/>
    /// (both written by --train-steps from <paramref name="checkpointPath"/>): the cosine of the two changes and ‖actual‖/‖expected‖.
    /// </summary>
    public static IReadOnlyList<StepComparison> CompareSteps(string checkpointPath, string expectedPath, string actualPath)
    {
        foreach (var path in new[] { expectedPath, actualPath })
        {
            if (!SafeTensors.ReadMetadata(path).ContainsKey("train_steps"))
                throw new InvalidDataException($"'{path}' was not written by parity --train-steps (its metadata has no train_steps): it holds no weights to compare");
        }
        var (expectedMeta, actualMeta) = (SafeTensors.ReadMetadata(expectedPath), SafeTensors.ReadMetadata(actualPath));
        // The same steps on both sides: their count, their schedules and the optimizer they started from (outputs written before
        // the last two were recorded started from step 0 with a fresh optimizer).
        foreach (var (key, missing, what) in new[] { ("train_steps", "", "steps"), ("progress_step", "", "--progress-step"), ("start_step", "0", "--start-step"),
            ("optimizer_state", "fresh", "optimizer state") })
        {
            string e = expectedMeta.GetValueOrDefault(key, missing), a = actualMeta.GetValueOrDefault(key, missing);
            if (e != a)
                throw new InvalidDataException($"'{expectedPath}' and '{actualPath}' come from different steps: {what} {e} against {a}");
        }
        var start = SafeTensors.Read(checkpointPath);
        var expected = SafeTensors.Read(expectedPath);
        var actual = SafeTensors.Read(actualPath);
        var rows = new List<StepComparison>();
        foreach (var (name, initial) in start)
        {
            if (!expected.TryGetValue(name, out var e) || !actual.TryGetValue(name, out var a))
                throw new InvalidDataException($"tensor '{name}' of checkpoint '{checkpointPath}' is missing from '{(expected.ContainsKey(name) ? actualPath : expectedPath)}'");
            var s0 = initial.Values;
            if (e.Values.Length != s0.Length || a.Values.Length != s0.Length)
                throw new InvalidDataException($"tensor '{name}' has {s0.Length} values in the checkpoint, {e.Values.Length} and {a.Values.Length} in the outputs");
            double dot = 0, ee = 0, aa = 0;
            for (int i = 0; i < s0.Length; i++)
            {
                double de = e.Values[i] - s0[i], da = a.Values[i] - s0[i];
                dot += de * da;
                ee += de * de;
                aa += da * da;
            }
            rows.Add(new StepComparison(name, ee == 0 && aa == 0 ? 1 : dot / Math.Sqrt(ee * aa), ee == 0 ? (aa == 0 ? 1 : double.PositiveInfinity) : Math.Sqrt(aa / ee)));
        }
        return rows;
    }

    /// <summary>The GPU model of one parity run on device 0, with the checkpoint's weights uploaded (and their bf16 copies).</summary>
    private sealed class GpuRun : IDisposable
    {
        public GpuRun(ModelShape shape, int batch, IReadOnlyDictionary<string, double[]> parameters, bool recomputeMlp)
        {
            Device = CudaDevice.Open(0);
            Stream = new CudaStream(Device);
            Blas = new Blas(Device, Stream);
            Kernels = new KernelCache(Device, KernelCache.DefaultKernelDirectory, CachePaths.Default().Kernels);
            Model = new GpuGpt(Device, Stream, Blas, Kernels, shape, batch, recomputeMlp: recomputeMlp);
            foreach (var (name, values) in parameters)
                Model.Parameters.Upload(name, values.Select(v => (float)v).ToArray());
            Model.Parameters.RefreshBf16(Model.Elementwise, Stream);
        }

        public CudaDevice Device { get; }
        public CudaStream Stream { get; }
        public Blas Blas { get; }
        public KernelCache Kernels { get; }
        public GpuGpt Model { get; }

        /// <summary>The mean loss over the scored targets of one batch, its gradients (zeroed first) left in the parameters' gradients.</summary>
        public double LossAndGradients(int[] inputs, int[] targets)
        {
            int scored = targets.Count(t => t >= 0);
            Model.Parameters.ZeroGradients(Stream);
            Model.Upload(inputs, targets);
            Model.ResetLossSum();
            Model.ForwardBackward(1f / scored);
            return Model.ReadLossSum() / scored;
        }

        public void Dispose()
        {
            Model.Dispose();
            Kernels.Dispose();
            Blas.Dispose();
            Stream.Dispose();
            Device.Dispose();
        }
    }

    /// <summary>Rows of T+1 int32 tokens: inputs = row[0..T), targets = row[1..T].</summary>
    public static (int[] Inputs, int[] Targets, int Batch) ReadTokens(string path, int seqLen, int vocab)
    {
        if (Directory.Exists(path))
            throw new ArgumentException($"token file '{path}' is a folder: give a file of rows of --seq-len + 1 int32 tokens");
        if (!File.Exists(path))
            throw new FileNotFoundException($"token file '{path}' does not exist", path);
        var bytes = File.ReadAllBytes(path);
        int row = seqLen + 1;
        if (bytes.Length == 0 || bytes.Length % (4 * row) != 0)
            throw new InvalidDataException($"token file '{path}' has {bytes.Length} bytes; expected a whole number of rows of {row} int32 tokens (--seq-len {seqLen})");
        var all = MemoryMarshal.Cast<byte, int>(bytes);
        int batch = all.Length / row;
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < seqLen; t++)
            {
                inputs[b * seqLen + t] = all[b * row + t];
                targets[b * seqLen + t] = all[b * row + t + 1];
            }
        }
        // Positions are the token's index in the file (row × (T+1) + column), where a hex dump or numpy would find it.
        int bad = Array.FindIndex(inputs, x => x < 0 || x >= vocab);
        if (bad >= 0)
        {
            throw new InvalidDataException($"token file '{path}': token {inputs[bad]} at position {bad / seqLen * row + bad % seqLen} is outside the vocabulary "
                + $"0..{vocab - 1}");
        }
        // A negative target is not scored; one past the vocabulary has no logit to score it with.
        int badTarget = Array.FindIndex(targets, x => x >= vocab);
        if (badTarget >= 0)
        {
            throw new InvalidDataException($"token file '{path}': target {targets[badTarget]} at position {badTarget / seqLen * row + badTarget % seqLen + 1} "
                + $"is outside the vocabulary 0..{vocab - 1} (a negative target is not scored)");
        }
        return (inputs, targets, batch);
    }
}

using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Model.Cpu;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class ParityCommandTests
{
    private static (string Checkpoint, string Tokens, CpuGpt Model, int[] Rows) Setup(ModelShape shape, int batch, int seed,
        IReadOnlyDictionary<string, string>? knobs = null)
    {
        var dir = TestGpu.NewTempDirectory("parity");
        var model = new CpuGpt(shape);
        model.InitialiseLikeSpec(seed);
        var r = new Random(seed);
        foreach (var (name, values) in model.Parameters)
        {
            for (int i = 0; i < values.Length; i++)
            {
                if (values[i] == 0)
                    values[i] = (r.NextDouble() * 2 - 1) * 0.02;
                // What the checkpoint keeps: bf16 embeddings, fp32 for the rest.
                values[i] = ModelCheckpoint.StoredAsBf16(name) ? AutoResearch.Native.Bf16.Round((float)values[i]) : (float)values[i];
            }
        }
        var checkpoint = Path.Combine(dir, "model.safetensors");
        ModelCheckpoint.Save(checkpoint, shape, model.Parameters, knobs);
        var rows = new int[batch * (shape.SeqLen + 1)];
        for (int i = 0; i < rows.Length; i++)
            rows[i] = r.Next(shape.VocabSize);
        var tokens = Path.Combine(dir, "tokens.bin");
        File.WriteAllBytes(tokens, System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.AsSpan()).ToArray());
        return (checkpoint, tokens, model, rows);
    }

    [Fact]
    public void Cpu_parity_writes_the_reference_loss_and_every_gradient()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, model, rows) = Setup(shape, 2, 21);
        var output = Path.Combine(Path.GetDirectoryName(checkpoint)!, "grads.safetensors");
        var (loss, _) = ParityCommand.Run(checkpoint, tokens, output, onCpu: true, seqLen: 8, windowPattern: "SL");

        var inputs = new int[16];
        var targets = new int[16];
        for (int b = 0; b < 2; b++)
        {
            for (int t = 0; t < 8; t++)
            {
                inputs[b * 8 + t] = rows[b * 9 + t];
                targets[b * 8 + t] = rows[b * 9 + t + 1];
            }
        }
        var grads = model.NewGradients();
        double expected = model.ForwardBackward(inputs, targets, 2, grads).Loss;
        Assert.Equal(expected, loss, 6);
        var written = SafeTensors.Read(output);
        Assert.Equal((float)expected, written["loss"].Values[0], 5);
        foreach (var (name, g) in grads)
            Numerics.AssertClose(name, written[name].Values, g, 1e-6, 21);
    }

    /// <summary>Head size 64, one kv head, swiglu: a shape the baseline's rules cannot guess from the tensors.</summary>
    private static readonly ModelShape Knobbed = ModelShape.FromKnobs(2, 64, "SL", 50, 8, headDim: 64, kvHeads: 1, activation: Activation.SwiGlu);

    private static double CpuLoss(CpuGpt model, int[] rows, int batch, int seqLen)
    {
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < seqLen; t++)
            {
                inputs[b * seqLen + t] = rows[b * (seqLen + 1) + t];
                targets[b * seqLen + t] = rows[b * (seqLen + 1) + t + 1];
            }
        }
        return model.ForwardBackward(inputs, targets, batch).Loss;
    }

    [Fact]
    public void Parity_takes_the_recorded_shape_and_refuses_options_that_contradict_it()
    {
        var knobs = Knobs.Values(Hyperparameters.Default with { HeadDim = 64, KvHeads = 1, Activation = "swiglu", WindowPattern = "SL" });
        var (checkpoint, tokens, model, rows) = Setup(Knobbed, 2, 23, knobs);
        var output = Path.Combine(Path.GetDirectoryName(checkpoint)!, "grads.safetensors");

        // No options: T, windows, head size, kv heads and activation all come from the checkpoint.
        var (loss, _) = ParityCommand.Run(checkpoint, tokens, output, onCpu: true);
        Assert.Equal(CpuLoss(model, rows, 2, 8), loss, 6);
        // Options that agree are accepted (any case, any spelling of the same number).
        Assert.Equal(loss, ParityCommand.Run(checkpoint, tokens, output, true, 8, "SSL", ["headdim=64", "SoftCap=15.0", "Activation=SwiGLU"]).Loss);

        var e = Assert.Throws<ArgumentException>(() => ParityCommand.Run(checkpoint, tokens, output, true, seqLen: 16));
        Assert.Contains($"--seq-len 16 contradicts checkpoint '{checkpoint}': it was trained with T 8", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => ParityCommand.Run(checkpoint, tokens, output, true, windowPattern: "L"));
        Assert.Contains("--window-pattern L contradicts", e.Message, StringComparison.Ordinal);
        Assert.Contains("trained as SL, the pattern gives LL", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => ParityCommand.Run(checkpoint, tokens, output, true, sets: ["matrixlr=0.1"]));
        Assert.Contains("--set matrixlr=0.1 sets the optimizer", e.Message, StringComparison.Ordinal);
        Assert.Contains("--train-steps", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => ParityCommand.Run(checkpoint, tokens, output, true, sets: ["HeadDim=128"]));
        Assert.Contains("--set HeadDim=128 contradicts", e.Message, StringComparison.Ordinal);
        Assert.Contains("trained with HeadDim=64", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parity_reads_an_older_checkpoint_by_the_baseline_rules_or_as_set_describes_it()
    {
        var (checkpoint, tokens, model, rows) = Setup(Knobbed, 2, 24);
        // What an older train --save wrote: the tensors alone.
        SafeTensors.Write(checkpoint, SafeTensors.Read(checkpoint).Values.ToList(), new Dictionary<string, string> { ["format"] = "pt" });
        var output = Path.Combine(Path.GetDirectoryName(checkpoint)!, "grads.safetensors");

        // Heads of 128 cannot hold these k and v: the tensor and both shapes are named.
        var e = Assert.Throws<InvalidDataException>(() => ParityCommand.Run(checkpoint, tokens, output, true, 8, "SL"));
        Assert.Contains("transformer.h.0.attn.c_k.weight", e.Message, StringComparison.Ordinal);
        Assert.Contains("[64, 128]", e.Message, StringComparison.Ordinal);

        var (loss, _) = ParityCommand.Run(checkpoint, tokens, output, true, 8, "SL", ["HeadDim=64", "KvHeads=1", "Activation=swiglu"]);
        Assert.Equal(CpuLoss(model, rows, 2, 8), loss, 6);
        // A knob set again takes the last value, as everywhere: HeadDim=64, not the 128 between (which cannot hold these tensors).
        var (stepLosses, _) = ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(Path.GetDirectoryName(checkpoint)!, "steps.safetensors"), true, 2,
            seqLen: 8, windowPattern: "SL", sets: ["HeadDim=64", "HeadDim=128", "HeadDim=64", "KvHeads=1", "Activation=swiglu"]);
        Assert.Equal(2, stepLosses.Length);

        // The tensors fix the depth.
        var depth = Assert.Throws<ArgumentException>(() => ParityCommand.Run(checkpoint, tokens, output, true, 8, "SL", ["Depth=3", "HeadDim=64"]));
        Assert.Contains("--set Depth=3 contradicts", depth.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Token_file_of_the_wrong_size_is_a_clear_error()
    {
        var path = Path.Combine(TestGpu.NewTempDirectory("parity"), "bad.bin");
        File.WriteAllBytes(path, new byte[4 * 10]);
        var e = Assert.Throws<InvalidDataException>(() => ParityCommand.ReadTokens(path, 8, 50));
        Assert.Contains("rows of 9 int32 tokens", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_token_file_that_is_a_folder_is_named_as_one()
    {
        var path = TestGpu.NewTempDirectory("parity");
        var e = Assert.Throws<ArgumentException>(() => ParityCommand.ReadTokens(path, 8, 50));
        Assert.Contains($"'{path}' is a folder", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_target_past_the_vocabulary_is_a_clear_error_naming_its_place_in_the_file()
    {
        var path = Path.Combine(TestGpu.NewTempDirectory("parity"), "bad-target.bin");
        var rows = new int[2 * 9];
        rows[9 + 8] = 50; // the second row's last token: only ever a target
        File.WriteAllBytes(path, System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.AsSpan()).ToArray());

        var e = Assert.Throws<InvalidDataException>(() => ParityCommand.ReadTokens(path, 8, 50));

        Assert.Contains("target 50 at position 17 is outside the vocabulary 0..49", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_out_path_that_is_an_input_or_cannot_be_written_is_refused_before_anything_is_read_or_written()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, _, _) = Setup(shape, 2, 24);
        var dir = Path.GetDirectoryName(checkpoint)!;
        var checkpointBytes = File.ReadAllBytes(checkpoint);
        var tokenBytes = File.ReadAllBytes(tokens);

        var overCheckpoint = Assert.Throws<ArgumentException>(() => ParityCommand.Run(checkpoint, tokens, checkpoint, onCpu: true));
        Assert.Contains("--out", overCheckpoint.Message, StringComparison.Ordinal);
        Assert.Contains("is the --checkpoint file", overCheckpoint.Message, StringComparison.Ordinal);
        var overTokens = Assert.Throws<ArgumentException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, tokens, true, 1));
        Assert.Contains("is the --tokens file", overTokens.Message, StringComparison.Ordinal);
        Assert.Equal(checkpointBytes, File.ReadAllBytes(checkpoint));
        Assert.Equal(tokenBytes, File.ReadAllBytes(tokens));

        var missingFolder = Path.Combine(dir, "no-such-folder", "grads.safetensors");
        var (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", missingFolder, "--device", "cpu");
        Assert.Equal(CliErrors.FailureExitCode, exit);
        Assert.StartsWith("autoresearch: error: --out ", stderr, StringComparison.Ordinal);
        Assert.Contains("does not exist", stderr, StringComparison.Ordinal);
        (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", dir, "--device", "cpu");
        Assert.Equal(CliErrors.FailureExitCode, exit);
        Assert.Contains("is a folder", stderr, StringComparison.Ordinal);

        // --against the very file this run writes would compare the run with itself: refused before the steps run.
        var output = Path.Combine(dir, "steps.safetensors");
        (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", output, "--device", "cpu",
            "--train-steps", "1", "--against", output);
        Assert.Equal(CliErrors.FailureExitCode, exit);
        Assert.Contains("--against", stderr, StringComparison.Ordinal);
        Assert.Contains("compared with itself", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
        (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", output, "--device", "cpu",
            "--train-steps", "1", "--against", checkpoint);
        Assert.Equal(CliErrors.FailureExitCode, exit);
        Assert.Contains("was not written by parity --train-steps", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-8")]
    public void Parity_with_a_seq_len_below_one_is_refused_naming_the_flag(string seqLen)
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, _, _) = Setup(shape, 2, 23);
        var output = Path.Combine(Path.GetDirectoryName(checkpoint)!, "grads.safetensors");

        var (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", output, "--device", "cpu",
            "--seq-len", seqLen, "--window-pattern", "SL");

        Assert.NotEqual(0, exit);
        Assert.StartsWith("autoresearch: error: --seq-len ", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [GpuFact]
    public void Gpu_and_cpu_parity_agree_through_the_command()
    {
        var shape = ModelShape.FromKnobs(2, 128, "SL", 256, 128);
        var (checkpoint, tokens, _, _) = Setup(shape, 2, 22);
        var dir = Path.GetDirectoryName(checkpoint)!;
        var (cpuLoss, cpuGrads) = ParityCommand.Run(checkpoint, tokens, Path.Combine(dir, "cpu.safetensors"), true, 128, "SL");
        var (gpuLoss, gpuGrads) = ParityCommand.Run(checkpoint, tokens, Path.Combine(dir, "gpu.safetensors"), false, 128, "SL");
        Assert.Equal(cpuLoss, gpuLoss, 1e-2 * cpuLoss);
        foreach (var (name, g) in cpuGrads)
            Numerics.AssertClose(name, gpuGrads[name], g.Select(v => (double)v).ToArray(), 5e-2, 22);
    }

    [Fact]
    public void Cpu_train_steps_run_the_model_and_optimizer_with_the_schedules_of_each_step()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, model, rows) = Setup(shape, 4, 31);
        var output = Path.Combine(Path.GetDirectoryName(checkpoint)!, "steps.safetensors");
        var (losses, weights) = ParityCommand.RunTrainSteps(checkpoint, tokens, output, onCpu: true, steps: 2, progressStep: 0.75, sets: ["MatrixLr=0.02", "Precision=fp32"]);

        // By hand: rows 0–1 then 2–3; step 0 at progress 0 (lr × 1, wd 0.2, momentum 0.85), step 1 at progress 0.75
        // (halfway down the warm-down: lr × 0.5, wd 0.05, momentum of step 1).
        model.RoundActivationsToBf16 = true; // as the command's CPU path rounds
        var reference = shape.ParameterShapes().Select(p => new Optim.Reference.ReferenceParameter(p.Name, p.Rows, p.Cols)).ToList();
        foreach (var p in reference)
        {
            model.Parameters[p.Name].CopyTo(p.Value, 0);
            model.Parameters[p.Name] = p.Value;
        }
        var optimizer = new Optim.Reference.MuonAdamWReference(reference, new Optim.OptimizerSettings(shape.ModelDim, MatrixLearningRate: 0.02)) { RoundLikeGpu = true };
        var gradients = reference.ToDictionary(p => p.Name, p => p.Gradient, StringComparer.Ordinal);
        var expectedLosses = new double[2];
        foreach (var (step, lr, wd) in new[] { (0, 1.0, 0.2), (1, 0.5, 0.05) })
        {
            foreach (var g in gradients.Values)
                Array.Clear(g);
            var part = rows[(step * 2 * 9)..((step + 1) * 2 * 9)];
            var inputs = Enumerable.Range(0, 16).Select(i => part[i / 8 * 9 + i % 8]).ToArray();
            var targets = Enumerable.Range(0, 16).Select(i => part[i / 8 * 9 + i % 8 + 1]).ToArray();
            expectedLosses[step] = model.ForwardBackward(inputs, targets, 2, gradients).Loss;
            optimizer.Step(lr, Optim.TrainingSchedule.MuonMomentum(step), wd);
        }
        Assert.Equal(expectedLosses[0], losses[0], 9);
        Assert.Equal(expectedLosses[1], losses[1], 9);
        var written = SafeTensors.Read(output);
        Assert.Equal(expectedLosses.Select(l => (float)l), written["losses"].Values);
        Assert.Equal("0.75", SafeTensors.ReadMetadata(output)["progress_step"]);
        foreach (var p in reference)
        {
            Numerics.AssertClose(p.Name, weights[p.Name], p.Value, 1e-6, 31);
            Assert.Equal(weights[p.Name], written[p.Name].Values);
        }
        Assert.NotEqual(SafeTensors.Read(checkpoint)["transformer.h.0.attn.c_q.weight"].Values, weights["transformer.h.0.attn.c_q.weight"]);
    }

    [Fact]
    public void A_perturbed_run_starts_from_weights_moved_by_the_given_relative_size_and_is_reproducible()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, _, _) = Setup(shape, 3, 33);
        var dir = Path.GetDirectoryName(checkpoint)!;

        // The factors: each weight moved by at most √3 × size, by size in RMS, the same for a seed and other for another.
        var start = ModelCheckpoint.Load(checkpoint, shape);
        var moved = start.ToDictionary(kv => kv.Key, kv => (double[])kv.Value.Clone());
        ParityCommand.Perturb(moved, 1e-3, 5, shape);
        var relative = start.SelectMany(kv => kv.Value.Zip(moved[kv.Key], (a, b) => a == 0 ? 0 : (b - a) / a)).Where(r => r != 0).ToArray();
        Assert.All(relative, r => Assert.True(Math.Abs(r) <= Math.Sqrt(3) * 1e-3 * (1 + 1e-4), $"{r}"));
        Assert.InRange(Math.Sqrt(relative.Average(r => r * r)), 0.9e-3, 1.1e-3);
        var again = start.ToDictionary(kv => kv.Key, kv => (double[])kv.Value.Clone());
        ParityCommand.Perturb(again, 1e-3, 5, shape);
        Assert.All(moved, kv => Assert.Equal(kv.Value, again[kv.Key]));

        // Whole runs: the same perturbation gives the same weights; the comparison with the unperturbed run is close, not exact.
        string plain = Path.Combine(dir, "plain.safetensors"), p1 = Path.Combine(dir, "p1.safetensors"), p2 = Path.Combine(dir, "p2.safetensors");
        ParityCommand.RunTrainSteps(checkpoint, tokens, plain, true, 3, sets: ["Precision=reference"]);
        var (_, w1) = ParityCommand.RunTrainSteps(checkpoint, tokens, p1, true, 3, sets: ["Precision=reference"], perturb: 1e-4, perturbSeed: 2);
        var (_, w2) = ParityCommand.RunTrainSteps(checkpoint, tokens, p2, true, 3, sets: ["Precision=reference"], perturb: 1e-4, perturbSeed: 2);
        Assert.All(w1, kv => Assert.Equal(kv.Value, w2[kv.Key]));
        Assert.Equal("0.0001", SafeTensors.ReadMetadata(p1)["perturb"]);
        var rows = ParityCommand.CompareSteps(checkpoint, plain, p1);
        Assert.All(rows, r => Assert.True(r.Cosine > 0.5, $"{r.Name}: cosine {r.Cosine}"));
        Assert.Contains(rows, r => r.Cosine < 1 - 1e-9);

        Assert.Throws<ArgumentException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 3, perturb: -1e-3));
        var (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", Path.Combine(dir, "y.safetensors"),
            "--device", "cpu", "--perturb", "1e-6");
        Assert.NotEqual(0, exit);
        Assert.Contains("--perturb and --perturb-seed apply to --train-steps only", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "y.safetensors")));
    }

    [Fact]
    public void Reference_precision_keeps_the_embeddings_on_the_bf16_grid_and_bad_step_options_are_refused()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, _, _) = Setup(shape, 3, 32);
        var dir = Path.GetDirectoryName(checkpoint)!;
        var (_, weights) = ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "ref.safetensors"), true, 3, sets: ["Precision=reference"]);
        Assert.Equal("reference", SafeTensors.ReadMetadata(Path.Combine(dir, "ref.safetensors"))["precision"]);
        foreach (var name in new[] { "transformer.wte.weight", "value_embeds.1.weight" })
            Assert.All(weights[name], v => Assert.Equal(AutoResearch.Native.Bf16.Round(v), v));
        var (_, fp32) = ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "fp32.safetensors"), true, 3, sets: ["Precision=fp32"]);
        Assert.Contains(fp32["transformer.wte.weight"], v => AutoResearch.Native.Bf16.Round(v) != v);
        // The comparison of two runs' weight changes: a run agrees with itself; the two precisions move the same way, not by the same amounts everywhere.
        Assert.All(ParityCommand.CompareSteps(checkpoint, Path.Combine(dir, "ref.safetensors"), Path.Combine(dir, "ref.safetensors")),
            r => Assert.Equal((1.0, 1.0), (Math.Round(r.Cosine, 12), r.NormRatio)));
        var across = ParityCommand.CompareSteps(checkpoint, Path.Combine(dir, "fp32.safetensors"), Path.Combine(dir, "ref.safetensors"));
        Assert.All(across, r => Assert.True(r.Cosine > 0.5, $"{r.Name}: cosine {r.Cosine}"));
        // A gradient file (plain parity) has the same tensor names but no weights: refused, not compared.
        ParityCommand.Run(checkpoint, tokens, Path.Combine(dir, "grads.safetensors"), true);
        var notSteps = Assert.Throws<InvalidDataException>(() => ParityCommand.CompareSteps(checkpoint, Path.Combine(dir, "ref.safetensors"), Path.Combine(dir, "grads.safetensors")));
        Assert.Contains("was not written by parity --train-steps", notSteps.Message, StringComparison.Ordinal);

        var e = Assert.Throws<ArgumentException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 2));
        Assert.Contains("holds 3 rows, which do not split evenly into 2 steps", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "x.safetensors")));
        e = Assert.Throws<ArgumentException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 3, sets: ["Precision=bf16"]));
        Assert.Contains("Precision", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 3, sets: ["HeadDim=64"]));
        Assert.Contains("--set HeadDim=64", e.Message, StringComparison.Ordinal); // a shape knob: the checkpoint's shape stands

        var (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", Path.Combine(dir, "y.safetensors"),
            "--device", "cpu", "--progress-step", "0.1");
        Assert.NotEqual(0, exit);
        Assert.Contains("--progress-step applies to --train-steps only", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "y.safetensors")));
    }

    /// <summary>The rows of a token file from row <paramref name="first"/> on, <paramref name="count"/> of them, as a new file.</summary>
    private static string Rows(string tokens, ModelShape shape, int first, int count, string name)
    {
        int row = shape.SeqLen + 1;
        var all = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(File.ReadAllBytes(tokens));
        var path = Path.Combine(Path.GetDirectoryName(tokens)!, name);
        File.WriteAllBytes(path, System.Runtime.InteropServices.MemoryMarshal.AsBytes(all.Slice(first * row, count * row)).ToArray());
        return path;
    }

    /// <summary>A --train-steps output's weights as a checkpoint of this shape (exact for reference precision's bf16 embeddings).</summary>
    private static string AsCheckpoint(string output, ModelShape shape, string name)
    {
        var weights = SafeTensors.Read(output);
        var path = Path.Combine(Path.GetDirectoryName(output)!, name);
        ModelCheckpoint.Save(path, shape, shape.ParameterShapes().ToDictionary(p => p.Name, p => Array.ConvertAll(weights[p.Name].Values, v => (double)v)));
        return path;
    }

    [Fact]
    public void Train_steps_from_a_saved_optimizer_state_continue_exactly_as_one_longer_run()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, _, _) = Setup(shape, 4, 35);
        var dir = Path.GetDirectoryName(checkpoint)!;
        string[] sets = ["Precision=reference"];
        var (losses, weights) = ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "two.safetensors"), true, 2, 0.4, sets: sets,
            saveOptimizerPath: Path.Combine(dir, "two.state.safetensors"));

        // The same two steps as two runs: the first saves its state, the second continues from it at step 1.
        var firstOut = Path.Combine(dir, "first.safetensors");
        var (firstLoss, _) = ParityCommand.RunTrainSteps(checkpoint, Rows(tokens, shape, 0, 2, "first.bin"), firstOut, true, 1, 0.4, sets: sets,
            saveOptimizerPath: Path.Combine(dir, "first.state.safetensors"));
        var middle = AsCheckpoint(firstOut, shape, "middle.safetensors");
        var (secondLoss, secondWeights) = ParityCommand.RunTrainSteps(middle, Rows(tokens, shape, 2, 2, "second.bin"), Path.Combine(dir, "second.safetensors"),
            true, 1, 0.4, sets: sets, optimizerStatePath: Path.Combine(dir, "first.state.safetensors"), startStep: 1,
            saveOptimizerPath: Path.Combine(dir, "second.state.safetensors"));
        Assert.Equal(losses, new[] { firstLoss[0], secondLoss[0] });
        Assert.All(weights, kv => Assert.Equal(kv.Value, secondWeights[kv.Key]));
        var (whole, chained) = (Optim.OptimizerState.Load(Path.Combine(dir, "two.state.safetensors")), Optim.OptimizerState.Load(Path.Combine(dir, "second.state.safetensors")));
        Assert.Equal((2, 2), (whole.Step, chained.Step));
        Assert.Equal((Optim.OptimizerPrecision.Reference, Optim.OptimizerPrecision.Reference), (whole.Precision, chained.Precision));
        Assert.All(whole.AdamFirst, kv => Assert.Equal(kv.Value, chained.AdamFirst[kv.Key]));
        Assert.All(whole.AdamSecond, kv => Assert.Equal(kv.Value, chained.AdamSecond[kv.Key]));
        Assert.All(whole.Momentum, kv => Assert.Equal(kv.Value, chained.Momentum[kv.Key]));
        Assert.All(whole.SecondMoment, kv => Assert.Equal(kv.Value, chained.SecondMoment[kv.Key]));
        Assert.Equal("from step 1", SafeTensors.ReadMetadata(Path.Combine(dir, "second.safetensors"))["optimizer_state"]);

        // Without the state, or at step 0, the second step differs: each part matters.
        var (_, noState) = ParityCommand.RunTrainSteps(middle, Rows(tokens, shape, 2, 2, "second.bin"), Path.Combine(dir, "x.safetensors"), true, 1, 0.4,
            sets: sets, startStep: 1);
        Assert.NotEqual(weights["transformer.h.0.attn.c_q.weight"], noState["transformer.h.0.attn.c_q.weight"]);
        var (_, stepZero) = ParityCommand.RunTrainSteps(middle, Rows(tokens, shape, 2, 2, "second.bin"), Path.Combine(dir, "x.safetensors"), true, 1, 0.4,
            sets: sets, optimizerStatePath: Path.Combine(dir, "first.state.safetensors"));
        Assert.NotEqual(weights["transformer.h.0.attn.c_q.weight"], stepZero["transformer.h.0.attn.c_q.weight"]);

        // The command says when the schedules do not follow the state's step.
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", middle, "--tokens", Path.Combine(dir, "second.bin"),
            "--out", Path.Combine(dir, "cli.safetensors"), "--device", "cpu", "--train-steps", "1", "--set", "Precision=reference",
            "--optimizer-state", Path.Combine(dir, "first.state.safetensors"));
        Assert.True(exit == 0, stderr);
        Assert.Contains("note: the optimizer state is from step 1; the schedules ran from step 0 (--start-step)", stdout, StringComparison.Ordinal);

        // Outputs of different steps are not compared: here the first step of a fresh optimizer against the second of the run.
        var e = Assert.Throws<InvalidDataException>(() => ParityCommand.CompareSteps(checkpoint, firstOut, Path.Combine(dir, "second.safetensors")));
        Assert.Contains("come from different steps: --start-step 0 against 1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_optimizer_state_of_another_shape_or_kind_and_state_options_without_train_steps_are_refused()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, _, _) = Setup(shape, 2, 36);
        var dir = Path.GetDirectoryName(checkpoint)!;
        var otherShape = ModelShape.FromKnobs(1, 64, "L", 50, 8);
        var (otherCheckpoint, otherTokens, _, _) = Setup(otherShape, 2, 37);
        var otherState = Path.Combine(dir, "other.state.safetensors");
        ParityCommand.RunTrainSteps(otherCheckpoint, otherTokens, Path.Combine(dir, "other.safetensors"), true, 1, saveOptimizerPath: otherState);

        var same = Assert.Throws<ArgumentException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 1,
            saveOptimizerPath: Path.Combine(dir, "x.safetensors")));
        Assert.Contains("is the --out file", same.Message, StringComparison.Ordinal);
        var far = Assert.Throws<ArgumentException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 2,
            startStep: int.MaxValue - 1));
        Assert.Contains("--start-step 2147483646 is too large", far.Message, StringComparison.Ordinal);
        var e = Assert.Throws<InvalidDataException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 1,
            optimizerStatePath: otherState));
        Assert.Contains($"optimizer state '{otherState}' has no 'momentum_buffer.transformer.h.1.", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidDataException>(() => ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "x.safetensors"), true, 1,
            optimizerStatePath: checkpoint));
        Assert.Contains("is not an optimizer state", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "x.safetensors")));

        foreach (var option in new[] { new[] { "--optimizer-state", otherState }, ["--start-step", "3"], ["--save-optimizer", Path.Combine(dir, "s.safetensors")] })
        {
            var (exit, _, stderr) = DoctorCommandTests.RunCli(["parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", Path.Combine(dir, "y.safetensors"),
                "--device", "cpu", .. option]);
            Assert.NotEqual(0, exit);
            Assert.Contains($"{option[0]} applies to --train-steps only", stderr, StringComparison.Ordinal);
        }
        var (code, _, error) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", Path.Combine(dir, "y.safetensors"),
            "--device", "cpu", "--train-steps", "1", "--start-step", "-1");
        Assert.NotEqual(0, code);
        Assert.Contains("--start-step must be 0 or more", error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "y.safetensors")));
    }

    [GpuTheory]
    [InlineData("reference")]
    [InlineData("fp32")]
    public void Gpu_train_steps_move_every_tensor_as_the_cpu_does(string precision)
    {
        var shape = ModelShape.FromKnobs(2, 128, "SL", 256, 128);
        var (checkpoint, tokens, _, _) = Setup(shape, 3, 33);
        var dir = Path.GetDirectoryName(checkpoint)!;
        var (cpuLosses, _) = ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "cpu.safetensors"), true, 3, 0.3, sets: [$"Precision={precision}"]);
        var (gpuLosses, _) = ParityCommand.RunTrainSteps(checkpoint, tokens, Path.Combine(dir, "gpu.safetensors"), false, 3, 0.3, sets: [$"Precision={precision}"]);
        for (int i = 0; i < 3; i++)
            Assert.Equal(cpuLosses[i], gpuLosses[i], 1e-2 * cpuLosses[i]);
        var rows = ParityCommand.CompareSteps(checkpoint, Path.Combine(dir, "cpu.safetensors"), Path.Combine(dir, "gpu.safetensors"));
        Assert.Equal(SafeTensors.Read(checkpoint).Count, rows.Count);
        // The bar of ParityCommand.MinCosine (0.99) and 2 % is not met everywhere: bf16 gradient noise flips the sign of Adam's
        // first steps where a gradient is near zero, and of small Muon matrices' updates (measured here: worst 0.985, h.0 c_q).
        // The value gates (2 × 32 values, orthogonalised) move up to ~7 % apart in size. A wrong optimizer (a sign, a scale,
        // a missed step) is far outside these looser bounds.
        var off = rows.Where(r => !(r.Cosine >= 0.97 && Math.Abs(r.NormRatio - 1) <= 0.1)).ToList();
        Assert.True(off.Count == 0, $"{precision}, GPU against CPU, weight change per tensor:\n"
            + string.Join('\n', rows.Select(r => $"{r.Name}: cosine {r.Cosine:F4}, norm ratio {r.NormRatio:F4}{(off.Contains(r) ? "  <-- off" : "")}")));
    }
}

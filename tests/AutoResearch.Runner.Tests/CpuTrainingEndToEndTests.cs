using System.Buffers.Binary;
using System.Globalization;
using System.Text.RegularExpressions;
using AutoResearch.Data;
using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>
/// The whole experiment without a GPU: prepare, a tiny `train --device cpu` (shared, <see cref="CpuTrainingRun"/>), its summary,
/// `results add`, `analyze`, `sample` from its checkpoint, Ctrl-C, and the errors of a machine without a GPU or data. One class,
/// so the CPU-heavy runs do not compete with each other for the cores.
/// </summary>
public partial class CpuTrainingEndToEndTests(CpuTrainingRun run) : IClassFixture<CpuTrainingRun>
{
    [GeneratedRegex(@"^step (\d{5}) .*\| loss: ([0-9.]+) \|")]
    private static partial Regex ProgressPattern();

    [GeneratedRegex(@"overhead \(total − training\): ([0-9.]+) s = start-up ([0-9.]+) s \+ (\d+) uncounted steps ([0-9.]+) s \+ evaluation ([0-9.]+) s \+ other (-?[0-9.]+) s")]
    private static partial Regex OverheadPattern();

    [GeneratedRegex(@"start-up ([0-9.]+) s = before the trainer ([0-9.]+) s \+ trainer ([0-9.]+) s \+ loop (-?[0-9.]+) s; first step ([0-9.]+) s against a median ([0-9.]+) s of the next (\d+)")]
    private static partial Regex StartupPattern();

    private static List<(int Step, double Loss)> ProgressLosses(string stdout) =>
        stdout.Split(['\r', '\n'])
            .Select(line => ProgressPattern().Match(line))
            .Where(m => m.Success)
            .Select(m => (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)))
            .ToList();

    [Fact]
    public void Cpu_train_says_it_is_reduced_lowers_the_loss_and_prints_a_complete_summary()
    {
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {run.Stderr}\n{run.Stdout}");
        Assert.Contains($"cpu: a reduced configuration on the fp64 CPU reference, not comparable with GPU runs: depth {CpuTrainingDefaults.Depth}, width 128",
            run.Stdout, StringComparison.Ordinal);
        Assert.Contains($"T {CpuTrainingDefaults.SeqLen}", run.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("warning:", run.Stdout, StringComparison.Ordinal); // ~2 M tokens of data, a few thousand read
        Assert.DoesNotContain("epoch: 2", run.Stdout, StringComparison.Ordinal);
        Assert.Contains($"`autoresearch sample --checkpoint {run.Checkpoint} --seq-len {CpuTrainingDefaults.SeqLen} --prompt ...`", run.Stdout, StringComparison.Ordinal);

        var summary = RunSummary.ParseLog(run.Stdout, "cpu run"); // throws naming any missing key
        Assert.NotNull(summary);
        Assert.Equal(CpuTrainingDefaults.Depth, summary.Depth);
        Assert.InRange(summary.ValBpb, 0.5, 4.0);
        Assert.InRange(summary.TrainingSeconds, CpuTrainingRun.BudgetSeconds, CpuTrainingRun.BudgetSeconds + 10);
        Assert.True(summary.TotalSeconds > summary.TrainingSeconds, $"total {summary.TotalSeconds} s ≤ training {summary.TrainingSeconds} s");
        Assert.Equal(0, summary.PeakVramMb);
        Assert.InRange(summary.NumParamsMillions, 3.0, 4.0); // wte, lm_head and one value embedding of 8192 × 128, plus two blocks
        Assert.True(summary.NumSteps > ExperimentConstants.UncountedSteps, $"{summary.NumSteps} steps");
        // total − training, taken apart: start-up, the uncounted warm-up steps, the evaluation, and little else.
        var overhead = OverheadPattern().Match(run.Stdout);
        Assert.True(overhead.Success, $"no overhead line in:\n{run.Stdout}");
        double Part(int group) => double.Parse(overhead.Groups[group].Value, CultureInfo.InvariantCulture);
        Assert.Equal(summary.TotalSeconds - summary.TrainingSeconds, Part(1), 0.15);
        Assert.True(Part(2) > 0 && Part(5) > 0, overhead.Value);
        Assert.Equal(ExperimentConstants.UncountedSteps, (int)Part(3));
        Assert.True(Part(4) > 0, overhead.Value);
        Assert.InRange(Part(6), -0.2, 2.0);
        // The start-up, taken apart in turn: its parts add up to it, and the first step is set against the next ten.
        var startup = StartupPattern().Match(run.Stdout);
        Assert.True(startup.Success, $"no start-up line in:\n{run.Stdout}");
        double StartupPart(int group) => double.Parse(startup.Groups[group].Value, CultureInfo.InvariantCulture);
        Assert.Equal(Part(2), StartupPart(1), 0.05);
        Assert.Equal(StartupPart(1), StartupPart(2) + StartupPart(3) + StartupPart(4), 0.15);
        Assert.True(StartupPart(2) >= 0 && StartupPart(3) >= 0 && StartupPart(5) > 0 && StartupPart(6) > 0, startup.Value);
        Assert.Equal(ExperimentConstants.UncountedSteps - 1, (int)StartupPart(7));

        var losses = ProgressLosses(run.Stdout);
        Assert.Equal(summary.NumSteps, losses.Count);
        Assert.Equal(Enumerable.Range(0, summary.NumSteps), losses.Select(l => l.Step));
        double first = losses[0].Loss, last = losses[^1].Loss;
        Assert.InRange(first, Math.Log(8192) - 0.5, Math.Log(8192) + 0.5); // an untrained model: about ln V
        Assert.True(last < first - 1.0, $"the loss did not fall: first {first}, last {last}");
        TestContext.Current.TestOutputHelper?.WriteLine($"cpu run: {run.WallSeconds:F1} s wall, loss {first:F3} → {last:F3}\n{overhead.Value}\n{summary.Format()}");
    }

    [Fact]
    public void Results_add_and_analyze_read_the_cpu_run()
    {
        Assert.Equal(0, run.ExitCode);
        var summary = RunSummary.ParseLog(run.Stdout)!;
        using var folder = new TempFolder();
        string log = folder.File("run.log"), results = folder.File("results.tsv"), chart = folder.File("progress.png");
        File.WriteAllText(log, run.Stdout);

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("results", "add", "--status", "keep", "--description", "tiny cpu run",
            "--log", log, "--file", results, "--commit", "abc1234");
        Assert.True(exit == 0, stderr);
        string row = string.Create(CultureInfo.InvariantCulture, $"abc1234\t{summary.ValBpb:F6}\t0.0\tkeep\ttiny cpu run");
        Assert.Equal(row, stdout.Trim());
        Assert.EndsWith(row + "\n", File.ReadAllText(results), StringComparison.Ordinal);

        (exit, stdout, stderr) = DoctorCommandTests.RunCli("analyze", results, "--out", chart);
        Assert.True(exit == 0, stderr);
        Assert.Contains("tiny cpu run", stdout, StringComparison.Ordinal);
        byte[] png = File.ReadAllBytes(chart);
        Assert.Equal(ProgressChart.DefaultWidth, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        Assert.Equal((ProgressChart.DefaultWidth, ProgressChart.DefaultHeight), (bitmap.Width, bitmap.Height));
    }

    [Fact]
    public void Sample_from_the_cpu_checkpoint_is_deterministic_for_a_seed()
    {
        Assert.Equal(0, run.ExitCode);
        SampleCommand.Request Request(double temperature, int seed) => new(run.Checkpoint, "The Congress", 12, temperature, 20, seed,
            CpuTrainingDefaults.SeqLen, Hyperparameters.Default.WindowPattern, new CachePaths(run.Cache));
        var ct = TestContext.Current.CancellationToken;

        string a = SampleCommand.Run(Request(1.0, 7), TextWriter.Null, ct);
        string b = SampleCommand.Run(Request(1.0, 7), TextWriter.Null, ct);
        Assert.Equal(a, b);
        Assert.False(string.IsNullOrWhiteSpace(a), "nothing was generated");
        var seeds = Enumerable.Range(1, 4).Select(seed => SampleCommand.Run(Request(1.0, seed), TextWriter.Null, ct)).ToList();
        Assert.True(seeds.Distinct(StringComparer.Ordinal).Count() > 1, "four seeds at temperature 1 gave the same text");
        // Greedy ignores the seed.
        Assert.Equal(SampleCommand.Run(Request(0, 1), TextWriter.Null, ct), SampleCommand.Run(Request(0, 2), TextWriter.Null, ct));

        // Through the command line: the prompt, then the same continuation.
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("sample", "--checkpoint", run.Checkpoint, "--prompt", "The Congress", "--tokens", "12",
            "--temperature", "1", "--top-k", "20", "--seed", "7", "--seq-len", CpuTrainingDefaults.SeqLen.ToString(CultureInfo.InvariantCulture), "--cache", run.Cache);
        Assert.True(exit == 0, stderr);
        Assert.Equal("The Congress" + a + "\n", stdout);
        Assert.Contains("sample: depth 2, width 128, vocabulary 8192", stderr, StringComparison.Ordinal);

        // The most tokens an int holds is a long generation, not an overflow: it runs until the model ends the document or it is stopped.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            SampleCommand.Run(Request(0, 1) with { Tokens = int.MaxValue }, TextWriter.Null, stop.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    [Fact]
    public void Cpu_train_with_a_step_budget_runs_that_many_steps_in_fp32_precision()
    {
        Assert.Equal(0, run.ExitCode);
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", run.Cache, "--steps", "13", "--seq-len", "32",
            "--set", "Precision=fp32");
        Assert.True(exit == 0, $"exit {exit}: {stderr}\n{stdout}");
        Assert.Contains("budget 13 steps", stdout, StringComparison.Ordinal);
        Assert.Contains("Precision=fp32", stdout, StringComparison.Ordinal); // not the default (reference): listed among the knobs set
        Assert.Equal(13, RunSummary.ParseLog(stdout, "step-budget cpu run")!.NumSteps);

        var both = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", run.Cache, "--steps", "13", "--time-budget", "5");
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("--steps and --time-budget exclude each other", both.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Cpu_train_with_knobs_records_them_and_sample_runs_the_checkpoint_with_its_own_shape()
    {
        Assert.Equal(0, run.ExitCode);
        using var folder = new TempFolder();
        string checkpoint = folder.File("knobbed.safetensors");
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", run.Cache, "--time-budget", "1", "--seq-len", "32",
            "--set", "HeadDim=64", "--set", "KvHeads=1", "--set", "Activation=swiglu", "--set", "ValueEmbeds=all", "--set", "SoftCap=0",
            "--set", "WindowPattern=L", "--set", "seed=3", "--save", checkpoint, "--save-optimizer", folder.File("knobbed.optimizer.safetensors"));
        Assert.True(exit == 0, $"exit {exit}: {stderr}\n{stdout}");
        Assert.Contains("shape: depth 2, width 128, 2 query / 1 kv heads of 64, MLP swiglu 384, windows LL", stdout, StringComparison.Ordinal);
        Assert.Contains("HeadDim=64 KvHeads=1 Activation=swiglu WindowPattern=L ValueEmbeds=all SoftCap=0", stdout, StringComparison.Ordinal);
        Assert.Contains("Seed=3", stdout, StringComparison.Ordinal);
        var summary = RunSummary.ParseLog(stdout, "knobbed cpu run");
        Assert.NotNull(summary);

        var info = ModelCheckpoint.ReadInfo(checkpoint);
        var shape = info.Shape!;
        // The optimizer's state beside it: every buffer of this shape, after every step the run took.
        var state = Optim.OptimizerState.Load(folder.File("knobbed.optimizer.safetensors"));
        state.CheckMatches(shape, new Optim.OptimizerSettings(shape.ModelDim), "knobbed.optimizer.safetensors");
        Assert.Equal(summary.NumSteps, state.Step);
        Assert.Contains(state.AdamSecond.Values, v => v.Any(x => x > 0));
        Assert.Contains(state.Momentum.Values, v => v.Any(x => x != 0));
        Assert.Equal((64, 2, 1, Activation.SwiGlu, 0.0, 32), (shape.HeadDim, shape.Heads, shape.KvHeads, shape.Activation, shape.SoftCap, shape.SeqLen));
        Assert.Equal([true, true], shape.HasValueEmbedding);
        Assert.Equal(("swiglu", "3", "4"), (info.Knobs["Activation"], info.Knobs["Seed"], info.Knobs["DeviceBatchSize"]));
        string cacheHash = Convert.ToHexStringLower(AutoResearch.Data.Tokenizer.TokenizerFiles.ContentHash(new CachePaths(run.Cache).Tokenizer));
        Assert.Equal(cacheHash, info.TokenizerHash);

        // sample takes T and the shape from the checkpoint, and refuses a --seq-len that contradicts it.
        (exit, _, stderr) = DoctorCommandTests.RunCli("sample", "--checkpoint", checkpoint, "--prompt", "The", "--tokens", "3", "--cache", run.Cache);
        Assert.True(exit == 0, stderr);
        Assert.Contains("sample: depth 2, width 128, vocabulary 8192, T 32", stderr, StringComparison.Ordinal);
        (exit, _, stderr) = DoctorCommandTests.RunCli("sample", "--checkpoint", checkpoint, "--prompt", "The", "--seq-len", "64", "--cache", run.Cache);
        Assert.NotEqual(0, exit);
        Assert.Contains($"--seq-len 64 contradicts checkpoint '{checkpoint}': it was trained with T 32", stderr, StringComparison.Ordinal);

        // The same weights recorded as made with another tokenizer: refused, naming both.
        string other = folder.File("other-tokenizer.safetensors"), otherHash = new('0', 64);
        ModelCheckpoint.Save(other, shape, ModelCheckpoint.Load(checkpoint, shape), info.Knobs, otherHash);
        var request = new SampleCommand.Request(other, "The", 3, 0, 0, 1, SeqLen: null, WindowPattern: null, new CachePaths(run.Cache));
        var e = Assert.Throws<InvalidDataException>(() => SampleCommand.Run(request, TextWriter.Null, TestContext.Current.CancellationToken));
        Assert.Contains(otherHash, e.Message, StringComparison.Ordinal);
        Assert.Contains(cacheHash, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sample_with_bad_flags_or_missing_files_says_what_is_wrong()
    {
        using var folder = new TempFolder();
        string missing = folder.File("none.safetensors");
        var (exit, _, stderr) = DoctorCommandTests.RunCli("sample", "--checkpoint", missing, "--prompt", "x", "--cache", run.Cache);
        Assert.NotEqual(0, exit);
        Assert.Contains(missing, stderr, StringComparison.Ordinal);
        Assert.Contains("train --save", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("sample", "--checkpoint", folder.Path, "--prompt", "x", "--cache", run.Cache);
        Assert.NotEqual(0, exit);
        Assert.Contains($"'{folder.Path}' is a folder", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("sample", "--checkpoint", run.Checkpoint, "--prompt", "x", "--cache", folder.Path);
        Assert.NotEqual(0, exit);
        Assert.Contains("autoresearch prepare", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("sample", "--checkpoint", run.Checkpoint);
        Assert.NotEqual(0, exit);
        Assert.Contains("--prompt", stderr, StringComparison.Ordinal);

        var ct = TestContext.Current.CancellationToken;
        SampleCommand.Request Good() => new(run.Checkpoint, "x", 4, 0.8, 50, 1, CpuTrainingDefaults.SeqLen, "SSSL", new CachePaths(run.Cache));
        Assert.Contains("--temperature", Assert.Throws<ArgumentException>(() => SampleCommand.Run(Good() with { Temperature = -1 }, TextWriter.Null, ct)).Message, StringComparison.Ordinal);
        Assert.Contains("--top-k", Assert.Throws<ArgumentException>(() => SampleCommand.Run(Good() with { TopK = -3 }, TextWriter.Null, ct)).Message, StringComparison.Ordinal);
        Assert.Contains("--tokens", Assert.Throws<ArgumentException>(() => SampleCommand.Run(Good() with { Tokens = 0 }, TextWriter.Null, ct)).Message, StringComparison.Ordinal);
        Assert.Contains("--seq-len", Assert.Throws<ArgumentException>(() => SampleCommand.Run(Good() with { SeqLen = 0 }, TextWriter.Null, ct)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cancelling_a_cpu_train_stops_with_one_line_exit_130_and_no_summary()
    {
        var request = new TrainCommand.Request(Hyperparameters.Default with { Depth = 2, DeviceBatchSize = 2, TotalBatchSize = 2 * 32 }, OnCpu: true, SeqLen: 32,
            BudgetSeconds: 300, EvalTokens: 1024, new CachePaths(run.Cache), SavePath: null);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cancel.CancelAfter(TimeSpan.FromSeconds(4));
        var output = new StringWriter();
        var error = new StringWriter();
        var watch = System.Diagnostics.Stopwatch.StartNew();

        int exit = TrainCommand.Run(request, output, error, cancel.Token);

        Assert.Equal(TrainCommand.InterruptedExitCode, exit);
        Assert.Matches(@"^interrupted at step \d+; no summary written\r?\n$", error.ToString());
        Assert.DoesNotContain("val_bpb:", output.ToString(), StringComparison.Ordinal);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed.TotalSeconds:F1} s to stop");
        int step = int.Parse(Regex.Match(error.ToString(), @"step (\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.Equal(ProgressLosses(output.ToString()).Count, step);
    }

    [Fact]
    public void Sigint_stops_a_cpu_train_child_process_with_one_line_naming_it_and_exit_130()
    {
        using var train = CliProcess.Start("train", "--device", "cpu", "--cache", run.Cache, "--seq-len", "32", "--time-budget", "300");
        train.WaitForOutput("step 00001", TimeSpan.FromSeconds(60));

        train.Signal("INT");

        Assert.True(train.WaitForExit(TimeSpan.FromSeconds(20)), "still running 20 s after SIGINT");
        Assert.Equal(130, train.ExitCode);
        Assert.Matches(@"^interrupted by Ctrl-C \(SIGINT\) at step \d+; no summary written\n$", train.Stderr);
        Assert.DoesNotContain("val_bpb:", train.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Sigterm_is_reported_as_sigterm_with_exit_143()
    {
        using var train = CliProcess.Start("train", "--device", "cpu", "--cache", run.Cache, "--seq-len", "32", "--time-budget", "300");
        train.WaitForOutput("step 00001", TimeSpan.FromSeconds(60));

        train.Signal("TERM");

        Assert.True(train.WaitForExit(TimeSpan.FromSeconds(20)), "still running 20 s after SIGTERM");
        Assert.Equal(143, train.ExitCode);
        Assert.Matches(@"^interrupted by SIGTERM at step \d+; no summary written\n$", train.Stderr);
        Assert.DoesNotContain("Ctrl-C", train.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_ctrl_c_presses_50_ms_apart_exit_130_at_once_without_an_unhandled_exception()
    {
        for (int attempt = 0; attempt < 3; attempt++)
        {
            using var train = CliProcess.Start("train", "--device", "cpu", "--cache", run.Cache, "--seq-len", "32", "--time-budget", "300");
            train.WaitForOutput("step 00001", TimeSpan.FromSeconds(60));

            train.Signal("INT");
            Thread.Sleep(50);
            train.Signal("INT");

            Assert.True(train.WaitForExit(TimeSpan.FromSeconds(20)), "still running 20 s after two SIGINTs");
            Assert.Equal(130, train.ExitCode);
            Assert.DoesNotContain("Unhandled", train.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("Exception", train.Stderr, StringComparison.Ordinal);
            Assert.All(train.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries),
                line => Assert.Matches(@"^(interrupted by Ctrl-C \(SIGINT\) at step \d+; no summary written|autoresearch: stopped by Ctrl-C \(SIGINT\).*)$", line));
        }
    }

    [Fact]
    public void A_signal_in_the_middle_of_a_long_cpu_step_is_acted_on_within_a_second()
    {
        // One row of 4096 tokens: a step of the fp64 reference takes tens of seconds on two cores.
        using var train = CliProcess.Start("train", "--device", "cpu", "--cache", run.Cache, "--seq-len", "4096", "--device-batch", "1", "--time-budget", "300");
        train.WaitForOutput("model:", TimeSpan.FromSeconds(60));
        Thread.Sleep(1500); // inside step 0
        Assert.DoesNotContain("step 00000", train.Stdout, StringComparison.Ordinal);
        var watch = System.Diagnostics.Stopwatch.StartNew();

        train.Signal("TERM");

        Assert.True(train.WaitForExit(TimeSpan.FromSeconds(20)), "still running 20 s after SIGTERM");
        TestContext.Current.TestOutputHelper?.WriteLine($"exited {watch.Elapsed.TotalSeconds:F2} s after SIGTERM");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed.TotalSeconds:F1} s to act on SIGTERM");
        Assert.Equal(143, train.ExitCode);
        Assert.Contains("SIGTERM", train.Stderr, StringComparison.Ordinal);
        Assert.Single(train.Stderr.Trim().Split('\n'));
    }

    /// <summary>A copy of the fixture's cache (data, tokenizer, token cache) that a test may damage.</summary>
    private string CopyCache(TempFolder folder)
    {
        var copy = folder.File("cache");
        foreach (var part in (string[])["data", "tokenizer", "tokens"])
        {
            var target = Directory.CreateDirectory(Path.Combine(copy, part)).FullName;
            foreach (var file in Directory.GetFiles(Path.Combine(run.Cache, part)))
                File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }
        return copy;
    }

    private static void AssertRefusedBeforeTheFirstStep(int exit, string stdout, string stderr, params string[] expected)
    {
        Assert.NotEqual(0, exit);
        Assert.DoesNotContain("step 00000", stdout, StringComparison.Ordinal);
        Assert.StartsWith("autoresearch: error: ", stderr, StringComparison.Ordinal);
        foreach (var text in expected)
            Assert.Contains(text, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_without_the_validation_shard_refuses_before_the_first_step_instead_of_scoring_a_training_shard()
    {
        using var folder = new TempFolder();
        var cache = CopyCache(folder);
        // Two training shards and no validation shard: the last training shard must not stand in for it.
        File.Copy(Path.Combine(cache, "data", "shard_00000.parquet"), Path.Combine(cache, "data", "shard_00001.parquet"));
        File.Delete(Path.Combine(cache, "data", "shard_06542.parquet"));

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache, "--time-budget", "1");

        AssertRefusedBeforeTheFirstStep(exit, stdout, stderr, "shard_06542.parquet", "autoresearch prepare");
        Assert.DoesNotContain("val_bpb:", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_with_a_corrupt_validation_shard_refuses_before_the_first_step()
    {
        using var folder = new TempFolder();
        var cache = CopyCache(folder);
        var validation = Path.Combine(cache, "data", "shard_06542.parquet");
        File.WriteAllBytes(validation, File.ReadAllBytes(validation)[..^200]); // truncated: no Parquet footer

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache, "--time-budget", "1");

        AssertRefusedBeforeTheFirstStep(exit, stdout, stderr, validation);
    }

    [Fact]
    public void Train_with_a_tokenizer_other_than_the_contracts_8192_tokens_is_refused()
    {
        using var folder = new TempFolder();
        var cache = folder.File("cache");
        var (exit, _, stderr) = DoctorCommandTests.RunCliWith(new Dictionary<string, string> { [AutoResearch.Data.Shards.ShardDownloader.BaseUrlVariable] = LoopbackShardServer.RefusingBaseUrl().ToString() },
            "prepare", "--cache", cache, "--vocab-size", "512");
        Assert.True(exit == 0, stderr);

        (exit, var stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache, "--time-budget", "1");

        AssertRefusedBeforeTheFirstStep(exit, stdout, stderr, "512 tokens", $"{ExperimentConstants.VocabSize}", Path.Combine(cache, "tokenizer"));
    }

    [Theory]
    [InlineData("missing-folder/model.safetensors")]
    [InlineData(".")]
    public void Train_with_a_save_path_it_cannot_write_refuses_before_the_first_step(string save)
    {
        using var folder = new TempFolder();
        var path = Path.Combine(folder.Path, save);

        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", run.Cache, "--time-budget", "1", "--save", path);

        AssertRefusedBeforeTheFirstStep(exit, stdout, stderr, "--save");
        Assert.DoesNotContain("Is a directory", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_refuses_an_optimizer_state_path_without_save_or_one_it_cannot_write_before_the_first_step()
    {
        using var folder = new TempFolder();
        var (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", run.Cache, "--time-budget", "1",
            "--save-optimizer", folder.File("state.safetensors"));
        AssertRefusedBeforeTheFirstStep(exit, stdout, stderr, "--save-optimizer needs --save");

        (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", run.Cache, "--time-budget", "1",
            "--save", folder.File("model.safetensors"), "--save-optimizer", Path.Combine(folder.Path, "missing", "state.safetensors"));
        AssertRefusedBeforeTheFirstStep(exit, stdout, stderr, "--save-optimizer", "does not exist");

        (exit, stdout, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", run.Cache, "--time-budget", "1",
            "--save", folder.File("model.safetensors"), "--save-optimizer", folder.File("model.safetensors"));
        AssertRefusedBeforeTheFirstStep(exit, stdout, stderr, "is the --save file");
        Assert.False(File.Exists(folder.File("model.safetensors")));
    }

    [Fact]
    public void Train_without_a_gpu_points_at_device_cpu()
    {
        Assert.SkipWhen(GpuProbe.Available, "a GPU is present: this test checks the machine without one");
        var (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--cache", run.Cache);
        Assert.NotEqual(0, exit);
        Assert.Contains("no CUDA device found; use --device cpu for a tiny CPU run", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_without_prepared_data_names_the_missing_path_and_prepare()
    {
        using var folder = new TempFolder();
        var (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", folder.Path);
        Assert.NotEqual(0, exit);
        Assert.Contains("run `autoresearch prepare`", stderr, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(folder.Path, "tokenizer"), stderr, StringComparison.Ordinal);

        // A tokenizer but no shards: the data folder is named.
        var tokenizer = Directory.CreateDirectory(Path.Combine(folder.Path, "tokenizer")).FullName;
        foreach (var file in Directory.GetFiles(new CachePaths(run.Cache).Tokenizer))
            File.Copy(file, Path.Combine(tokenizer, Path.GetFileName(file)));
        (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", folder.Path);
        Assert.NotEqual(0, exit);
        Assert.Contains("run `autoresearch prepare`", stderr, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(folder.Path, "data"), stderr, StringComparison.Ordinal);
    }
}

using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;
using Spectre.Console;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>The knobs: every one reaches the model, the optimizer or the loop; --set and the shortcuts; the `knobs` listing.</summary>
public class KnobTests
{
    /// <summary>For each knob, a valid value other than its default. A new knob needs a line here (the walk below fails without one).</summary>
    private static readonly Dictionary<string, string> OtherValue = new(StringComparer.Ordinal)
    {
        ["Depth"] = "4",
        ["AspectRatio"] = "96",
        ["HeadDim"] = "64",
        ["KvHeads"] = "2",
        ["MlpRatio"] = "3",
        ["Activation"] = "gelu",
        ["WindowPattern"] = "SL",
        ["ShortWindow"] = "256",
        ["ValueEmbeds"] = "all",
        ["SoftCap"] = "30",
        ["RotaryBase"] = "500000",
        ["TotalBatchSize"] = "262144",
        ["DeviceBatchSize"] = "64",
        ["Recompute"] = "mlp",
        ["EmbeddingLr"] = "0.3",
        ["UnembeddingLr"] = "0.008",
        ["MatrixLr"] = "0.02",
        ["ScalarLr"] = "0.25",
        ["AdamBeta1"] = "0.9",
        ["AdamBeta2"] = "0.99",
        ["WeightDecay"] = "0.1",
        ["Precision"] = "fp32",
        ["Seed"] = "7",
        ["WarmupRatio"] = "0.1",
        ["WarmdownRatio"] = "0.3",
        ["FinalLrFrac"] = "0.1",
    };

    private static readonly Native.DeviceProperties H200 = Testing.FakeDevices.H200;

    /// <summary>
    /// What a `train` run takes from the knobs, as text: the GPU memory it plans, the model shape (GPU T and vocabulary), the optimizer's settings, the
    /// loop's accumulation steps, the schedules over the run, and the first weights the trainer draws (on a tiny shape, on the
    /// CPU, through the same <see cref="TrainCommand.CreateTrainer"/> the command uses).
    /// </summary>
    private static string WhatTrainUses(Hyperparameters h)
    {
        var shape = h.Shape(ExperimentConstants.VocabSize, ExperimentConstants.MaxSeqLen);
        var settings = h.Optimizer(shape.ModelDim);
        int accumulation = TrainingClock.GradientAccumulationSteps(h.TotalBatchSize, h.DeviceBatchSize, ExperimentConstants.MaxSeqLen);
        double[] progress = [0, 0.05, 0.3, 0.6, 0.8, 0.95, 1];
        var lr = progress.Select(p => Optim.TrainingSchedule.LearningRateMultiplier(p, h.WarmupRatio, h.WarmdownRatio, h.FinalLrFrac));
        var decay = progress.Select(p => Optim.TrainingSchedule.MuonWeightDecay(p, h.WeightDecay));
        var tiny = ModelShape.FromKnobs(1, 64, "L", 16, 4);
        var request = new TrainCommand.Request(h, OnCpu: true, SeqLen: 4, BudgetSeconds: 1, EvalTokens: 4, new AutoResearch.Data.CachePaths("unused"), SavePath: null);
        using var trainer = TrainCommand.CreateTrainer(request, tiny, h.Optimizer(tiny.ModelDim));
        var weights = trainer.ParameterValues()["lm_head.weight"].Take(4);
        long gpuBytes = GpuTrainer.EstimateBytes(H200, shape, h.DeviceBatchSize, settings, h.RecomputesMlp);
        return string.Join("\n", ModelCheckpoint.ShapeToJson(shape), settings, $"accumulation {accumulation}, rows {h.DeviceBatchSize}, GPU bytes {gpuBytes}",
            "lr " + string.Join(' ', lr), "wd " + string.Join(' ', decay), "weights " + string.Join(' ', weights));
    }

    [Fact]
    public void Every_knob_changes_the_shape_the_optimizer_or_the_loop()
    {
        string baseline = WhatTrainUses(Hyperparameters.Default);
        foreach (var knob in Knobs.All)
        {
            Assert.True(OtherValue.TryGetValue(knob.Name, out var value), $"knob {knob.Name} has no other value in this test: add one");
            var changed = Knobs.With(Hyperparameters.Default, knob.Name, value).Validate();
            Assert.NotEqual(knob.Default, Knobs.Values(changed)[knob.Name]);
            Assert.True(WhatTrainUses(changed) != baseline, $"{knob.Name}={value} changes nothing a run uses: it does nothing");
        }
    }

    [Fact]
    public void Set_applies_in_order_and_an_unknown_name_lists_the_known_ones()
    {
        var h = KnobOptions.Resolve(Hyperparameters.Default, [], ["depth=12", "HeadDim=64", "Depth=10", "activation=SwiGLU"]);
        Assert.Equal((10, 64, "SwiGLU"), (h.Depth, h.HeadDim, h.Activation));
        Assert.Equal(Activation.SwiGlu, h.Shape(512, 64).Activation);

        var e = Assert.Throws<ArgumentException>(() => KnobOptions.Resolve(Hyperparameters.Default, [], ["Dpeth=12"]));
        Assert.Contains("unknown knob 'Dpeth'", e.Message, StringComparison.Ordinal);
        foreach (var knob in Knobs.All)
            Assert.Contains(knob.Name, e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => KnobOptions.Resolve(Hyperparameters.Default, [], ["Depth"]));
        Assert.Contains("expected Name=Value", e.Message, StringComparison.Ordinal);
        var lower = KnobOptions.Resolve(Hyperparameters.Default, [], ["WindowPattern=ssl", "Depth=3"]);
        Assert.Equal(lower.Shape(512, 64).Windows, KnobOptions.Resolve(Hyperparameters.Default, [], ["WindowPattern=SSL", "Depth=3"]).Shape(512, 64).Windows);
        e = Assert.Throws<ArgumentException>(() => KnobOptions.Resolve(Hyperparameters.Default, [], ["WindowPattern=SXL"]));
        Assert.Contains("'S' and 'L'", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => KnobOptions.Resolve(Hyperparameters.Default, [], ["HeadDim=96"]));
        Assert.Contains("HeadDim = 96", e.Message, StringComparison.Ordinal);
        Assert.Contains("64, 128", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_shortcut_and_set_agree_or_are_refused()
    {
        KnobOptions.Shortcut[] depth = [new("--depth", "Depth", "3")];
        Assert.Equal(3, KnobOptions.Resolve(Hyperparameters.Default, depth, ["depth=3"]).Depth);
        Assert.Equal(3, KnobOptions.Resolve(Hyperparameters.Default, depth, []).Depth);
        var e = Assert.Throws<ArgumentException>(() => KnobOptions.Resolve(Hyperparameters.Default, depth, ["Depth=4"]));
        Assert.Contains("--depth 3 and --set Depth=4 disagree", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Knobs_command_lists_every_knob_with_its_type_default_and_range()
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 400;
        KnobsCommand.Run(console);
        var lines = writer.ToString().Split('\n');
        foreach (var knob in Knobs.All)
        {
            var row = lines.FirstOrDefault(l => l.TrimStart().StartsWith($"│ {knob.Name} ", StringComparison.Ordinal));
            Assert.True(row is not null, $"no row for {knob.Name}:\n{writer}");
            foreach (var cell in new[] { Knobs.TypeName(knob.Type), knob.Default, knob.Range, knob.Description })
                Assert.Contains(cell, row, StringComparison.Ordinal);
        }
        Assert.Contains("--set Name=Value", writer.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Train_rejects_unknown_or_unsupported_knobs_before_anything_loads()
    {
        // A cache that does not exist: the knob errors come first.
        string cache = Path.Combine(Path.GetTempPath(), "autoresearch-no-cache-" + Guid.NewGuid().ToString("N"));
        var (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache, "--set", "Dpeth=3");
        Assert.NotEqual(0, exit);
        Assert.Contains("unknown knob 'Dpeth'", stderr, StringComparison.Ordinal);
        Assert.Contains("Depth, AspectRatio, HeadDim", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache, "--set", "KvHeads=3");
        Assert.NotEqual(0, exit);
        Assert.Contains("KvHeads = 3", stderr, StringComparison.Ordinal);

        // ShortWindow is checked against T (64 on the CPU) when the shape is built, still before the data.
        (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache, "--set", "ShortWindow=100");
        Assert.NotEqual(0, exit);
        Assert.Contains("ShortWindow = 100", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", cache, "--depth", "3", "--set", "Depth=4");
        Assert.NotEqual(0, exit);
        Assert.Contains("--depth 3 and --set Depth=4 disagree", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(cache));
    }

    [Fact]
    public void Seed_knob_reaches_the_trainer()
    {
        var tiny = ModelShape.FromKnobs(1, 64, "L", 16, 4);
        double[] FirstWeights(int seed)
        {
            var h = Hyperparameters.Default with { Seed = seed };
            var request = new TrainCommand.Request(h, OnCpu: true, SeqLen: 4, BudgetSeconds: 1, EvalTokens: 4, new AutoResearch.Data.CachePaths("unused"), SavePath: null);
            using var trainer = TrainCommand.CreateTrainer(request, tiny, h.Optimizer(tiny.ModelDim));
            return trainer.ParameterValues()["transformer.h.0.attn.c_q.weight"];
        }
        Assert.Equal(FirstWeights(5), FirstWeights(5));
        Assert.NotEqual(FirstWeights(5), FirstWeights(6));
        var spec = ParameterInitializer.LikeSpec(tiny, 6)["transformer.h.0.attn.c_q.weight"];
        Assert.Equal(spec, FirstWeights(6));
    }

    [Fact]
    public void Program_md_lists_every_knob_with_its_default()
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "program.md")))
            root = Path.GetDirectoryName(root) ?? throw new FileNotFoundException("program.md not found above the test folder");
        var lines = File.ReadAllLines(Path.Combine(root, "program.md"));
        foreach (var knob in Knobs.All)
        {
            var row = lines.FirstOrDefault(l => l.StartsWith($"| `{knob.Name}` |", StringComparison.Ordinal));
            Assert.True(row is not null, $"program.md has no row for the knob {knob.Name} (a table row starting | `{knob.Name}` |)");
            Assert.Contains($"| {knob.Default} |", row, StringComparison.Ordinal);
        }
        Assert.Contains("--set", string.Join('\n', lines), StringComparison.Ordinal);
    }
}

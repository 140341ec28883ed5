using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Optim.Reference;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Optim.Tests;

/// <summary>The optimizer's state: what the CPU reference exports after real steps, through a file and back, and what a state
/// for another model is told.</summary>
public class OptimizerStateTests
{
    private static readonly ModelShape Shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 64, windowPattern: "SL", vocabSize: 40, seqLen: 8);

    private static (List<ReferenceParameter> Parameters, MuonAdamWReference Optimizer) Stepped(OptimizerSettings settings, int seed, int steps)
    {
        var r = new Random(seed);
        var parameters = Shape.ParameterShapes().Select(p => new ReferenceParameter(p.Name, p.Rows, p.Cols)).ToList();
        foreach (var p in parameters)
        {
            for (int i = 0; i < p.Value.Length; i++)
                p.Value[i] = (float)((r.NextDouble() * 2 - 1) * 0.1);
        }
        var optimizer = new MuonAdamWReference(parameters, settings) { RoundLikeGpu = true };
        for (int step = 0; step < steps; step++)
            StepWith(optimizer, parameters, new Random(seed * 100 + step), step);
        return (parameters, optimizer);
    }

    private static void StepWith(MuonAdamWReference optimizer, List<ReferenceParameter> parameters, Random r, int step)
    {
        foreach (var p in parameters)
        {
            for (int i = 0; i < p.Gradient.Length; i++)
                p.Gradient[i] = (float)(r.NextDouble() * 2 - 1);
        }
        optimizer.Step(1 - 0.1 * step, TrainingSchedule.MuonMomentum(step), 0.2);
    }

    [Fact]
    public void A_state_written_and_read_back_continues_the_reference_optimizer_bit_for_bit()
    {
        var settings = new OptimizerSettings(Shape.ModelDim, Precision: OptimizerPrecision.Reference);
        var (parameters, optimizer) = Stepped(settings, 5, 2);
        var state = optimizer.ExportState();
        var folder = TestGpu.NewTempDirectory("optimizer-state");
        var path = Path.Combine(folder, "state.safetensors");
        state.Save(path);
        Assert.Equal([path], Directory.GetFiles(folder)); // written under a temporary name, then renamed
        var loaded = OptimizerState.Load(path);
        loaded.CheckMatches(Shape, settings, path);
        Assert.Equal(2, loaded.Step);
        Assert.Equal(2, OptimizerState.ReadStep(path));
        Assert.Equal(OptimizerPrecision.Reference, loaded.Precision);
        foreach (var (a, b) in new[] { (state.AdamFirst, loaded.AdamFirst), (state.AdamSecond, loaded.AdamSecond), (state.Momentum, loaded.Momentum),
            (state.SecondMoment, loaded.SecondMoment) })
        {
            Assert.Equal(a.Keys.Order(), b.Keys.Order());
            Assert.All(a, kv => Assert.Equal(kv.Value, b[kv.Key]));
            Assert.Contains(a.Values, v => v.Any(x => x != 0)); // real steps left something in every kind of buffer
        }
        // NorMuon's second moment: one value per row of a tall or square matrix, per column of a wide one.
        Assert.Equal(Shape.MlpHidden, loaded.SecondMoment["transformer.h.0.mlp.c_fc.weight"].Length);
        Assert.Equal(Shape.MlpHidden, loaded.SecondMoment["transformer.h.0.mlp.c_proj.weight"].Length);

        // A third step: the original optimizer, and a new one on a copy of the weights given the loaded state.
        var copies = parameters.Select(p =>
        {
            var c = new ReferenceParameter(p.Name, p.Rows, p.Cols);
            p.Value.CopyTo(c.Value, 0);
            return c;
        }).ToList();
        var resumed = new MuonAdamWReference(copies, settings) { RoundLikeGpu = true };
        resumed.ImportState(loaded);
        Assert.Equal(2, resumed.StepCount);
        StepWith(optimizer, parameters, new Random(7), 2);
        StepWith(resumed, copies, new Random(7), 2);
        for (int i = 0; i < parameters.Count; i++)
            Assert.Equal(parameters[i].Value, copies[i].Value);

    }

    [Fact]
    public void A_state_for_another_shape_a_model_checkpoint_or_a_bad_value_is_refused_naming_the_file_and_tensor()
    {
        var settings = new OptimizerSettings(Shape.ModelDim);
        var state = Stepped(settings, 9, 1).Optimizer.ExportState();
        var missing = new OptimizerState(1, state.AdamFirst, state.AdamSecond,
            state.Momentum.Where(kv => kv.Key != "transformer.h.1.mlp.c_fc.weight").ToDictionary(), state.SecondMoment);
        var e = Assert.Throws<InvalidDataException>(() => missing.CheckMatches(Shape, settings, "s.safetensors"));
        Assert.Contains("optimizer state 's.safetensors' has no 'momentum_buffer.transformer.h.1.mlp.c_fc.weight'", e.Message, StringComparison.Ordinal);
        var extra = new OptimizerState(1, state.AdamFirst, state.AdamSecond,
            state.Momentum.Append(new("transformer.h.2.mlp.c_fc.weight", new float[4])).ToDictionary(), state.SecondMoment);
        e = Assert.Throws<InvalidDataException>(() => extra.CheckMatches(Shape, settings, "s.safetensors"));
        Assert.Contains("holds 'momentum_buffer.transformer.h.2.mlp.c_fc.weight', which this model has no use for", e.Message, StringComparison.Ordinal);
        var otherVocabulary = ModelShape.FromKnobs(depth: 2, aspectRatio: 64, windowPattern: "SL", vocabSize: 48, seqLen: 8);
        e = Assert.Throws<InvalidDataException>(() => state.CheckMatches(otherVocabulary, settings, "s.safetensors"));
        Assert.Matches($"'exp_avg(_sq)?\\.(lm_head|transformer\\.wte|value_embeds\\.\\d)\\.weight' holds {40 * Shape.ModelDim} values; this model needs {48 * Shape.ModelDim}", e.Message);

        var folder = TestGpu.NewTempDirectory("optimizer-state");
        var checkpoint = Path.Combine(folder, "model.safetensors");
        ModelCheckpoint.Save(checkpoint, Shape, Shape.ParameterShapes().ToDictionary(p => p.Name, p => new double[p.Rows * p.Cols]));
        e = Assert.Throws<InvalidDataException>(() => OptimizerState.Load(checkpoint));
        Assert.Contains($"'{checkpoint}' is not an optimizer state", e.Message, StringComparison.Ordinal);

        var path = Path.Combine(folder, "nan.safetensors");
        var poisoned = state.Momentum.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone());
        poisoned["transformer.h.1.attn.c_k.weight"][3] = float.NaN;
        new OptimizerState(1, state.AdamFirst, state.AdamSecond, poisoned, state.SecondMoment).Save(path);
        e = Assert.Throws<InvalidDataException>(() => OptimizerState.Load(path));
        Assert.Contains("tensor 'momentum_buffer.transformer.h.1.attn.c_k.weight' holds NaN at 3", e.Message, StringComparison.Ordinal);

        // A negative second moment (a mean of squares) would make AdamW's square root NaN: refused. A negative first moment is fine.
        var negative = state.AdamSecond.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone());
        negative["lm_head.weight"][5] = -1e-3f;
        new OptimizerState(1, state.AdamFirst, negative, state.Momentum, state.SecondMoment).Save(path);
        e = Assert.Throws<InvalidDataException>(() => OptimizerState.Load(path));
        Assert.Contains("'exp_avg_sq.lm_head.weight' holds -0.001 at 5; second moments are never negative", e.Message, StringComparison.Ordinal);
        var firstNegative = state.AdamFirst.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone());
        firstNegative["lm_head.weight"][5] = -1e-3f;
        new OptimizerState(1, firstNegative, state.AdamSecond, state.Momentum, state.SecondMoment).Save(path);
        Assert.Null(OptimizerState.Load(path).Precision); // saved without one: "unknown"
    }
}

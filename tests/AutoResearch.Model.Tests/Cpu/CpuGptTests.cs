using AutoResearch.Model.Cpu;
using Xunit;

namespace AutoResearch.Model.Tests.Cpu;

/// <summary>The whole CPU reference model: finite differences for every parameter tensor, and its loss at initialisation.</summary>
public class CpuGptTests
{
    /// <summary>A tiny model (2 layers so both plain and value-embedding layers exist, 1 head of 128, T 8, windows 4 and 8).</summary>
    internal static ModelShape Tiny => ModelShape.FromKnobs(depth: 2, aspectRatio: 64, windowPattern: "SL", vocabSize: 20, seqLen: 8);

    /// <summary>Every parameter random and non-zero (the zero-initialised projections and gates would hide gradients).</summary>
    internal static void Randomise(CpuGpt model, int seed)
    {
        var r = new Random(seed);
        foreach (var (name, values) in model.Parameters)
        {
            double scale = name.EndsWith("lambdas", StringComparison.Ordinal) ? 0.5 : name.Contains("wte", StringComparison.Ordinal) ? 1 : 0.15;
            for (int i = 0; i < values.Length; i++)
                values[i] = (name.StartsWith("resid", StringComparison.Ordinal) ? 1 : 0) + (r.NextDouble() * 2 - 1) * scale;
        }
    }

    internal static (int[] Inputs, int[] Targets) Batch(Random r, int batch, int seqLen, int vocab)
    {
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        for (int i = 0; i < inputs.Length; i++)
        {
            inputs[i] = r.Next(vocab);
            targets[i] = i % 7 == 3 ? -1 : r.Next(vocab);
        }
        return (inputs, targets);
    }

    [Fact]
    public void Every_parameter_gradient_matches_finite_differences()
    {
        const int seed = 314, batch = 2;
        var model = new CpuGpt(Tiny);
        Randomise(model, seed);
        var r = new Random(seed);
        var (inputs, targets) = Batch(r, batch, Tiny.SeqLen, Tiny.VocabSize);
        var grads = model.NewGradients();
        model.ForwardBackward(inputs, targets, batch, grads);
        Assert.Equal(Tiny.ParameterShapes().Count, grads.Count);
        foreach (var (name, values) in model.Parameters)
        {
            var grad = grads[name];
            // Embedding rows of tokens that never occur have zero gradient: sample the ones that are used.
            var candidates = name.Contains("wte", StringComparison.Ordinal) || name.StartsWith("value_embeds", StringComparison.Ordinal)
                ? Enumerable.Range(0, values.Length).Where(i => inputs.Contains(i / Tiny.ModelDim)).ToArray()
                : Enumerable.Range(0, values.Length).ToArray();
            for (int s = 0; s < 4; s++)
            {
                int i = candidates[r.Next(candidates.Length)];
                double keep = values[i];
                const double step = 1e-5;
                values[i] = keep + step;
                double up = model.ForwardBackward(inputs, targets, batch).Loss;
                values[i] = keep - step;
                double down = model.ForwardBackward(inputs, targets, batch).Loss;
                values[i] = keep;
                double numeric = (up - down) / (2 * step);
                double error = Math.Abs(numeric - grad[i]) / Math.Max(1e-6, Math.Abs(numeric) + Math.Abs(grad[i]));
                Assert.True(error < 1e-5, $"{name}[{i}]: analytic {grad[i]:E6} vs numeric {numeric:E6} (seed {seed})");
            }
        }
    }

    [Fact]
    public void Freshly_initialised_model_predicts_close_to_uniform()
    {
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 64, windowPattern: "SL", vocabSize: 300, seqLen: 16);
        var model = new CpuGpt(shape);
        model.InitialiseLikeSpec(42);
        var (inputs, targets) = Batch(new Random(5), 2, shape.SeqLen, shape.VocabSize);
        var (loss, losses) = model.ForwardBackward(inputs, targets, 2);
        Assert.InRange(loss, Math.Log(300) - 0.05, Math.Log(300) + 0.05);
        Assert.Equal(0, losses[3]); // an ignored target
    }

    [Fact]
    public void Wrong_batch_size_is_a_clear_error()
    {
        var model = new CpuGpt(Tiny);
        var e = Assert.Throws<ArgumentException>(() => model.ForwardBackward(new int[5], new int[5], 1));
        Assert.Contains("B 1 × T 8", e.Message, StringComparison.Ordinal);
    }
}

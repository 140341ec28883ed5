using AutoResearch.Model.Cpu;
using AutoResearch.Native;
using AutoResearch.Testing;
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

    /// <summary>
    /// The knobs' shapes, each tiny (T 8, vocabulary 20) and named, so a failing case says which. Width 128 = 2 heads of 64
    /// unless noted.
    /// </summary>
    internal static ModelShape Named(string name) => name switch
    {
        "baseline" => Tiny,                                                                          // 1 head of 128, windows 4 and 8
        "head64-gqa" => ModelShape.FromKnobs(2, 128, "SL", 20, 8, headDim: 64, kvHeads: 2),           // width 256: 4 query heads on 2 kv heads
        "mqa-all-L" => ModelShape.FromKnobs(2, 64, "L", 20, 8, headDim: 64, kvHeads: 1),              // one kv head, whole context everywhere
        "swiglu" => ModelShape.FromKnobs(2, 64, "SL", 20, 8, headDim: 64, activation: Activation.SwiGlu),
        "gelu-ratio2" => ModelShape.FromKnobs(2, 64, "SL", 20, 8, headDim: 64, mlpRatio: 2, activation: Activation.Gelu),
        "no-softcap" => ModelShape.FromKnobs(2, 64, "SL", 20, 8, headDim: 64, kvHeads: 1, softCap: 0),
        "all-S-window3" => ModelShape.FromKnobs(3, 40, "S", 20, 8, headDim: 64, shortWindow: 3),      // S S L, S = 3 tokens
        "ve-all-base100" => ModelShape.FromKnobs(2, 64, "SL", 20, 8, headDim: 64, kvHeads: 1, rotaryBase: 100, valueEmbeds: "all"),
        "ve-none" => ModelShape.FromKnobs(2, 64, "SL", 20, 8, valueEmbeds: "none"),
        _ => throw new ArgumentException($"no test shape '{name}'", nameof(name)),
    };

    [Theory]
    [InlineData("baseline")]
    [InlineData("head64-gqa")]
    [InlineData("mqa-all-L")]
    [InlineData("swiglu")]
    [InlineData("gelu-ratio2")]
    [InlineData("no-softcap")]
    [InlineData("all-S-window3")]
    [InlineData("ve-all-base100")]
    [InlineData("ve-none")]
    public void Every_parameter_gradient_matches_finite_differences(string shapeName)
    {
        const int batch = 2;
        var shape = Named(shapeName);
        int seed = 314 + shapeName.Length;
        var model = new CpuGpt(shape);
        Randomise(model, seed);
        var r = new Random(seed);
        var (inputs, targets) = Batch(r, batch, shape.SeqLen, shape.VocabSize);
        var grads = model.NewGradients();
        model.ForwardBackward(inputs, targets, batch, grads);
        Assert.Equal(shape.ParameterShapes().Count, grads.Count);
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            var values = model.Parameters[name];
            var grad = grads[name];
            // Embedding rows of tokens that never occur have zero gradient: sample the ones that are used.
            var candidates = name.Contains("wte", StringComparison.Ordinal) || name.StartsWith("value_embeds", StringComparison.Ordinal)
                ? Enumerable.Range(0, values.Length).Where(i => inputs.Contains(i / cols)).ToArray()
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
                Assert.True(error < 1e-5, $"{shapeName}: {name}[{i}] of [{rows}, {cols}]: analytic {grad[i]:E6} vs numeric {numeric:E6} (seed {seed})");
            }
        }
    }

    [Fact]
    public void Grouped_query_model_equals_the_full_model_with_each_kv_head_repeated()
    {
        // 4 query heads on 2 kv heads against 4 kv heads whose k, v weights, gates and value embeddings repeat each kv head twice.
        const int seed = 271, batch = 2;
        var grouped = Named("ve-all-base100");
        var full = grouped with { KvHeads = grouped.Heads };
        var a = new CpuGpt(grouped);
        Randomise(a, seed);
        var b = new CpuGpt(full);
        int d = grouped.HeadDim, group = grouped.GroupSize, c = grouped.ModelDim;
        foreach (var (name, values) in a.Parameters)
        {
            var target = b.Parameters[name];
            if (target.Length == values.Length)
            {
                values.CopyTo(target, 0);
                continue;
            }
            // Rows per kv head: D rows of c_k, c_v ([KvDim, C]); 1 row of ve_gate ([KV, 32]); D columns of each value-embedding row ([V, KvDim]).
            bool perColumn = name.StartsWith("value_embeds", StringComparison.Ordinal);
            int width = name.EndsWith("ve_gate.weight", StringComparison.Ordinal) ? 32 : perColumn ? d : d * c;
            int outer = perColumn ? grouped.VocabSize : 1, inner = values.Length / outer;
            for (int o = 0; o < outer; o++)
            {
                for (int h = 0; h < full.KvHeads; h++)
                    Array.Copy(values, o * inner + h / group * width, target, o * inner * group + h * width, width);
            }
        }
        var (inputs, targets) = Batch(new Random(seed), batch, grouped.SeqLen, grouped.VocabSize);
        var (lossA, lossesA) = a.ForwardBackward(inputs, targets, batch);
        var (lossB, lossesB) = b.ForwardBackward(inputs, targets, batch);
        Assert.Equal(lossB, lossA, 12);
        for (int i = 0; i < lossesA.Length; i++)
            Assert.Equal(lossesB[i], lossesA[i], 12);
    }

    [Fact]
    public void Soft_cap_zero_leaves_the_logits_uncapped()
    {
        const int seed = 272;
        var capped = Named("head64-gqa");
        var model = new CpuGpt(capped);
        Randomise(model, seed);
        var lmHead = model.Parameters["lm_head.weight"];
        for (int i = 0; i < lmHead.Length; i++)
            lmHead[i] *= 40; // logits well beyond the cap of 15
        var (inputs, _) = Batch(new Random(seed), 1, capped.SeqLen, capped.VocabSize);
        var uncapped = new CpuGpt(capped with { SoftCap = 0 });
        foreach (var (name, values) in model.Parameters)
            values.CopyTo(uncapped.Parameters[name], 0);
        var z = model.Logits(inputs, 1);
        var raw = uncapped.Logits(inputs, 1);
        Assert.Contains(raw, l => Math.Abs(l) > 15);
        Assert.All(z, l => Assert.InRange(l, -15, 15));
        for (int i = 0; i < z.Length; i++)
            Assert.Equal(15 * Math.Tanh(raw[i] / 15), z[i], 10);
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
    public void Rounding_activations_to_bf16_moves_the_loss_and_gradients_by_bf16_amounts_and_every_stored_value_onto_bf16()
    {
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 64, windowPattern: "SL", vocabSize: 40, seqLen: 16, headDim: 64, activation: Activation.SwiGlu,
            softCap: 0);
        var exact = new CpuGpt(shape);
        Randomise(exact, 21);
        var rounded = new CpuGpt(shape) { RoundActivationsToBf16 = true };
        foreach (var (name, values) in exact.Parameters)
            values.CopyTo(rounded.Parameters[name], 0);
        var (inputs, targets) = Batch(new Random(22), 2, shape.SeqLen, shape.VocabSize);
        var exactGrads = exact.NewGradients();
        var roundedGrads = rounded.NewGradients();
        double exactLoss = exact.ForwardBackward(inputs, targets, 2, exactGrads).Loss;
        double roundedLoss = rounded.ForwardBackward(inputs, targets, 2, roundedGrads).Loss;

        // The loss moves, by about bf16's relative precision (2⁻⁸), not more.
        Assert.NotEqual(exactLoss, roundedLoss);
        Assert.InRange(Math.Abs(roundedLoss - exactLoss) / exactLoss, 1e-7, 1e-2);
        foreach (var (name, g) in exactGrads.Where(kv => !kv.Key.EndsWith("lambdas", StringComparison.Ordinal))) // sums of cancelling terms: see ModelParity
        {
            double error = Numerics.RelativeError(Array.ConvertAll(roundedGrads[name], v => (float)v), g);
            Assert.True(error is > 1e-6 and < 5e-2, $"{name}: relative L2 {error:E2} between the rounded and the exact model's gradient");
        }

        // It reads the weights as bf16 (the lambdas as they are): the same model with its weights rounded beforehand gives the same loss.
        var preRounded = new CpuGpt(shape) { RoundActivationsToBf16 = true };
        foreach (var (name, values) in exact.Parameters)
            preRounded.Parameters[name] = name.EndsWith("lambdas", StringComparison.Ordinal) ? (double[])values.Clone() : values.Select(v => (double)Bf16.Round((float)v)).ToArray();
        Assert.Equal(roundedLoss, preRounded.ForwardBackward(inputs, targets, 2).Loss);
        Assert.Equal(exact.Parameters["transformer.h.0.attn.c_q.weight"], rounded.Parameters["transformer.h.0.attn.c_q.weight"]); // its own values untouched

        // The logits the rounded model scores (no soft cap here) are bf16 values, the exact model's are not.
        Assert.All(rounded.Logits(inputs, 2), z => Assert.Equal(Bf16.Round((float)z), z));
        Assert.Contains(exact.Logits(inputs, 2), z => Bf16.Round((float)z) != z);
    }

    [Theory]
    [InlineData(Activation.Relu2)]
    [InlineData(Activation.Gelu)]
    public void Rounding_like_the_fused_mlp_stays_within_bf16_of_the_exact_model_and_rounds_elsewhere_than_the_cublas_path(Activation activation)
    {
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 64, windowPattern: "SL", vocabSize: 40, seqLen: 16, headDim: 64, activation: activation);
        var exact = new CpuGpt(shape);
        Randomise(exact, 23);
        var (inputs, targets) = Batch(new Random(24), 2, shape.SeqLen, shape.VocabSize);
        var exactGrads = exact.NewGradients();
        double exactLoss = exact.ForwardBackward(inputs, targets, 2, exactGrads).Loss;
        (double Loss, Dictionary<string, double[]> Grads) Run(bool round, bool fused)
        {
            var model = new CpuGpt(shape) { RoundActivationsToBf16 = round, FollowFusedMlp = fused };
            foreach (var (name, values) in exact.Parameters)
                values.CopyTo(model.Parameters[name], 0);
            var grads = model.NewGradients();
            return (model.ForwardBackward(inputs, targets, 2, grads).Loss, grads);
        }

        // Without the rounding the flag changes nothing: the function is the same.
        var unrounded = Run(round: false, fused: true);
        Assert.Equal(exactLoss, unrounded.Loss);
        Assert.All(exactGrads, kv => Assert.Equal(kv.Value, unrounded.Grads[kv.Key]));

        var fused = Run(round: true, fused: true);
        var cublas = Run(round: true, fused: false);
        Assert.InRange(Math.Abs(fused.Loss - exactLoss) / exactLoss, 1e-7, 1e-2);
        bool anyMlpDiffers = false;
        foreach (var (name, g) in exactGrads.Where(kv => !kv.Key.EndsWith("lambdas", StringComparison.Ordinal)))
        {
            double error = Numerics.RelativeError(Array.ConvertAll(fused.Grads[name], v => (float)v), g);
            Assert.True(error is > 1e-6 and < 5e-2, $"{name}: relative L2 {error:E2} between the fused-rounding and the exact model's gradient");
            anyMlpDiffers |= name.Contains("mlp.c_fc", StringComparison.Ordinal) && !fused.Grads[name].AsSpan().SequenceEqual(cublas.Grads[name]);
        }
        Assert.True(anyMlpDiffers, "the fused rounding should round the MLP elsewhere than the cuBLAS path");
    }

    [Fact]
    public void Wrong_batch_size_is_a_clear_error()
    {
        var model = new CpuGpt(Tiny);
        var e = Assert.Throws<ArgumentException>(() => model.ForwardBackward(new int[5], new int[5], 1));
        Assert.Contains("B 1 × T 8", e.Message, StringComparison.Ordinal);
    }
}

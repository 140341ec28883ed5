using AutoResearch.Model;
using AutoResearch.Model.Cpu;
using AutoResearch.Runner.Sampling;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class SampleTests
{
    [Fact]
    public void Temperature_zero_and_top_k_one_take_the_arg_max_whatever_the_seed()
    {
        double[] logits = [0.5, 3.0, -1.0, 3.0, 2.9];
        for (int seed = 0; seed < 5; seed++)
        {
            Assert.Equal(1, TokenSampler.Next(logits, 0, 0, new Random(seed)));
            Assert.Equal(1, TokenSampler.Next(logits, 2.0, 1, new Random(seed)));
        }
    }

    [Fact]
    public void Draws_follow_the_tempered_softmax_over_the_top_k()
    {
        double[] logits = [Math.Log(1), Math.Log(2), Math.Log(5), Math.Log(0.1)];
        var random = new Random(1234);
        var counts = new int[logits.Length];
        const int Draws = 20_000;
        for (int i = 0; i < Draws; i++)
            counts[TokenSampler.Next(logits, 1.0, 3, random)]++;
        Assert.Equal(0, counts[3]); // outside the top 3
        Assert.Equal(1 / 8.0, counts[0] / (double)Draws, 0.015);
        Assert.Equal(2 / 8.0, counts[1] / (double)Draws, 0.015);
        Assert.Equal(5 / 8.0, counts[2] / (double)Draws, 0.015);

        // Temperature 0.5 squares the odds: 1 : 4 : 25 over the top 3.
        counts = new int[logits.Length];
        for (int i = 0; i < Draws; i++)
            counts[TokenSampler.Next(logits, 0.5, 0, random)]++;
        Assert.Equal(25 / (30 + 0.01), counts[2] / (double)Draws, 0.015);

        // The same seed, the same draws.
        var a = Enumerable.Range(0, 50).Select(_ => TokenSampler.Next(logits, 1.0, 0, new Random(9))).ToList();
        Assert.All(a, x => Assert.Equal(a[0], x));
    }

    [Fact]
    public void Bad_sampler_arguments_throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenSampler.Next([1.0], -0.1, 0, new Random(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenSampler.Next([1.0], double.NaN, 0, new Random(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenSampler.Next([1.0], 1, -1, new Random(1)));
        Assert.Throws<ArgumentException>(() => TokenSampler.Next([], 1, 0, new Random(1)));
    }

    [Fact]
    public void Cpu_logits_score_the_loss_and_are_causal()
    {
        const int Seed = 5, T = 8, V = 64;
        var shape = ModelShape.FromKnobs(2, 64, "SL", V, T);
        var model = new CpuGpt(shape);
        model.InitialiseLikeSpec(Seed);
        // Non-zero output heads so the logits depend on the inputs.
        var random = new Random(Seed);
        foreach (var name in new[] { "lm_head.weight", "transformer.h.0.attn.c_proj.weight", "transformer.h.0.mlp.c_proj.weight", "transformer.h.1.attn.c_proj.weight", "transformer.h.1.mlp.c_proj.weight" })
        {
            var w = model.Parameters[name];
            for (int i = 0; i < w.Length; i++)
                w[i] = (random.NextDouble() - 0.5) * 0.2;
        }
        var inputs = Enumerable.Range(0, T).Select(_ => random.Next(V)).ToArray();
        var targets = Enumerable.Range(0, T).Select(_ => random.Next(V)).ToArray();

        var logits = model.Logits(inputs, 1);
        var (_, losses) = model.ForwardBackward(inputs, targets, 1);
        for (int t = 0; t < T; t++)
        {
            var row = logits.AsSpan(t * V, V);
            Assert.All(row.ToArray(), z => Assert.InRange(z, -shape.SoftCap, shape.SoftCap));
            double max = row.ToArray().Max();
            double logSum = max + Math.Log(row.ToArray().Sum(z => Math.Exp(z - max)));
            Assert.Equal(losses[t], logSum - row[targets[t]], 1e-9);
        }

        // Changing the last token changes only the last row.
        var changed = (int[])inputs.Clone();
        changed[T - 1] = (changed[T - 1] + 1) % V;
        var after = model.Logits(changed, 1);
        Assert.Equal(logits.AsSpan(0, (T - 1) * V).ToArray(), after.AsSpan(0, (T - 1) * V).ToArray());
        Assert.NotEqual(logits.AsSpan((T - 1) * V).ToArray(), after.AsSpan((T - 1) * V).ToArray());
    }
}

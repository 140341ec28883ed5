using AutoResearch.Native;
using AutoResearch.Optim.Reference;
using Xunit;

namespace AutoResearch.Optim.Tests;

/// <summary>
/// The optimizer's reference precision (<see cref="OptimizerPrecision.Reference"/>) against one step written out here by hand,
/// group by group, in fp64 with bf16 rounding where the reference rounds: bf16 embedding parameters, gradients and moments;
/// fp32 lm_head and lambdas; the bf16 Muon normalisation, scale and update with bf16 lr and weight decay.
/// </summary>
public class ReferencePrecisionTests
{
    private static double B(double x) => Bf16.Round((float)x);

    private static ReferenceParameter Random(string name, int rows, int cols, Random r)
    {
        var p = new ReferenceParameter(name, rows, cols);
        for (int i = 0; i < p.Value.Length; i++)
        {
            p.Value[i] = (r.NextDouble() * 2 - 1) * 0.3;
            p.Gradient[i] = (r.NextDouble() * 2 - 1) * 0.01;
        }
        return p;
    }

    [Fact]
    public void The_knob_names_both_settings_and_refuses_others()
    {
        Assert.Equal(OptimizerPrecision.Reference, OptimizerPrecisions.Parse(" Reference "));
        Assert.Equal("fp32", OptimizerPrecision.Fp32.Name());
        var e = Assert.Throws<ArgumentException>(() => OptimizerPrecisions.Parse("bf16"));
        Assert.Contains("Precision", e.Message, StringComparison.Ordinal);
        Assert.Contains("fp32, reference", e.Message, StringComparison.Ordinal);
        Assert.True(OptimizerPrecision.Reference.HasBf16Parameters(ParameterGroup.ValueEmbedding));
        Assert.False(OptimizerPrecision.Reference.HasBf16Parameters(ParameterGroup.LmHead));
        Assert.False(OptimizerPrecision.Fp32.HasBf16Parameters(ParameterGroup.Embedding));
    }

    [Theory]
    [InlineData("transformer.wte.weight", true)]
    [InlineData("value_embeds.1.weight", true)]
    [InlineData("lm_head.weight", false)]
    [InlineData("x0_lambdas", false)]
    public void Adam_groups_round_the_bf16_parameters_their_gradients_and_moments(string name, bool bf16)
    {
        var r = new Random(name.Length);
        var p = Random(name, name.EndsWith("lambdas", StringComparison.Ordinal) ? 4 : 6, name.EndsWith("lambdas", StringComparison.Ordinal) ? 1 : 8, r);
        var settings = new OptimizerSettings(512, Precision: OptimizerPrecision.Reference);
        var h = settings.Adam(settings.GroupOf(name));
        var start = (double[])p.Value.Clone();
        var optimizer = new MuonAdamWReference([p], settings);
        if (bf16) // the constructor makes it a bf16 parameter
            Assert.All(p.Value, v => Assert.Equal(B(v), v));
        else
            Assert.Equal(start, p.Value);
        var g = (double[])p.Gradient.Clone();
        optimizer.Step(0.7, 0.9, 0.1);

        double lr = h.LearningRate * 0.7;
        for (int i = 0; i < start.Length; i++)
        {
            double R(double x) => bf16 ? B(x) : x;
            double gi = R(g[i]), x0 = R(start[i]);
            double m = R((1 - h.Beta1) * gi), v = R((1 - h.Beta2) * gi * gi);
            double expected = R(x0 * (1 - lr * h.WeightDecay) - lr / (1 - h.Beta1) * m / (Math.Sqrt(v / (1 - h.Beta2)) + h.Eps));
            Assert.Equal(expected, p.Value[i], 15);
        }
        if (bf16)
            Assert.All(p.Value, v => Assert.Equal(B(v), v));
    }

    [Theory]
    [InlineData(16, 8)]  // tall: NorMuon per row, lr × sqrt(2)
    [InlineData(8, 16)]  // wide: per column
    public void Muon_rounds_the_normalisation_the_scale_and_the_update_to_bf16_with_bf16_lr_and_decay(int rows, int cols)
    {
        var r = new Random(rows * 31 + cols);
        var p = Random("transformer.h.0.mlp.c_fc.weight", rows, cols, r);
        var settings = new OptimizerSettings(512, Precision: OptimizerPrecision.Reference);
        var start = (double[])p.Value.Clone();
        var g = (double[])p.Gradient.Clone();
        const double lrMultiplier = 0.9, mu = 0.85, wd = 0.15;
        new MuonAdamWReference([p], settings).Step(lrMultiplier, mu, wd);

        // By hand: Nesterov from a zero buffer, u to bf16, the bf16 norm and quotient.
        var u = g.Select(gi => B((1 - mu) * gi + mu * ((1 - mu) * gi))).ToArray();
        double norm = B(Math.Sqrt(u.Sum(x => x * x)));
        double denominator = B(B(norm * 1.02) + 1e-6); // 1.02 itself unrounded
        var x = MuonAdamWReference.Orthogonalise(u.Select(v => B(v / denominator)).ToArray(), rows, cols, roundLikeGpu: true);
        // NorMuon from a zero second moment (β2 = 0.95).
        bool perRow = rows >= cols;
        int length = perRow ? rows : cols, n = perRow ? cols : rows;
        var vMean = new double[length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                vMean[perRow ? i : j] += x[i * cols + j] * x[i * cols + j] / n;
        var step = vMean.Select(v => 1 / Math.Sqrt(Math.Max(0.05 * v, 1e-10))).ToArray();
        double xNorm = Math.Sqrt(n * vMean.Sum());
        double scaledNorm = Math.Sqrt(vMean.Select((v, l) => n * v * step[l] * step[l]).Sum());
        // The update: lr and wd in bf16, X·scale and lr·X in bf16, the decay term fp32.
        double lrEff = 0.04 * lrMultiplier * Math.Sqrt(Math.Max(1.0, (double)rows / cols));
        double lrB = B(lrEff), decayB = B(lrB * B(wd));
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                int k = i * cols + j;
                double scale = B(step[perRow ? i : j] * (xNorm / Math.Max(scaledNorm, 1e-10)));
                double xv = B(x[k] * scale);
                double mask = xv * start[k] >= 0 ? 1 : 0;
                double expected = start[k] - (B(lrB * xv) + decayB * start[k] * mask);
                Assert.Equal(expected, p.Value[k], 12);
            }
        }
    }

    [Fact]
    public void The_two_precisions_differ_and_fp32_keeps_the_embeddings_off_the_bf16_grid()
    {
        ReferenceParameter[] Make() { var r = new Random(8); return [Random("transformer.wte.weight", 4, 8, r), Random("transformer.h.0.attn.c_q.weight", 8, 8, r)]; }
        var fp32 = Make();
        var reference = Make();
        new MuonAdamWReference(fp32, new OptimizerSettings(512)).Step(1, 0.9, 0.1);
        new MuonAdamWReference(reference, new OptimizerSettings(512, Precision: OptimizerPrecision.Reference)).Step(1, 0.9, 0.1);
        Assert.Contains(fp32[0].Value, v => B(v) != v);
        for (int t = 0; t < 2; t++)
            Assert.NotEqual(fp32[t].Value, reference[t].Value);
    }
}

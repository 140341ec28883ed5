using AutoResearch.Optim.Reference;
using Xunit;

namespace AutoResearch.Optim.Tests;

/// <summary>The CPU reference optimizer against SPEC §6 computed independently here, and the properties it must have.</summary>
public class ReferenceOptimizerTests
{
    private static ReferenceParameter Random(string name, int rows, int cols, Random r, double scale = 1)
    {
        var p = new ReferenceParameter(name, rows, cols);
        for (int i = 0; i < p.Value.Length; i++)
        {
            p.Value[i] = (r.NextDouble() * 2 - 1) * scale;
            p.Gradient[i] = r.NextDouble() * 2 - 1;
        }
        return p;
    }

    [Fact]
    public void Settings_assign_every_reference_name_to_its_group_and_reject_unknown_names()
    {
        var s = new OptimizerSettings(512);
        Assert.Equal(ParameterGroup.LmHead, s.GroupOf("lm_head.weight"));
        Assert.Equal(ParameterGroup.Embedding, s.GroupOf("transformer.wte.weight"));
        Assert.Equal(ParameterGroup.ValueEmbedding, s.GroupOf("value_embeds.3.weight"));
        Assert.Equal(ParameterGroup.ResidLambdas, s.GroupOf("resid_lambdas"));
        Assert.Equal(ParameterGroup.X0Lambdas, s.GroupOf("x0_lambdas"));
        Assert.Equal(ParameterGroup.Muon, s.GroupOf("transformer.h.0.attn.ve_gate.weight"));
        Assert.Equal(ParameterGroup.Muon, s.GroupOf("transformer.h.7.mlp.c_proj.weight"));
        var e = Assert.Throws<ArgumentException>(() => s.GroupOf("transformer.h.0.attn.c_q.bias"));
        Assert.Contains("transformer.h.0.attn.c_q.bias", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Adam_learning_rates_are_width_scaled_except_the_lambdas()
    {
        var s = new OptimizerSettings(512);
        double scale = Math.Pow(512 / 768.0, -0.5);
        Assert.Equal(0.004 * scale, s.Adam(ParameterGroup.LmHead).LearningRate, 12);
        Assert.Equal(0.6 * scale, s.Adam(ParameterGroup.Embedding).LearningRate, 12);
        Assert.Equal(0.6 * scale, s.Adam(ParameterGroup.ValueEmbedding).LearningRate, 12);
        Assert.Equal(0.005, s.Adam(ParameterGroup.ResidLambdas).LearningRate, 12);
        Assert.Equal(0.5, s.Adam(ParameterGroup.X0Lambdas).LearningRate, 12);
        Assert.Equal(0.96, s.Adam(ParameterGroup.X0Lambdas).Beta1, 12);
    }

    [Fact]
    public void AdamW_matches_the_formula_over_two_steps()
    {
        var r = new Random(3);
        var p = Random("lm_head.weight", 2, 3, r);
        var settings = new OptimizerSettings(768); // width scale 1
        var optimizer = new MuonAdamWReference([p], settings);
        var value = (double[])p.Value.Clone();
        double m = 0, v = 0;
        var g1 = (double[])p.Gradient.Clone();
        optimizer.Step(0.5, 0.9, 0.1);
        var g2 = new[] { 0.3, -0.2, 0.1, 0.0, -0.7, 0.4 };
        g2.CopyTo(p.Gradient, 0);
        optimizer.Step(1.0, 0.9, 0.1);
        for (int i = 0; i < 6; i++)
        {
            double x = value[i];
            m = 0;
            v = 0;
            // Step 1, lr = 0.004·0.5; step 2, lr = 0.004; betas (0.8, 0.95), eps 1e-10, no weight decay.
            foreach (var (g, lr, t) in new[] { (g1[i], 0.002, 1), (g2[i], 0.004, 2) })
            {
                m = 0.8 * m + 0.2 * g;
                v = 0.95 * v + 0.05 * g * g;
                x -= lr / (1 - Math.Pow(0.8, t)) * m / (Math.Sqrt(v / (1 - Math.Pow(0.95, t))) + 1e-10);
            }
            Assert.Equal(x, p.Value[i], 12);
        }
    }

    [Theory]
    [InlineData(64, 256)]
    [InlineData(256, 64)]
    [InlineData(128, 160)]
    [InlineData(128, 128)]
    public void Five_polar_express_iterations_put_every_singular_value_in_the_designed_band(int rows, int cols)
    {
        var r = new Random(rows * 7 + cols);
        var x = new double[rows * cols];
        double norm = 0;
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = r.NextDouble() * 2 - 1;
            // A random square matrix has singular values down to ~0; a diagonal shift keeps them clear of it.
            if (rows == cols && i / cols == i % cols)
                x[i] += 8;
            norm += x[i] * x[i];
        }
        norm = Math.Sqrt(norm) * 1.02 + 1e-6;
        for (int i = 0; i < x.Length; i++)
            x[i] /= norm;
        var before = SingularValues(x, rows, cols);
        Assert.True(before.Min() > 1e-3, "the band below holds for inputs whose singular values are at least 1e-3");

        // The polynomial composition maps [1e-3, 1/1.02] into [0.8589, 1.1411] (evaluated densely); exact fp64 stays inside.
        var exact = SingularValues(MuonAdamWReference.Orthogonalise(x, rows, cols, roundLikeGpu: false), rows, cols);
        Assert.All(exact, s => Assert.InRange(s, 0.8588, 1.1412));
        // bf16 rounding at every product (as on the GPU) widens it a little.
        var rounded = SingularValues(MuonAdamWReference.Orthogonalise(x, rows, cols, roundLikeGpu: true), rows, cols);
        Assert.All(rounded, s => Assert.InRange(s, 0.8, 1.2));
    }

    /// <summary>Singular values by Jacobi eigenvalues of the smaller Gram matrix, in fp64.</summary>
    internal static double[] SingularValues(double[] x, int rows, int cols)
    {
        int g = Math.Min(rows, cols);
        var a = new double[g, g];
        for (int i = 0; i < g; i++)
        {
            for (int j = 0; j < g; j++)
            {
                double sum = 0;
                if (rows >= cols)
                {
                    for (int t = 0; t < rows; t++)
                        sum += x[t * cols + i] * x[t * cols + j];
                }
                else
                {
                    for (int t = 0; t < cols; t++)
                        sum += x[i * cols + t] * x[j * cols + t];
                }
                a[i, j] = sum;
            }
        }
        for (int sweep = 0; sweep < 60; sweep++)
        {
            double off = 0;
            for (int p = 0; p < g; p++)
            {
                for (int q = p + 1; q < g; q++)
                {
                    off += a[p, q] * a[p, q];
                    if (Math.Abs(a[p, q]) < 1e-300)
                        continue;
                    double theta = (a[q, q] - a[p, p]) / (2 * a[p, q]);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0)
                        t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < g; k++)
                    {
                        double akp = a[k, p], akq = a[k, q];
                        a[k, p] = c * akp - s * akq;
                        a[k, q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < g; k++)
                    {
                        double apk = a[p, k], aqk = a[q, k];
                        a[p, k] = c * apk - s * aqk;
                        a[q, k] = s * apk + c * aqk;
                    }
                }
            }
            if (off < 1e-26)
                break;
        }
        return Enumerable.Range(0, g).Select(i => Math.Sqrt(Math.Max(a[i, i], 0))).ToArray();
    }

    [Fact]
    public void Muon_update_is_orthogonal_scaled_by_the_shape_factor_and_cautious_decay_masks_some_elements()
    {
        var r = new Random(11);
        var p = Random("transformer.h.0.mlp.c_fc.weight", 64, 16, r, 0.1); // tall: lr factor sqrt(4) = 2
        var before = (double[])p.Value.Clone();
        var optimizer = new MuonAdamWReference([p], new OptimizerSettings(512));
        optimizer.Step(1.0, 0.95, 0.0);
        var delta = p.Value.Select((v, i) => (before[i] - v) / (0.04 * 2)).ToArray();
        // With no weight decay, delta is the NorMuon-scaled orthogonal matrix: its Frobenius norm is that of the orthogonalised X.
        var sv = SingularValues(delta, 64, 16);
        double frob = Math.Sqrt(sv.Sum(s => s * s));
        Assert.InRange(frob, Math.Sqrt(16) * 0.85, Math.Sqrt(16) * 1.15);
        var (decayed, spared) = optimizer.LastMask;
        Assert.Equal(0, decayed + spared - 64 * 16);
        optimizer.Step(1.0, 0.95, 0.2);
        (decayed, spared) = optimizer.LastMask;
        Assert.True(decayed > 0 && spared > 0, $"the cautious mask should keep and drop some elements: decayed {decayed}, spared {spared}");
    }
}

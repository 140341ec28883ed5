using Xunit;

namespace AutoResearch.Model.Tests.Cpu;

/// <summary>SPEC §5's initialisation as <see cref="ParameterInitializer"/> draws it: each tensor's distribution, and one seed one set of weights.</summary>
public class ParameterInitializerTests
{
    private static (double Mean, double Std) Moments(double[] values)
    {
        double mean = values.Average();
        return (mean, Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Length));
    }

    [Fact]
    public void Each_tensor_has_its_specified_distribution_and_a_seed_fixes_the_values()
    {
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 128, windowPattern: "SL", vocabSize: 4096, seqLen: 64);
        var p = ParameterInitializer.LikeSpec(shape, 7);

        var (wteMean, wteStd) = Moments(p["transformer.wte.weight"]);     // 4096 × 256 draws of normal(0, 1)
        Assert.InRange(wteMean, -0.01, 0.01);
        Assert.InRange(wteStd, 0.99, 1.01);
        var (headMean, headStd) = Moments(p["lm_head.weight"]);           // normal(0, 0.001)
        Assert.InRange(headMean, -1e-5, 1e-5);
        Assert.InRange(headStd, 0.00099, 0.00101);
        double bound = Math.Sqrt(3) / Math.Sqrt(shape.ModelDim);          // uniform(±sqrt(3/d)): std 1/sqrt(d)
        foreach (var name in new[] { "transformer.h.0.attn.c_q.weight", "transformer.h.1.mlp.c_fc.weight", "value_embeds.1.weight" })
        {
            var values = p[name];
            Assert.All(values, v => Assert.InRange(v, -bound, bound));
            Assert.InRange(Moments(values).Std, 0.98 / Math.Sqrt(shape.ModelDim), 1.02 / Math.Sqrt(shape.ModelDim));
        }
        foreach (var name in new[] { "transformer.h.0.attn.c_proj.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.h.1.attn.ve_gate.weight" })
            Assert.All(p[name], v => Assert.Equal(0, v));
        Assert.All(p["resid_lambdas"], v => Assert.Equal(1.0, v));
        Assert.All(p["x0_lambdas"], v => Assert.Equal(0.1, v));

        // The same seed draws the same values; another seed others (the draws run over the tensors in order).
        Assert.Equal(p["transformer.h.1.mlp.c_fc.weight"], ParameterInitializer.LikeSpec(shape, 7)["transformer.h.1.mlp.c_fc.weight"]);
        Assert.NotEqual(p["transformer.h.1.mlp.c_fc.weight"], ParameterInitializer.LikeSpec(shape, 8)["transformer.h.1.mlp.c_fc.weight"]);
    }

    [Fact]
    public void The_draws_are_one_sequence_over_the_tensors_in_order_and_the_fp32_values_are_the_fp64_ones_rounded()
    {
        // Written here one value at a time, as SPEC §5 reads: normal values by Box–Muller from two draws (the first under
        // the logarithm), uniform ones from one, the constant tensors drawing nothing. The initializer takes the draws in
        // order but computes the normal values in parallel (wte here spans 16 of its chunks): the same bits are expected.
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 128, windowPattern: "SL", vocabSize: 4096, seqLen: 64);
        var r = new Random(11);
        double s = Math.Sqrt(3) / Math.Sqrt(shape.ModelDim);
        var p = ParameterInitializer.LikeSpec(shape, 11);
        var single = ParameterInitializer.LikeSpecSingle(shape, 11);
        Assert.Equal(shape.ParameterShapes().Select(t => t.Name).Order(), p.Keys.Order());
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            var expected = new double[rows * cols];
            bool constant = name is "resid_lambdas" or "x0_lambdas" || name.EndsWith("c_proj.weight", StringComparison.Ordinal)
                || name.EndsWith("ve_gate.weight", StringComparison.Ordinal);
            for (int i = 0; i < expected.Length; i++)
            {
                if (name is "transformer.wte.weight" or "lm_head.weight")
                {
                    double u1 = r.NextDouble(), u2 = r.NextDouble();
                    expected[i] = (name == "lm_head.weight" ? 0.001 : 1) * Math.Sqrt(-2 * Math.Log(1 - u1)) * Math.Cos(2 * Math.PI * u2);
                }
                else
                {
                    expected[i] = constant ? (name == "resid_lambdas" ? 1.0 : name == "x0_lambdas" ? 0.1 : 0.0) : (r.NextDouble() * 2 - 1) * s;
                }
            }
            Assert.Equal(expected, p[name]);
            Assert.Equal(Array.ConvertAll(expected, v => (float)v), single[name]);
        }
    }
}

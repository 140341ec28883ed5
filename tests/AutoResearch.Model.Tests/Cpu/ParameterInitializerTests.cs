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
}

namespace AutoResearch.Model;

/// <summary>
/// SPEC §5's initialisation, drawn on the host from a seed in <see cref="ModelShape.ParameterShapes"/> order, so the CPU
/// reference and the GPU model start from identical weights: wte normal(0, 1), lm_head normal(0, 0.001), q/k/v and c_fc
/// uniform(±sqrt(3)/sqrt(d)), the two projections and the value-embedding gates zero, value embeddings uniform,
/// resid_lambdas 1.0 and x0_lambdas 0.1.
/// </summary>
public static class ParameterInitializer
{
    public static Dictionary<string, double[]> LikeSpec(ModelShape shape, int seed)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var r = new Random(seed);
        double s = Math.Sqrt(3) / Math.Sqrt(shape.ModelDim);
        var result = new Dictionary<string, double[]>(StringComparer.Ordinal);
        // One draw sequence over the tensors in order; each tensor's kind is settled once, not per element (the baseline's
        // 50 M values are on the start-up's path).
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            var values = new double[(long)rows * cols];
            switch (KindOf(name))
            {
                case Kind.Normal:
                    double std = name == "lm_head.weight" ? 0.001 : 1;
                    for (long i = 0; i < values.Length; i++)
                        values[i] = std * Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
                    break;
                case Kind.Uniform:
                    for (long i = 0; i < values.Length; i++)
                        values[i] = (r.NextDouble() * 2 - 1) * s;
                    break;
                case Kind.Constant:
                    Array.Fill(values, name == "resid_lambdas" ? 1.0 : name == "x0_lambdas" ? 0.1 : 0.0);
                    break;
            }
            result[name] = values;
        }
        return result;
    }

    private enum Kind
    {
        Normal,
        Uniform,
        Constant,
    }

    /// <summary>wte and lm_head normal; the projections, the value gates and the lambdas constant (no draws); the rest uniform.</summary>
    private static Kind KindOf(string name)
    {
        if (name is "transformer.wte.weight" or "lm_head.weight")
            return Kind.Normal;
        if (name is "resid_lambdas" or "x0_lambdas" || name.EndsWith("attn.c_proj.weight", StringComparison.Ordinal)
            || name.EndsWith("mlp.c_proj.weight", StringComparison.Ordinal) || name.EndsWith("ve_gate.weight", StringComparison.Ordinal))
            return Kind.Constant;
        return Kind.Uniform;
    }
}

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
        double Normal(double std) => std * Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
        var result = new Dictionary<string, double[]>(StringComparer.Ordinal);
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            var values = new double[(long)rows * cols];
            bool zero = name.EndsWith("attn.c_proj.weight", StringComparison.Ordinal) || name.EndsWith("mlp.c_proj.weight", StringComparison.Ordinal)
                || name.EndsWith("ve_gate.weight", StringComparison.Ordinal);
            for (long i = 0; i < values.Length; i++)
            {
                values[i] = name switch
                {
                    "transformer.wte.weight" => Normal(1),
                    "lm_head.weight" => Normal(0.001),
                    "resid_lambdas" => 1,
                    "x0_lambdas" => 0.1,
                    _ => zero ? 0 : (r.NextDouble() * 2 - 1) * s,
                };
            }
            result[name] = values;
        }
        return result;
    }
}

namespace AutoResearch.Model;

/// <summary>
/// SPEC §5's initialisation, drawn on the host from a seed in <see cref="ModelShape.ParameterShapes"/> order, so the CPU
/// reference and the GPU model start from identical weights: wte normal(0, 1), lm_head normal(0, 0.001), q/k/v and c_fc
/// uniform(±sqrt(3)/sqrt(d)), the two projections and the value-embedding gates zero, value embeddings uniform,
/// resid_lambdas 1.0 and x0_lambdas 0.1.
/// </summary>
public static class ParameterInitializer
{
    /// <summary>The values in fp64 (the CPU reference's).</summary>
    public static Dictionary<string, double[]> LikeSpec(ModelShape shape, int seed)
    {
        var result = new Dictionary<string, double[]>(StringComparer.Ordinal);
        Draw(shape, seed, (name, count) => result[name] = new double[count], null);
        return result;
    }

    /// <summary>The same values rounded to fp32 (the GPU's masters), without an fp64 copy of the model in between.</summary>
    public static Dictionary<string, float[]> LikeSpecSingle(ModelShape shape, int seed)
    {
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        Draw(shape, seed, null, (name, count) => result[name] = new float[count]);
        return result;
    }

    private const int Chunk = 1 << 16;

    // One draw sequence over the tensors in order; each tensor's kind is settled once, not per element (the baseline's 50 M
    // values are on the start-up's path). The draws are one sequence, so they are taken in order; the normal values'
    // logarithms, roots and cosines (most of the time) are then computed in parallel, each from the same two draws by the
    // same expression as one at a time would: the same bits. Each tensor goes to the fp64 array or the fp32 one that the
    // caller's function makes for it.
    private static void Draw(ModelShape shape, int seed, Func<string, long, double[]>? fp64, Func<string, long, float[]>? fp32)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var r = new Random(seed);
        double s = Math.Sqrt(3) / Math.Sqrt(shape.ModelDim);
        double[] draws = [];
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            long count = (long)rows * cols;
            double[]? d = fp64?.Invoke(name, count);
            float[]? f = fp32?.Invoke(name, count);
            switch (KindOf(name))
            {
                case Kind.Normal:
                    double std = name == "lm_head.weight" ? 0.001 : 1;
                    if (draws.LongLength < 2 * count)
                        draws = new double[2 * count];
                    for (long i = 0; i < 2 * count; i++)
                        draws[i] = r.NextDouble();
                    var u = draws;
                    Parallel.For(0, (count + Chunk - 1) / Chunk, c =>
                    {
                        long end = Math.Min(count, (c + 1) * Chunk);
                        for (long i = c * Chunk; i < end; i++)
                        {
                            double v = std * Math.Sqrt(-2 * Math.Log(1 - u[2 * i])) * Math.Cos(2 * Math.PI * u[2 * i + 1]);
                            if (d is not null)
                                d[i] = v;
                            else
                                f![i] = (float)v;
                        }
                    });
                    break;
                case Kind.Uniform:
                    if (d is not null)
                    {
                        for (long i = 0; i < count; i++)
                            d[i] = (r.NextDouble() * 2 - 1) * s;
                    }
                    else
                    {
                        for (long i = 0; i < count; i++)
                            f![i] = (float)((r.NextDouble() * 2 - 1) * s);
                    }
                    break;
                case Kind.Constant:
                    double value = name == "resid_lambdas" ? 1.0 : name == "x0_lambdas" ? 0.1 : 0.0;
                    if (d is not null)
                        Array.Fill(d, value);
                    else
                        Array.Fill(f!, (float)value);
                    break;
            }
        }
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

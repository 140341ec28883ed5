namespace AutoResearch.Optim;

/// <summary>
/// Where the optimizer rounds (the knob <c>Precision</c>; docs/precision.md has the table op by op).
/// <list type="bullet">
/// <item><see cref="Fp32"/>: fp32 masters for every parameter, fp32 Adam moments, the Muon update formed in fp32 from the bf16
/// orthogonalised matrix.</item>
/// <item><see cref="Reference"/>: the reference's roundings. wte and the value embeddings are bf16 parameters: their gradient,
/// Adam moments and new value are rounded to bf16 at every step (no fp32 master). In Muon, u is rounded to bf16 before its
/// norm, the norm and the normalised X are bf16, NorMuon's scale and the scaled X are bf16, lr and the weight decay are rounded
/// to bf16, and lr·X is formed in bf16; only the decay term lr·wd·p·mask and the sum are fp32.</item>
/// </list>
/// </summary>
public enum OptimizerPrecision
{
    Fp32,
    Reference,
}

/// <summary>The knob names of <see cref="OptimizerPrecision"/> (fp32, reference).</summary>
public static class OptimizerPrecisions
{
    public static IReadOnlyList<string> Names { get; } = ["fp32", "reference"];

    public static string Name(this OptimizerPrecision precision) => Names[(int)precision];

    /// <summary>fp32 or reference (any case); anything else throws naming the knob and the known values.</summary>
    public static OptimizerPrecision Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (int i = 0; i < Names.Count; i++)
        {
            if (string.Equals(text.Trim(), Names[i], StringComparison.OrdinalIgnoreCase))
                return (OptimizerPrecision)i;
        }
        throw new ArgumentException($"Precision = '{text}' is not known: expected one of {string.Join(", ", Names)}.");
    }

    /// <summary>Whether the group's tensors are bf16 parameters under this precision (wte and the value embeddings in reference mode).</summary>
    public static bool HasBf16Parameters(this OptimizerPrecision precision, ParameterGroup group)
        => precision == OptimizerPrecision.Reference && group is ParameterGroup.Embedding or ParameterGroup.ValueEmbedding;
}

namespace AutoResearch.Model;

/// <summary>
/// The MLP's non-linearity (the knob <c>Activation</c>). Each has a CPU reference in <see cref="Cpu.CpuOps"/> and a GPU path:
/// <list type="bullet">
/// <item><see cref="Relu2"/>: s = relu(u)², the reference's; hidden = MlpRatio·C.</item>
/// <item><see cref="Gelu"/>: s = 0.5·u·(1 + tanh(√(2/π)·(u + 0.044715·u³))) (the tanh form); hidden = MlpRatio·C.</item>
/// <item><see cref="SwiGlu"/>: c_fc yields [gate | up] (2·hidden rows: gate first), s = silu(gate) ⊙ up; hidden =
/// ⅔·MlpRatio·C rounded to 128, so the MLP keeps about the parameters of the others (3·hidden·C ≈ 2·MlpRatio·C²), and c_fc's
/// 2·hidden rows and c_proj's hidden columns fall on whole 128- and 256-wide GEMM tiles (1408 at width 512, where 64 gave
/// 1344 = 10.5 tiles of 128).</item>
/// </list>
/// </summary>
public enum Activation
{
    Relu2,
    Gelu,
    SwiGlu,
}

/// <summary>The knob names of <see cref="Activation"/> (relu2, gelu, swiglu) and the sizes each implies.</summary>
public static class Activations
{
    /// <summary>The names the knob takes, in the enum's order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["relu2", "gelu", "swiglu"];

    public static string Name(this Activation activation) => Names[(int)activation];

    /// <summary>relu2, gelu or swiglu (any case); anything else throws naming the knob and the known values.</summary>
    public static Activation Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (int i = 0; i < Names.Count; i++)
        {
            if (string.Equals(text.Trim(), Names[i], StringComparison.OrdinalIgnoreCase))
                return (Activation)i;
        }
        throw new ArgumentException($"Activation = '{text}' is not known: expected one of {string.Join(", ", Names)}.");
    }

    /// <summary>Whether c_fc produces two halves (gate, up) per hidden unit.</summary>
    public static bool IsGated(this Activation activation) => activation == Activation.SwiGlu;

    /// <summary>The hidden width for a model width and ratio: ratio·width rounded to a multiple of 64 (for the gated one, ⅔ of
    /// that rounded to a multiple of 128).</summary>
    public static int HiddenWidth(this Activation activation, int modelDim, double mlpRatio)
    {
        int multiple = activation.IsGated() ? 128 : 64;
        double hidden = mlpRatio * modelDim * (activation.IsGated() ? 2.0 / 3.0 : 1.0);
        return (int)Math.Max(multiple, Math.Round(hidden / multiple) * multiple);
    }
}

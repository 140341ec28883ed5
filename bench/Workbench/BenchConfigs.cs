using AutoResearch.Model;
using AutoResearch.Runner;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// The model configurations the kernel benchmarks run at, by name: each is a set of the experiment's knobs (as
/// <c>train --set Name=Value</c> takes them) applied to the baseline, turned into the one <see cref="ModelShape"/> the model,
/// its kernels and their compile-time constants are built from. A family runs the configurations its kernels depend on (the
/// Config column). To benchmark another shape, add a line here.
/// </summary>
public static class BenchConfigs
{
    /// <summary>The vocabulary of SPEC §1.</summary>
    public const int VocabSize = 8192;

    /// <summary>Name → knob assignments, the baseline first.</summary>
    private static readonly (string Name, string[] Knobs)[] Table =
    [
        ("baseline", []),                        // depth 8, width 512, 4 heads of 128, relu², soft cap 15, windows S = 1024 / L = 2048
        ("head64", ["HeadDim=64"]),              // 8 heads of 64
        ("gqa2", ["KvHeads=2"]),                 // 4 query heads on 2 key/value heads
        ("width1024", ["AspectRatio=128"]),      // 8 heads of 128
        ("width2048", ["AspectRatio=256"]),      // 16 heads of 128
        ("gelu", ["Activation=gelu"]),
        ("swiglu", ["Activation=swiglu"]),       // c_fc has 2·1408 rows, hidden 1408
        ("nocap", ["SoftCap=0"]),                // plain cross-entropy
    ];

    /// <summary>Every configuration's name, the baseline first.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.Select(c => c.Name).ToArray();

    /// <summary>The knob assignments of a configuration.</summary>
    public static IReadOnlyList<string> KnobsOf(string name)
    {
        foreach (var (n, knobs) in Table)
        {
            if (n == name)
                return knobs;
        }
        throw new ArgumentException($"unknown configuration '{name}'; the configurations are {string.Join(", ", Names)}", nameof(name));
    }

    /// <summary>The experiment's knobs for a configuration (checked).</summary>
    public static Hyperparameters Hyperparameters(string name) => Knobs.Apply(Runner.Hyperparameters.Default, KnobsOf(name)).Validate();

    /// <summary>The model shape of a configuration at <paramref name="seqLen"/> tokens per row.</summary>
    public static ModelShape Shape(string name, int seqLen = 2048) => Hyperparameters(name).Shape(VocabSize, seqLen);

    /// <summary>One line per configuration: its name, knobs and the shape they give (bench --list-configs).</summary>
    public static IEnumerable<string> Describe()
    {
        foreach (var (name, knobs) in Table)
            yield return $"{name,-10} {(knobs.Length == 0 ? "(the defaults)" : string.Join(' ', knobs)),-20} {Shape(name).Describe()}";
    }
}

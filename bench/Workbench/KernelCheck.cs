using System.Globalization;
using System.Text;
using AutoResearch.Native;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// The check a benchmark runs once before it times a kernel: each output tensor, computed on fresh random inputs into a buffer
/// poisoned with NaN, against the fp64 CPU reference, as a relative L2 error (<see cref="Accuracy.RelativeL2"/>: NaN or ∞
/// never passes) within a bound that fits the output's precision. <see cref="ThrowIfFailed"/> refuses a kernel that missed
/// any bound, naming it, the tensor, the error and the bound.
/// </summary>
public sealed class KernelCheck
{
    private readonly List<Comparison> _comparisons = [];

    /// <param name="kernel">The kernel (or kernels, "a + b") whose outputs are compared.</param>
    /// <param name="seed">Seed of the random inputs, quoted on failure.</param>
    /// <param name="inputs">What the inputs were, e.g. "1024 rows of 512".</param>
    public KernelCheck(string kernel, int seed, string inputs)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kernel);
        Kernel = kernel;
        Seed = seed;
        Inputs = inputs;
    }

    /// <summary>One tensor's comparison: its relative L2 error, the bound, and the first element that is not finite (−1: none).</summary>
    public sealed record Comparison(string Tensor, double Error, double Bound, long FirstNonFinite, float NonFiniteValue, long Length)
    {
        public bool Passed => Error <= Bound;

        public string Describe()
        {
            if (FirstNonFinite >= 0)
            {
                return $"{Tensor}: element {FirstNonFinite} of {Length} is {NonFiniteValue.ToString(CultureInfo.InvariantCulture)} "
                    + "(outputs are poisoned with NaN before the kernel runs: an element left unwritten, or a NaN or ∞ computed)";
            }
            return $"{Tensor}: relative L2 error {Error.ToString("E2", CultureInfo.InvariantCulture)} "
                + $"{(Passed ? "within" : "over")} the bound {Bound.ToString("E1", CultureInfo.InvariantCulture)}";
        }
    }

    public string Kernel { get; }

    public int Seed { get; }

    public string Inputs { get; }

    public IReadOnlyList<Comparison> Comparisons => _comparisons;

    public bool Passed => _comparisons.Count > 0 && _comparisons.TrueForAll(c => c.Passed);

    /// <summary>Compares <paramref name="actual"/> (what the kernel wrote) with the reference.</summary>
    public Comparison Compare(string tensor, ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double bound)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bound);
        if (actual.Length != expected.Length)
            throw new ArgumentException($"{Kernel} check of {tensor}: the kernel's output has {actual.Length} elements, the reference {expected.Length}");
        long bad = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i]))
            {
                bad = i;
                break;
            }
        }
        var comparison = new Comparison(tensor, Accuracy.RelativeL2(actual, expected), bound, bad, bad >= 0 ? actual[(int)bad] : 0f, actual.Length);
        _comparisons.Add(comparison);
        return comparison;
    }

    /// <summary>
    /// Compares what a kernel added to an accumulated (+=) output, its value after the call minus <paramref name="start"/> (the
    /// random values it held before), with the reference's increment: a start value cannot hide a small error in the sum.
    /// </summary>
    public Comparison CompareIncrement(string tensor, ReadOnlySpan<float> actual, ReadOnlySpan<float> start, ReadOnlySpan<double> expectedIncrement, double bound)
    {
        if (actual.Length != start.Length)
            throw new ArgumentException($"{Kernel} check of {tensor}: the output has {actual.Length} elements, its start {start.Length}");
        var increment = new float[actual.Length];
        for (int i = 0; i < increment.Length; i++)
            increment[i] = actual[i] - start[i];
        return Compare($"{tensor} (increment)", increment, expectedIncrement, bound);
    }

    /// <summary>Compares a bf16 output (its bits) with the reference.</summary>
    public Comparison CompareBf16(string tensor, ReadOnlySpan<ushort> actual, ReadOnlySpan<double> expected, double bound)
        => Compare(tensor, Bf16.ToFloat(actual), expected, bound);

    /// <summary>The comparison furthest from its bound (error ÷ bound), for the results table.</summary>
    public Comparison? Worst => _comparisons.Count == 0 ? null
        : _comparisons.MaxBy(c => c.FirstNonFinite >= 0 ? double.PositiveInfinity : c.Bound == 0 ? (c.Error == 0 ? 0 : double.PositiveInfinity) : c.Error / c.Bound);

    /// <summary>One short line for the table: the worst tensor's error and bound.</summary>
    public string Summary()
    {
        var w = Worst;
        if (w is null)
            return "not checked";
        return $"{w.Tensor} {w.Error.ToString("0.0E+0", CultureInfo.InvariantCulture)} ≤ {w.Bound.ToString("0E+0", CultureInfo.InvariantCulture)}";
    }

    /// <summary>Refuses the kernel (throws <see cref="KernelCheckException"/>) unless every comparison passed.</summary>
    public void ThrowIfFailed()
    {
        if (_comparisons.Count == 0)
            throw new InvalidOperationException($"{Kernel}: the check compared nothing, so the kernel cannot be timed");
        var failures = _comparisons.Where(c => !c.Passed).ToList();
        if (failures.Count == 0)
            return;
        var message = new StringBuilder();
        message.Append(CultureInfo.InvariantCulture, $"{Kernel} refused, not timed: its output disagrees with the fp64 CPU reference ")
            .Append(CultureInfo.InvariantCulture, $"on fresh random inputs ({Inputs}, seed {Seed}):");
        foreach (var f in failures)
            message.Append("\n  ").Append(f.Describe());
        message.Append("\nFix the kernel (the GPU tests under tests/ compare it with the same reference), then benchmark it again.");
        throw new KernelCheckException(Kernel, failures, message.ToString());
    }
}

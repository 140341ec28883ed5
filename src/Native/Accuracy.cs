namespace AutoResearch.Native;

/// <summary>How close a result computed on the device is to a reference: the measure the kernel tests, the model parity check
/// and the benchmarks' pre-timing checks share.</summary>
public static class Accuracy
{
    /// <summary>‖actual − expected‖₂ / ‖expected‖₂; +∞ when anything in <paramref name="actual"/> is not finite (NaN never passes).</summary>
    public static double RelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        if (actual.Length != expected.Length)
            throw new ArgumentException($"length mismatch: {actual.Length} vs {expected.Length}");
        double diff = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i]))
                return double.PositiveInfinity;
            double d = actual[i] - expected[i];
            diff += d * d;
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), double.Epsilon);
    }
}

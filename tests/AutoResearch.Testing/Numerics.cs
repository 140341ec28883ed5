using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Testing;

/// <summary>Random test data and tolerance checks shared by the tests.</summary>
public static class Numerics
{
    /// <summary>Uniform values in [-scale, scale) (never all zeros).</summary>
    public static float[] RandomUniform(Random random, long count, float scale = 1f)
    {
        ArgumentNullException.ThrowIfNull(random);
        var result = new float[count];
        for (long i = 0; i < count; i++)
            result[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        return result;
    }

    /// <summary>Uniform values in [-scale, scale) rounded to bf16: the bits to upload and the exact values as fp64.</summary>
    public static (ushort[] Bits, double[] Values) RandomBf16(Random random, long count, double scale = 1)
    {
        ArgumentNullException.ThrowIfNull(random);
        var bits = new ushort[count];
        var values = new double[count];
        for (long i = 0; i < count; i++)
        {
            bits[i] = AutoResearch.Native.Bf16.FromFloat((float)((random.NextDouble() * 2 - 1) * scale));
            values[i] = AutoResearch.Native.Bf16.ToFloat(bits[i]);
        }
        return (bits, values);
    }

    /// <summary>‖actual − expected‖ / ‖expected‖ in fp64; NaN or infinity anywhere in actual gives +∞.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected) => Accuracy.RelativeL2(actual, expected);

    /// <summary>Asserts the relative error is within <paramref name="tolerance"/>, naming the tensor, the error and the seed.</summary>
    public static void AssertClose(string what, ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double tolerance, int seed)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i]))
                Assert.Fail($"{what}: element {i} of {actual.Length} is {actual[i]} (expected {expected[i]:G6}; seed {seed})");
        }
        double error = RelativeError(actual, expected);
        Assert.True(error <= tolerance, $"{what}: relative error {error:E3} > tolerance {tolerance:E1} (seed {seed})");
    }
}

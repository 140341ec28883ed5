using System.Runtime.CompilerServices;

namespace AutoResearch.Native;

/// <summary>bfloat16 stored as its 16 bits (the top half of an fp32), with round-to-nearest-even conversion.</summary>
public static class Bf16
{
    /// <summary>fp32 → bf16 bits, round to nearest even; NaN stays NaN.</summary>
    public static ushort FromFloat(float value)
    {
        uint bits = Unsafe.BitCast<float, uint>(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000)
            return (ushort)((bits >> 16) | 0x0040); // quiet NaN
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>bf16 bits → fp32 (exact).</summary>
    public static float ToFloat(ushort bits) => Unsafe.BitCast<uint, float>((uint)bits << 16);

    /// <summary>Rounds an fp32 to the nearest bf16 value, returned as fp32.</summary>
    public static float Round(float value) => ToFloat(FromFloat(value));

    /// <summary>
    /// Rounds every value to the nearest bf16 in place (<see cref="Round"/> of each), in parallel chunks of 1 M: the optimizer
    /// rounds the bf16 parameters' masters of a model this way before its first step, on the start-up's path.
    /// </summary>
    public static void RoundInPlace(float[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        const int chunk = 1 << 20;
        Parallel.For(0, (values.Length + chunk - 1) / chunk, c =>
        {
            var part = values.AsSpan(c * chunk, Math.Min(chunk, values.Length - c * chunk));
            for (int i = 0; i < part.Length; i++)
                part[i] = Round(part[i]);
        });
    }

    public static void FromFloat(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than source", nameof(destination));
        for (int i = 0; i < source.Length; i++)
            destination[i] = FromFloat(source[i]);
    }

    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than source", nameof(destination));
        for (int i = 0; i < source.Length; i++)
            destination[i] = ToFloat(source[i]);
    }

    public static ushort[] FromFloat(ReadOnlySpan<float> source)
    {
        var result = new ushort[source.Length];
        FromFloat(source, result);
        return result;
    }

    public static float[] ToFloat(ReadOnlySpan<ushort> source)
    {
        var result = new float[source.Length];
        ToFloat(source, result);
        return result;
    }
}

using AutoResearch.Native;

namespace AutoResearch.Bench.Workbench;

/// <summary>Random check inputs made on the host: uniform values (never all zeros), bf16-rounded where a kernel reads bf16.</summary>
public static class HostRandom
{
    /// <summary>Uniform in [−scale, scale), rounded to bf16: the bits to upload and the values they hold.</summary>
    public static (ushort[] Bits, double[] Values) Bf16Values(Random random, long count, double scale = 1)
    {
        ArgumentNullException.ThrowIfNull(random);
        var bits = new ushort[count];
        var values = new double[count];
        for (long i = 0; i < count; i++)
        {
            bits[i] = Bf16.FromFloat((float)((random.NextDouble() * 2 - 1) * scale));
            values[i] = Bf16.ToFloat(bits[i]);
        }
        return (bits, values);
    }

    /// <summary>Uniform fp32 values in [−scale, scale).</summary>
    public static float[] Floats(Random random, long count, double scale = 1)
    {
        ArgumentNullException.ThrowIfNull(random);
        var values = new float[count];
        for (long i = 0; i < count; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        return values;
    }

    /// <summary>Uniform fp32 values in [low, high).</summary>
    public static float[] Floats(Random random, long count, double low, double high)
    {
        ArgumentNullException.ThrowIfNull(random);
        var values = new float[count];
        for (long i = 0; i < count; i++)
            values[i] = (float)(low + random.NextDouble() * (high - low));
        return values;
    }

    /// <summary>Token ids uniform in [0, vocab).</summary>
    public static int[] Ids(Random random, long count, int vocab)
    {
        ArgumentNullException.ThrowIfNull(random);
        var ids = new int[count];
        for (long i = 0; i < count; i++)
            ids[i] = random.Next(vocab);
        return ids;
    }
}

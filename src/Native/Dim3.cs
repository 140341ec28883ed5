namespace AutoResearch.Native;

/// <summary>A grid or block size.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(uint x) => new(x);

    public static implicit operator Dim3(int x) => new(checked((uint)x));

    public static Dim3 FromUInt32(uint x) => new(x);

    /// <summary>The number of blocks of <paramref name="blockSize"/> needed to cover <paramref name="count"/> items.</summary>
    public static uint Blocks(long count, int blockSize) => checked((uint)((count + blockSize - 1) / blockSize));
}

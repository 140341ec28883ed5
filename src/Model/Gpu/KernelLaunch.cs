using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launch-shape helpers shared by the kernel launchers.</summary>
internal static class KernelLaunch
{
    /// <summary>Threads per block for the row kernels: 8 warps, one row (or vector) per warp.</summary>
    public const int RowBlock = 256;

    public const int RowsPerBlock = RowBlock / 32;

    /// <summary>Blocks for a grid-stride elementwise kernel: enough to fill the GPU (16 a multiprocessor), never more than the work.</summary>
    public static uint ElementwiseBlocks(long count, int multiprocessors, int perThread = 1)
        => (uint)Math.Clamp((count / perThread + RowBlock - 1) / RowBlock, 1, 16L * multiprocessors);

    /// <summary>The multiprocessor count of the device a kernel cache compiles for.</summary>
    public static int Multiprocessors(KernelCache kernels) => kernels.Device.Properties.MultiprocessorCount;

    public static uint RowBlocks(long rows) => Dim3.Blocks(rows, RowsPerBlock);

    public static void RequireMultipleOf8(int value, string name)
    {
        if (value <= 0 || value % 8 != 0)
            throw new ArgumentException($"{name} must be a positive multiple of 8 (16-byte accesses); got {value}.", name);
    }

    /// <summary>Vector loads, stores and atomics need their device address aligned to the vector's size.</summary>
    public static void RequireAligned(ulong pointer, int bytes, string name)
    {
        if (pointer % (ulong)bytes != 0)
            throw new ArgumentException($"{name} must be {bytes}-byte aligned for vector accesses; its address is 0x{pointer:x}.", name);
    }
}

using System.Runtime.CompilerServices;

namespace AutoResearch.Native;

/// <summary>
/// A TMA tensor map (the driver's 128-byte <c>CUtensorMap</c>) describing a row-major bf16 matrix and the box one copy moves,
/// with the 128-byte swizzle the wgmma tiles use (kernels/wgmma.cuh). It is passed by value as a <c>__grid_constant__</c>
/// kernel parameter (<see cref="CudaKernel.Launch(Dim3, Dim3, int, CudaStream, ReadOnlySpan{TensorMap}, ReadOnlySpan{KernelArg})"/>).
/// </summary>
[InlineArray(16)]
public struct TensorMap
{
    private ulong _element;

    /// <summary>Size of the descriptor in bytes.</summary>
    public const int Bytes = 128;

    /// <summary>
    /// The map of a row-major bf16 matrix of <paramref name="rows"/> × <paramref name="columns"/> at <paramref name="address"/>,
    /// copied in boxes of <paramref name="boxRows"/> × <paramref name="boxColumns"/> (boxColumns · 2 bytes must be 128: one
    /// swizzle row).
    /// </summary>
    public static TensorMap Bf16Swizzled(ulong address, long rows, long columns, int boxRows, int boxColumns)
        => Encode(2, address, 1, rows, columns, boxRows, boxColumns);

    /// <summary>
    /// The map of <paramref name="batches"/> row-major bf16 matrices of <paramref name="rows"/> × <paramref name="columns"/> one
    /// after another at <paramref name="address"/> (e.g. [B, T, H·128]: coordinates column, row, batch), copied in boxes of
    /// <paramref name="boxRows"/> × <paramref name="boxColumns"/> within one matrix: a box reaching past the last row is
    /// zero-filled there, not taken from the next matrix. Always rank 3, so the kernel's copies name three coordinates.
    /// </summary>
    public static TensorMap Bf16SwizzledBatched(ulong address, long batches, long rows, long columns, int boxRows, int boxColumns)
        => Encode(3, address, batches, rows, columns, boxRows, boxColumns);

    private static unsafe TensorMap Encode(uint rank, ulong address, long batches, long rows, long columns, int boxRows, int boxColumns)
    {
        if (boxColumns * 2 != 128)
            throw new ArgumentException($"a 128-byte-swizzled box is 64 bf16 wide; got {boxColumns}.", nameof(boxColumns));
        if (boxRows is < 1 or > 256)
            throw new ArgumentException($"a TMA box has 1 to 256 rows; got {boxRows}.", nameof(boxRows));
        if (address % 16 != 0 || columns * 2 % 16 != 0)
            throw new ArgumentException($"TMA needs 16-byte aligned rows; address 0x{address:x}, {columns} bf16 a row.", nameof(address));
        if (batches < 1 || rows < 1 || columns < 1)
            throw new ArgumentException($"a tensor map needs a non-empty tensor; got {batches} x {rows} x {columns}.", nameof(rows));
        ulong* dims = stackalloc ulong[3] { (ulong)columns, (ulong)rows, (ulong)batches };
        ulong* strides = stackalloc ulong[2] { (ulong)columns * 2, (ulong)(rows * columns * 2) };
        uint* box = stackalloc uint[3] { (uint)boxColumns, (uint)boxRows, 1 };
        uint* elementStrides = stackalloc uint[3] { 1, 1, 1 };
        // The driver wants the descriptor 64-byte aligned: encode into an aligned scratch, then copy out.
        byte* scratch = stackalloc byte[Bytes + 64];
        var aligned = (TensorMap*)(((nuint)scratch + 63) & ~(nuint)63);
        Cuda.cuTensorMapEncodeTiled(aligned, CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, rank, address, dims, strides, box,
            elementStrides, CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE, CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
            CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
            .Check($"cuTensorMapEncodeTiled(bf16 {batches} x {rows} x {columns} at 0x{address:x}, box {boxRows} x {boxColumns})");
        return *aligned;
    }
}

/// <summary>Element types of a tensor map (cuda.h values; the ones used here).</summary>
public enum CUtensorMapDataType
{
    CU_TENSOR_MAP_DATA_TYPE_FLOAT32 = 7,
    CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 = 9,
}

public enum CUtensorMapInterleave
{
    CU_TENSOR_MAP_INTERLEAVE_NONE = 0,
}

public enum CUtensorMapSwizzle
{
    CU_TENSOR_MAP_SWIZZLE_NONE = 0,
    CU_TENSOR_MAP_SWIZZLE_128B = 3,
}

public enum CUtensorMapL2promotion
{
    CU_TENSOR_MAP_L2_PROMOTION_NONE = 0,
    CU_TENSOR_MAP_L2_PROMOTION_L2_256B = 3,
}

public enum CUtensorMapFloatOOBfill
{
    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0,
}

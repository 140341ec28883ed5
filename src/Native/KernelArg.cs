using System.Runtime.CompilerServices;

namespace AutoResearch.Native;

/// <summary>
/// One kernel argument in an 8-byte slot: device pointers, 32/64-bit integers and floats. The driver reads
/// sizeof(parameter) bytes from the slot, so narrower values sit in its low bytes (little-endian).
/// Pass them to <see cref="CudaKernel.Launch(Dim3, Dim3, int, CudaStream, ReadOnlySpan{KernelArg})"/> as a params list: no allocation.
/// </summary>
public readonly struct KernelArg
{
    internal readonly ulong Bits;

    private KernelArg(ulong bits) => Bits = bits;

    public static implicit operator KernelArg(ulong devicePointerOrValue) => new(devicePointerOrValue);

    public static implicit operator KernelArg(long value) => new(unchecked((ulong)value));

    public static implicit operator KernelArg(int value) => new(unchecked((uint)value));

    public static implicit operator KernelArg(uint value) => new(value);

    public static implicit operator KernelArg(float value) => new(Unsafe.BitCast<float, uint>(value));

    public static KernelArg FromUInt64(ulong value) => new(value);

    public static KernelArg FromInt32(int value) => new(unchecked((uint)value));

    public static KernelArg FromSingle(float value) => new(Unsafe.BitCast<float, uint>(value));
}

using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>
/// NVML (libnvidia-ml.so.1, part of the driver), the few queries <see cref="GpuPowerMonitor"/> makes: the energy counter, the
/// SM clock, the power limit, and why the clocks are held down. Status 0 is success; handles are opaque pointers.
/// </summary>
internal static unsafe partial class Nvml
{
    public const int Success = 0;
    /// <summary>nvmlClockType_t: the SM clock.</summary>
    public const int ClockSm = 1;

    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlInit_v2();
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlShutdown();
    [LibraryImport(NativeLibraries.Nvml)] public static partial byte* nvmlErrorString(int result);
    [LibraryImport(NativeLibraries.Nvml, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvmlDeviceGetHandleByPciBusId_v2(string pciBusId, out IntPtr device);
    /// <summary>Millijoules since the driver was loaded (Volta and newer).</summary>
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetTotalEnergyConsumption(IntPtr device, out ulong millijoules);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetClockInfo(IntPtr device, int type, out uint megahertz);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetEnforcedPowerLimit(IntPtr device, out uint milliwatts);
    /// <summary>A mask of <see cref="ClockReasons"/>: what holds the clocks below their maximum now (drivers since 535).</summary>
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetCurrentClocksEventReasons(IntPtr device, out ulong reasons);
    /// <summary>The same mask under its older name.</summary>
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetCurrentClocksThrottleReasons(IntPtr device, out ulong reasons);

    /// <summary>NVML's text for a status.</summary>
    public static string Describe(int result)
    {
        byte* text = nvmlErrorString(result);
        return text == null ? $"NVML error {result}" : Marshal.PtrToStringUTF8((IntPtr)text) ?? $"NVML error {result}";
    }
}

/// <summary>The bits of NVML's clock-reason mask that <see cref="PowerSummary"/> counts.</summary>
public static class ClockReasons
{
    public const ulong SoftwarePowerCap = 0x4;
    public const ulong HardwareSlowdown = 0x8;
    public const ulong SoftwareThermalSlowdown = 0x20;
    public const ulong HardwareThermalSlowdown = 0x40;
    public const ulong HardwarePowerBrake = 0x80;
    /// <summary>Every slowdown other than the power cap: thermal limits and the hardware's own brakes.</summary>
    public const ulong OtherSlowdowns = HardwareSlowdown | SoftwareThermalSlowdown | HardwareThermalSlowdown | HardwarePowerBrake;
}

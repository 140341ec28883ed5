namespace AutoResearch.Native;

/// <summary>What the project needs to know about a GPU, read once from the driver.</summary>
public sealed record DeviceProperties(
    int Ordinal,
    string Name,
    int ComputeMajor,
    int ComputeMinor,
    int MultiprocessorCount,
    long TotalMemoryBytes,
    int L2CacheBytes,
    int MaxSharedMemoryPerBlockOptIn,
    int MaxThreadsPerBlock)
{
    /// <summary>The NVRTC target for this device: Hopper and newer get the arch-specific "a" target so wgmma/setmaxnreg are reachable.</summary>
    public string GpuArchitecture => ComputeMajor >= 9 ? $"sm_{ComputeMajor}{ComputeMinor}a" : $"sm_{ComputeMajor}{ComputeMinor}";

    public override string ToString()
        => $"{Name} (compute {ComputeMajor}.{ComputeMinor}, {MultiprocessorCount} SMs, {TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB)";
}

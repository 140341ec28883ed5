using AutoResearch.Native;

namespace AutoResearch.Testing;

/// <summary>Device descriptions for the decisions made from a device's properties alone (paths, memory estimates, compile
/// plans), with no GPU present.</summary>
public static class FakeDevices
{
    /// <summary>A Hopper GPU (compute 9.0) as an H200 reports itself.</summary>
    public static DeviceProperties H200 { get; } = new(0, "NVIDIA H200", 9, 0, 132, 150L << 30, 60 << 20, 232448, 1024);

    /// <summary>An Ampere GPU (compute 8.0), where our Hopper kernels do not run.</summary>
    public static DeviceProperties A100 { get; } = new(0, "NVIDIA A100", 8, 0, 108, 80L << 30, 40 << 20, 166912, 1024);
}

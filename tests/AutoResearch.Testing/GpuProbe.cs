namespace AutoResearch.Testing;

/// <summary>Whether a CUDA device can be used by the tests; probed once per process.</summary>
public static class GpuProbe
{
    private static readonly Lazy<(bool, string)> Probe = new(Run);

    public static bool Available => Probe.Value.Item1;

    public static string Reason => Probe.Value.Item2;

    private static (bool, string) Run()
    {
        // Filled in by the Native layer: until then no device is usable.
        return (false, "the CUDA binding is not built yet");
    }
}

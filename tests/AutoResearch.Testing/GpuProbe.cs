using AutoResearch.Native;

namespace AutoResearch.Testing;

/// <summary>Whether a CUDA device can be used by the tests; probed once per process, with the reason when it cannot.</summary>
public static class GpuProbe
{
    private static readonly Lazy<(bool, string)> Probe = new(Run);

    public static bool Available => Probe.Value.Item1;

    public static string Reason => Probe.Value.Item2;

    private static (bool, string) Run()
    {
        try
        {
            int count = CudaDevice.Count();
            return count > 0 ? (true, $"{count} device(s)") : (false, "the CUDA driver reports no device");
        }
#pragma warning disable CA1031 // Any failure to reach a GPU means "skip", with the reason.
        catch (Exception e)
#pragma warning restore CA1031
        {
            var firstLine = e.Message.Split('\n')[0];
            return (false, firstLine);
        }
    }
}

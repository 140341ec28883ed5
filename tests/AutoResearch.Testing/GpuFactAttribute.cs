using System.Runtime.CompilerServices;
using Xunit;

namespace AutoResearch.Testing;

/// <summary>
/// A test that needs a CUDA device. Where none is usable it is reported as skipped (never passed),
/// with the reason the probe gave. Filter GPU tests with the trait Category=GPU.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class GpuFactAttribute : FactAttribute
{
    public GpuFactAttribute([CallerFilePath] string? sourceFilePath = null, [CallerLineNumber] int sourceLineNumber = -1)
        : base(sourceFilePath, sourceLineNumber)
    {
        if (!GpuProbe.Available)
            Skip = $"no usable CUDA device: {GpuProbe.Reason}";
    }
}

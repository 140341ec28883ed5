using System.Runtime.CompilerServices;
using Xunit;

namespace AutoResearch.Testing;

/// <summary>A data-driven test that needs a CUDA device: skipped (never passed) where none is usable.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    public GpuTheoryAttribute([CallerFilePath] string? sourceFilePath = null, [CallerLineNumber] int sourceLineNumber = -1)
        : base(sourceFilePath, sourceLineNumber)
    {
        if (!GpuProbe.Available)
            Skip = $"no usable CUDA device: {GpuProbe.Reason}";
    }
}

using System.Runtime.CompilerServices;
using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Testing;

/// <summary>
/// A test that needs NVRTC (the library, not a GPU): compiling kernels to cubins. Where NVRTC cannot be loaded it is reported
/// as skipped (never passed), with the reason.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class NvrtcFactAttribute : FactAttribute
{
    /// <summary>Why NVRTC cannot be loaded here, or null when it can.</summary>
    internal static readonly Lazy<string?> Missing = new(() =>
    {
        try
        {
            NvrtcCompiler.Version();
            return null;
        }
#pragma warning disable CA1031 // Any failure to load NVRTC means "skip", with the reason.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return e.Message.Split('\n')[0];
        }
    });

    public NvrtcFactAttribute([CallerFilePath] string? sourceFilePath = null, [CallerLineNumber] int sourceLineNumber = -1)
        : base(sourceFilePath, sourceLineNumber)
    {
        if (Missing.Value is { } reason)
            Skip = $"NVRTC cannot be loaded: {reason}";
    }

    /// <summary>
    /// A real GPU architecture every NVRTC from CUDA 11.1 on compiles for (so a CPU-only machine can build cubins in tests):
    /// the test kernels use nothing newer.
    /// </summary>
    public const string PortableArchitecture = "sm_80";
}

/// <summary>A theory that needs NVRTC (not a GPU), skipped with the reason where NVRTC cannot be loaded; see <see cref="NvrtcFactAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class NvrtcTheoryAttribute : TheoryAttribute
{
    public NvrtcTheoryAttribute([CallerFilePath] string? sourceFilePath = null, [CallerLineNumber] int sourceLineNumber = -1)
        : base(sourceFilePath, sourceLineNumber)
    {
        if (NvrtcFactAttribute.Missing.Value is { } reason)
            Skip = $"NVRTC cannot be loaded: {reason}";
    }
}

using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Testing;

/// <summary>Compiling the Hopper kernels to PTX for compute_90, which needs NVRTC 11.8 or later and CUDA's headers, not a GPU.</summary>
public static class HopperPtx
{
    /// <summary>The options the project's kernels compile with, for compute_90; skips the test where NVRTC or the headers fall short.</summary>
    public static List<string> Options()
    {
        if (NvrtcCompiler.Version() is var (major, minor) && (major, minor).CompareTo((11, 8)) < 0)
            Assert.Skip($"NVRTC {major}.{minor} predates compute_90 (CUDA 11.8)");
        var toolkit = KernelCache.ToolkitIncludeDirectory();
        if (toolkit is null)
            Assert.Skip("no CUDA include folder with cuda_bf16.h ($CUDA_HOME/include or /usr/local/cuda/include)");
        return
        [
            "--gpu-architecture=compute_90", "--std=c++17", "--device-as-default-execution-space",
            $"--include-path={KernelCache.DefaultKernelDirectory}", $"--include-path={toolkit}",
        ];
    }

    /// <summary>The PTX of <paramref name="source"/> (a file of the kernel folder and its options) for compute_90.</summary>
    public static string Compile(KernelSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var path = Path.Combine(KernelCache.DefaultKernelDirectory, source.FileName);
        return NvrtcCompiler.CompileToPtx(File.ReadAllText(path), path, [.. Options(), .. source.Options]);
    }
}

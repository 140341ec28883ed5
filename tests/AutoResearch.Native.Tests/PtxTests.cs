using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>
/// Kernels compiled to PTX, which needs NVRTC but no GPU: the Hopper kernels for compute_90 at both head sizes (their
/// instructions are inline PTX, so this catches a broken edit of them on any machine with NVRTC), and the PTX mode itself.
/// </summary>
public class PtxTests
{
    private const string Scale = "extern \"C\" __global__ void scale(float* x, int n) { int i = threadIdx.x; if (i < n) x[i] *= FACTOR; }\n";

    [NvrtcFact]
    public void Ptx_needs_no_real_architecture_and_a_broken_source_throws_with_the_log()
    {
        var ptx = NvrtcCompiler.CompileToPtx(Scale, "scale.cu", ["--gpu-architecture=compute_80", "-DFACTOR=3.0f"]);

        Assert.Contains(".entry scale", ptx, StringComparison.Ordinal);
        Assert.Contains(".target sm_80", ptx, StringComparison.Ordinal);
        Assert.Contains("mul.f32", ptx, StringComparison.Ordinal);
        var e = Assert.Throws<NvrtcCompileException>(() => NvrtcCompiler.CompileToPtx(Scale, "scale.cu", ["--gpu-architecture=compute_80"]));
        Assert.Contains("FACTOR", e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, int, string> HopperKernels => new()
    {
        { "flash_forward.cu", 64, "flash_attention_forward" },
        { "flash_forward.cu", 128, "flash_attention_forward" },
        { "flash_backward.cu", 64, "flash_attention_backward" },
        { "flash_backward.cu", 128, "flash_attention_backward" },
        { "mlp_gemm.cu", 128, "mlp_proj_input_gradient_gelu" },
    };

    [NvrtcTheory]
    [MemberData(nameof(HopperKernels))]
    public void The_hopper_kernels_compile_to_ptx_for_compute_90(string file, int headDim, string entry)
    {
        var path = Path.Combine(KernelCache.DefaultKernelDirectory, file);

        var ptx = NvrtcCompiler.CompileToPtx(File.ReadAllText(path), path, [.. HopperPtx.Options(), $"-DHEAD_DIM={headDim}"]);

        Assert.Contains($".entry {entry}", ptx, StringComparison.Ordinal);
        Assert.Contains("wgmma.mma_async", ptx, StringComparison.Ordinal);
        Assert.Contains("mbarrier.try_wait", ptx, StringComparison.Ordinal);
        // The launchers read the dynamic shared memory size from the module: it is a constant of the file.
        Assert.Matches(@"\.const \.align 4 \.u32 (flash_forward|flash_backward|mlp_gemm)_shared_bytes = \d+;", ptx);
    }
}

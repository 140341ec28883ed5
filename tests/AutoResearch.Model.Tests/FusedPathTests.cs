using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Model.Tests;

/// <summary>Which projections take our GEMMs with fused epilogues, decided from the shape alone (no GPU needed).</summary>
public class FusedPathTests
{
    private static readonly DeviceProperties H200 = new(0, "NVIDIA H200", 9, 0, 132, 150L << 30, 60 << 20, 232448, 1024);
    private static readonly DeviceProperties A100 = new(0, "NVIDIA A100", 8, 0, 108, 80L << 30, 40 << 20, 166912, 1024);

    [Fact]
    public void The_rotary_gemm_takes_whole_heads_in_its_tiles_on_hopper_only()
    {
        var baseline = ModelShape.FromKnobs(8, 64, "SSSL", 8192, 2048);   // width 512: 4 heads of 128, k 512
        Assert.True(GpuGpt.UsesFusedRotary(H200, baseline, 128, baseline.ModelDim));
        Assert.True(GpuGpt.UsesFusedRotary(H200, baseline, 128, baseline.KvHeads * baseline.HeadDim));
        Assert.False(GpuGpt.UsesFusedRotary(A100, baseline, 128, baseline.ModelDim));

        var oneKvHead = ModelShape.FromKnobs(2, 256, "SSSL", 512, 256, 128, 1);   // k is one head of 128: half a tile
        Assert.True(GpuGpt.UsesFusedRotary(H200, oneKvHead, 1, oneKvHead.ModelDim));
        Assert.False(GpuGpt.UsesFusedRotary(H200, oneKvHead, 1, oneKvHead.KvHeads * oneKvHead.HeadDim));

        Assert.False(MlpGemm.SupportsRotary(262144, 512, 512, 96));   // heads of 96: not a size the epilogue takes
        Assert.False(MlpGemm.SupportsRotary(200, 512, 512, 128));     // tokens off the 128-row tile
        Assert.True(MlpGemm.SupportsRotary(256, 384, 768, 64));       // width 384, 12 heads of 64 over 3 tiles
    }

    [Fact]
    public void A_swiglu_model_compiles_the_gemm_file_for_its_q_and_k_alone()
    {
        var swiglu = ModelShape.FromKnobs(2, 128, "SSSL", 512, 256, 128, 0, 4.0, Activation.SwiGlu);
        var files = GpuGpt.KernelSources(H200, swiglu, 1).Select(s => s.FileName).ToList();
        Assert.False(GpuGpt.UsesFusedMlp(H200, swiglu, 1));
        Assert.Contains("mlp_gemm.cu", files);
        Assert.DoesNotContain("mlp_gemm.cu", GpuGpt.KernelSources(H200, swiglu, 1, fusedQk: false).Select(s => s.FileName));
        Assert.DoesNotContain("mlp_gemm.cu", GpuGpt.KernelSources(A100, swiglu, 1).Select(s => s.FileName));
    }
}

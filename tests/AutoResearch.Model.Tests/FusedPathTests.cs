using AutoResearch.Model.Gpu;
using System.Text.RegularExpressions;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests;

/// <summary>Which projections take our GEMMs with fused epilogues, decided from the shape alone (no GPU needed).</summary>
public class FusedPathTests
{
    private static readonly DeviceProperties H200 = FakeDevices.H200;
    private static readonly DeviceProperties A100 = FakeDevices.A100;

    [Theory]
    [InlineData(128, 2048, 4, 128)]   // the baseline
    [InlineData(1, 130, 3, 64)]       // rows that do not fill 256-byte lines
    public void The_flash_backward_scratch_holds_d_two_accumulators_and_the_counter_apart(int batch, int seqLen, int heads, int headDim)
    {
        long rows = (long)batch * seqLen * heads, accumulatorBytes = 4 * rows * headDim;
        long first = FlashAttention.DqAccumulatorOffset(batch, seqLen, heads, headDim, 0);
        long second = FlashAttention.DqAccumulatorOffset(batch, seqLen, heads, headDim, 1);
        long total = FlashAttention.ScratchBytes(batch, seqLen, heads, headDim);
        Assert.Equal(FlashAttention.DqAccumulatorOffset(batch, seqLen, heads), first);
        Assert.True(first >= 4 * rows, "accumulator 0 overlaps D");
        Assert.True(second >= first + accumulatorBytes + 4, "accumulator 1 overlaps accumulator 0 or the tile counter");
        Assert.True(second + accumulatorBytes <= total, "accumulator 1 leaves the scratch");
        Assert.Equal(0, first % 256);
        Assert.Equal(0, second % 256);
        Assert.Throws<ArgumentOutOfRangeException>(() => FlashAttention.DqAccumulatorOffset(batch, seqLen, heads, headDim, 2));
    }

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

    [Fact]
    public void A_model_lists_one_compile_for_each_gemm_kernel_it_uses()
    {
        var baseline = ModelShape.FromKnobs(8, 64, "SSSL", 8192, 2048);
        var gemm = GpuGpt.KernelSources(H200, baseline, 128).Where(s => s.FileName == "mlp_gemm.cu").ToList();
        Assert.Equal(
            [["-DMLP_GEMM_ONE", "-DMLP_GEMM_ONE_mlp_fc_relu_square"], ["-DMLP_GEMM_ONE", "-DMLP_GEMM_ONE_mlp_proj_input_gradient"],
             ["-DMLP_GEMM_ONE", "-DMLP_GEMM_ONE_qk_gemm_rotary_norm_128"]],
            gemm.Select(s => s.Options.ToArray()));
        // cuBLAS for the MLP: the rotary GEMM alone; cuBLAS for q and k: the MLP's two alone.
        Assert.Equal(["qk_gemm_rotary_norm_128"], GpuGpt.KernelSources(H200, baseline, 128, fusedMlp: false).SelectMany(GemmKernel));
        Assert.Equal(["mlp_fc_relu_square", "mlp_proj_input_gradient"], GpuGpt.KernelSources(H200, baseline, 128, fusedQk: false).SelectMany(GemmKernel));

        var gelu64 = ModelShape.FromKnobs(2, 128, "SSSL", 512, 256, 64, 0, 4.0, Activation.Gelu);
        Assert.Equal(["mlp_fc_gelu", "mlp_proj_input_gradient_gelu", "qk_gemm_rotary_norm_64"], GpuGpt.KernelSources(H200, gelu64, 1).SelectMany(GemmKernel));
        Assert.Empty(GpuGpt.KernelSources(A100, gelu64, 1).SelectMany(GemmKernel));

        Assert.Throws<ArgumentException>(() => MlpGemm.Kernels(Activation.SwiGlu, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => MlpGemm.Kernels(null, 96));
        Assert.Empty(MlpGemm.Kernels(null, null));

        static IEnumerable<string> GemmKernel(KernelSource s) => s.FileName == "mlp_gemm.cu"
            ? s.Options.Where(o => o.StartsWith("-DMLP_GEMM_ONE_", StringComparison.Ordinal)).Select(o => o["-DMLP_GEMM_ONE_".Length..])
            : [];
    }

    [Fact]
    public void Each_gemm_kernel_a_model_asks_for_is_declared_alone_under_its_define()
    {
        var text = File.ReadAllText(Path.Combine(KernelCache.DefaultKernelDirectory, "mlp_gemm.cu"));
        var guarded = Regex.Matches(text, @"#if !defined\(MLP_GEMM_ONE\) \|\| defined\(MLP_GEMM_ONE_(\w+)\)\s*\n(.*?)#endif", RegexOptions.Singleline)
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        var entries = Regex.Matches(text, @"extern ""C"" __global__ void __launch_bounds__\([^)]*\)\s+(\w+)\(").Select(m => m.Groups[1].Value).ToList();

        Assert.Equal(6, entries.Count);
        Assert.Equal(entries.Order(StringComparer.Ordinal), guarded.Keys.Order(StringComparer.Ordinal)); // every entry has its guard
        foreach (var kernel in MlpGemm.Kernels(Activation.Relu2, 128).Concat(MlpGemm.Kernels(Activation.Gelu, 64)))
        {
            Assert.True(guarded.TryGetValue(kernel, out var body), $"no guard for {kernel}");
            Assert.Matches(@"__launch_bounds__\([^)]*\)\s+" + kernel + @"\(", body); // the guard holds the kernel it names
        }
    }

    public static TheoryData<string> GemmKernels => new(MlpGemm.Kernels(Activation.Relu2, 128).Concat(MlpGemm.Kernels(Activation.Gelu, 64)));

    [NvrtcTheory]
    [MemberData(nameof(GemmKernels))]
    public void Each_gemm_kernel_compiles_alone_from_its_source(string kernel)
    {
        var ptx = HopperPtx.Compile(MlpGemm.Source(kernel));

        Assert.Equal([kernel], Regex.Matches(ptx, @"\.entry (\w+)").Select(m => m.Groups[1].Value));
        Assert.Matches(@"\.const \.align 4 \.u32 mlp_gemm_shared_bytes = \d+;", ptx); // the launcher reads it from each module
    }
}

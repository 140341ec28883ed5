using System.Text.RegularExpressions;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests;

/// <summary>Which kernel each op runs for a shape (<see cref="KernelPaths"/>), decided without a GPU, against the launchers'
/// own thresholds.</summary>
public class KernelPathsTests
{
    private static ModelShape Shape(int heads, int headDim = 128, int kvHeads = 0, Activation activation = Activation.Relu2, string valueEmbeds = "alternate",
        int depth = 8)
        => ModelShape.FromKnobs(depth, heads * headDim / depth, "SSSL", 8192, 2048, headDim, kvHeads, 4.0, activation, valueEmbeds: valueEmbeds);

    [Fact]
    public void The_baseline_on_hopper_takes_every_fast_path()
    {
        var baseline = ModelShape.FromKnobs(8, 64, "SSSL", 8192, 2048);
        var paths = KernelPaths.For(9, baseline, 128);

        Assert.True(paths.FusedMlp && paths.FusedQ && paths.FusedK && paths.GroupedValueGate && paths.GroupedEmbedding && paths.FusedNormMixBackward);
        Assert.True(paths.NarrowNormBackward);
        Assert.True(paths.GroupsTokens);
        Assert.False(paths.MixKept);
        Assert.Equal(8, paths.KeptH1Layers);
        Assert.All(paths.Rows(), r => Assert.True(r.Fast, $"{r.Op}: {r.Fallback}"));
        Assert.Equal("", paths.Fallbacks());
        Assert.Equal(["attention", "q, k projections", "v projection", "MLP", "value gate backward", "embedding backward", "token grouping",
            "rmsnorm backward", "norm + mix backward", "kept for the backward"], paths.Rows().Select(r => r.Op));
    }

    [Theory]
    [InlineData(8, 128, true)]     // width 1024: the widest grouped row
    [InlineData(9, 128, false)]    // width 1152
    [InlineData(16, 64, true)]     // width 1024 in heads of 64
    [InlineData(18, 64, false)]    // width 1152 in heads of 64
    public void The_wide_row_paths_turn_at_the_launchers_limits(int heads, int headDim, bool withinLimits)
    {
        var shape = Shape(heads, headDim, depth: 8);
        var paths = KernelPaths.For(9, shape, 64);
        int width = heads * headDim;

        Assert.Equal(withinLimits, paths.GroupedEmbedding);
        Assert.Equal(Embedding.TakesGroupedOrder(width), paths.GroupedEmbedding);
        Assert.Equal(withinLimits, paths.FusedNormMixBackward);
        Assert.Equal(withinLimits, !paths.MixKept); // m is recomputed only by the one-pass backward
        var embedding = paths.Rows().Single(r => r.Op == "embedding backward");
        Assert.Equal(withinLimits, embedding.Fast);
        if (!withinLimits)
        {
            Assert.Contains($"{width} features", embedding.Fallback, StringComparison.Ordinal);
            Assert.Contains($"{Embedding.MaxGroupedWidth}", embedding.Fallback, StringComparison.Ordinal);
            Assert.Contains("norm + mix backward: rows of " + width, paths.Fallbacks(), StringComparison.Ordinal);
            // With m kept, only the first F/C layers keep h1 (the memory m would have taken holds them).
            Assert.Equal(Math.Min(8, shape.MlpHidden / width), paths.KeptH1Layers);
        }
    }

    [Theory]
    [InlineData(8, 128, 8, true)]    // kv rows of 1024
    [InlineData(16, 128, 16, false)] // kv rows of 2048
    [InlineData(16, 128, 4, true)]   // grouped-query: kv rows of 512
    public void The_value_gate_groups_kv_rows_up_to_its_limit(int heads, int headDim, int kvHeads, bool grouped)
    {
        var paths = KernelPaths.For(9, Shape(heads, headDim, kvHeads), 64);
        Assert.Equal(grouped, paths.GroupedValueGate);
        Assert.Equal(ValueGate.TakesGroupedOrder(kvHeads, headDim), paths.GroupedValueGate);
        Assert.Equal(grouped, paths.Rows().Single(r => r.Op == "value gate backward").Fast);
    }

    [Fact]
    public void Tokens_are_grouped_only_where_a_grouped_kernel_reads_the_order()
    {
        // Width 2048, GQA with kv rows of 512: the embedding is too wide, the value gate is not.
        var gqa = KernelPaths.For(9, Shape(16, 128, 4), 64);
        Assert.True(gqa.GroupsTokens);
        // Both too wide: nothing reads the order.
        var wide = KernelPaths.For(9, Shape(16, 128), 64);
        Assert.False(wide.GroupsTokens);
        Assert.StartsWith("skipped", wide.Rows().Single(r => r.Op == "token grouping").Path, StringComparison.Ordinal);
        // The value gate would take its rows, but no layer has value embeddings.
        var noVe = KernelPaths.For(9, Shape(16, 128, 4, valueEmbeds: "none"), 64);
        Assert.False(noVe.HasValueEmbeddings);
        Assert.False(noVe.GroupsTokens);
        Assert.StartsWith("none", noVe.Rows().Single(r => r.Op == "value gate backward").Path, StringComparison.Ordinal);
    }

    [Fact]
    public void A_fallback_says_why_for_the_activation_the_device_the_tiles_and_the_flags()
    {
        var swiglu = KernelPaths.For(9, Shape(4, activation: Activation.SwiGlu), 128);
        Assert.False(swiglu.FusedMlp);
        Assert.Contains("not swiglu", swiglu.MlpFallback, StringComparison.Ordinal);
        Assert.True(swiglu.MixKept);       // the cuBLAS MLP path keeps m
        Assert.Equal(0, swiglu.KeptH1Layers);

        var a100 = KernelPaths.For(8, Shape(4), 128);
        Assert.False(a100.FusedMlp || a100.FusedQ || a100.FusedK);
        Assert.Contains("compute 9.x", a100.MlpFallback, StringComparison.Ordinal);
        Assert.False(a100.Rows().Single(r => r.Op == "attention").Fast);

        // 8 q heads of 64 over 2 kv heads: k is 128 features, half a 256-column tile.
        var halfTile = KernelPaths.For(9, Shape(8, 64, 2), 128);
        Assert.True(halfTile.FusedQ);
        Assert.False(halfTile.FusedK);
        Assert.Contains("got 128", halfTile.KFallback, StringComparison.Ordinal);
        Assert.StartsWith("k: ", halfTile.Rows().Single(r => r.Op == "q, k projections").Fallback, StringComparison.Ordinal);

        // One row of 200 tokens is off the 128-row tile.
        var odd = KernelPaths.For(9, ModelShape.FromKnobs(2, 256, "L", 512, 200), 1);
        Assert.Contains("multiple of 128; got 200", odd.MlpFallback, StringComparison.Ordinal);

        var asked = KernelPaths.For(9, Shape(4), 128, fusedMlp: false, fusedQk: false);
        Assert.Contains("--cublas-mlp", asked.MlpFallback, StringComparison.Ordinal);
        Assert.Contains("--cublas-qk", asked.Rows().Single(r => r.Op == "q, k projections").Fallback, StringComparison.Ordinal);
        Assert.True(asked.MixKept); // m is recomputed only with the MLP fused

        var naive = KernelPaths.For(9, Shape(4), 128, flashAttention: false);
        Assert.Contains("--naive-attention", naive.Fallbacks(), StringComparison.Ordinal);
    }

    [Fact]
    public void V_takes_the_q_k_launch_only_when_both_are_fused_and_the_kernel_takes_it()
    {
        Assert.True(KernelPaths.For(9, Shape(4), 128, vInQkLaunch: true).VInQkLaunch);
        Assert.False(KernelPaths.For(9, Shape(8, 64, 2), 128, vInQkLaunch: true).VInQkLaunch); // k is not fused
        // The report before the kernel is loaded (vInQkLaunch false) is the shipped build's: the file's QK_GEMM_TAKES_V is 0.
        var text = File.ReadAllText(Path.Combine(KernelCache.DefaultKernelDirectory, "mlp_gemm.cu"));
        Assert.Equal("0", Regex.Match(text, @"#define QK_GEMM_TAKES_V (\d+)").Groups[1].Value);
    }

    [Fact]
    public void The_q_and_k_paths_agree_with_the_models_rotary_predicate()
    {
        var h200 = FakeDevices.H200;
        foreach (var shape in new[] { Shape(4), Shape(4, activation: Activation.SwiGlu), Shape(8, 64, 2), Shape(16, 128, 4), Shape(6, 64) })
        {
            var paths = KernelPaths.For(9, shape, 64);
            Assert.Equal(GpuGpt.UsesFusedRotary(h200, shape, 64, shape.ModelDim), paths.FusedQ);
            Assert.Equal(GpuGpt.UsesFusedRotary(h200, shape, 64, shape.KvDim), paths.FusedK);
        }
    }

    [Fact]
    public void A_gpu_without_wgmma_is_refused_by_name_before_the_flash_kernels_compile()
    {
        GpuGpt.RequireFlashDevice(FakeDevices.H200);
        var e = Assert.Throws<NotSupportedException>(() => GpuGpt.RequireFlashDevice(FakeDevices.A100));
        Assert.Contains("NVIDIA A100 (compute 8.0", e.Message, StringComparison.Ordinal);
        Assert.Contains("Hopper", e.Message, StringComparison.Ordinal);
        Assert.Contains("--device cpu", e.Message, StringComparison.Ordinal);
    }
}

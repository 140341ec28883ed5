using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// <see cref="GpuGpt.KernelSources"/> against what the constructor loads: with a cold cache compiled ahead from the list, building
/// the model compiles nothing more, and every file of the list is one it loaded.
/// </summary>
[Trait("Category", "GPU")]
public class KernelSourcesTests
{
    [GpuTheory]
    [InlineData(2, 64, 128, 0, "relu2", 1)]    // fused MLP path (at a batch the GEMM tiles take) or not, as the device decides
    [InlineData(2, 64, 64, 2, "swiglu", 1)]    // head 64, GQA, the cuBLAS MLP
    [InlineData(2, 64, 128, 0, "gelu", 8)]
    public async Task A_model_built_after_compiling_its_list_ahead_compiles_nothing_more(int depth, int aspect, int headDim, int kvHeads, string activation, int batch)
    {
        var shape = ModelShape.FromKnobs(depth, aspect, "SL", 512, 1024, headDim, kvHeads, 4.0, Activations.Parse(activation));
        using var kernels = new KernelCache(TestGpu.Device, KernelCache.DefaultKernelDirectory, TestGpu.NewTempDirectory("ahead"));
        var sources = GpuGpt.KernelSources(TestGpu.Device.Properties, shape, batch);

        Assert.Empty(await kernels.CompileAhead(sources));
        using var model = new GpuGpt(TestGpu.Device, TestGpu.Stream, TestGpu.Blas, kernels, shape, batch);

        Assert.Equal(0, kernels.Store.Compiled);               // no constructor had to compile a file the list left out
        Assert.Equal(sources.Count, kernels.AheadHits);         // and each listed file was loaded
        Assert.Equal(sources.Count, kernels.Compiled);
        Assert.Equal(model.FusedMlp || model.FusedQ || model.FusedK, sources.Any(s => s.FileName == "mlp_gemm.cu"));
        // The paths the model reports are the ones it took: its GEMMs and the buffers it allocated.
        Assert.Equal((model.FusedMlp, model.FusedQ, model.FusedK, model.FusedV), (model.Paths.FusedMlp, model.Paths.FusedQ, model.Paths.FusedK, model.Paths.VInQkLaunch));
        Assert.Equal(model.Activations.MixKept, model.Paths.MixKept);
        Assert.Equal(model.Activations.H1.Count(h => h is not null), model.Paths.KeptH1Layers);
    }
}

using AutoResearch.Model.Gpu;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// The whole GPU model against the fp64 CPU reference (<see cref="ModelParity"/>): the loss and every parameter's gradient for
/// one batch, from the same weights, within bf16-sized bounds (1e-2 relative for the loss, 5e-2 relative L2 per gradient
/// tensor), for the baseline and the shapes the knobs reach.
/// </summary>
[Trait("Category", "GPU")]
public class GpuGptParityTests
{
    [GpuTheory]
    [InlineData(2, 256, 256, 2, 512, 7, true)]     // width 256, 2 heads of 128, T 256, windows 128 and 256
    [InlineData(8, 64, 2048, 2, 8192, 8, true)]    // the baseline model with a small batch
    [InlineData(2, 256, 256, 2, 512, 9, false)]    // the cuBLAS MLP with separate relu² passes, m kept, norms recomputed
    public void Gpu_loss_and_every_gradient_match_the_cpu_reference(int depth, int aspect, int seqLen, int batch, int vocab, int seed, bool fusedMlp)
    {
        var shape = ModelShape.FromKnobs(depth, aspect, "SSSL", vocab, seqLen);
        var result = ModelParity.Run(shape, batch, seed, TestGpu.Device, TestGpu.Stream, TestGpu.Blas, TestGpu.Kernels, fusedMlp);
        Assert.Equal(fusedMlp && GpuGpt.UsesFusedMlp(TestGpu.Device.Properties, shape, batch), result.FusedMlp);
        Assert.True(result.Passed, $"seed {seed}, {shape.Describe()}:\n{result.Describe()}");
    }
}

using AutoResearch.Model.Gpu;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// <see cref="GpuParameters.DownloadMasters"/> and <see cref="GpuParameters.RestoreMasters"/>, what `profile --fixed-weights`
/// undoes each optimizer step with: after other weights have been uploaded and cast, the restore must bring back the masters
/// bit for bit and the bf16 copies the kernels read.
/// </summary>
[Trait("Category", "GPU")]
public class GpuParametersTests
{
    private static ModelShape Shape => ModelShape.FromKnobs(2, 64, "SL", 512, 128); // width 128: 1 head of 128, T 128

    [GpuFact]
    public void Restoring_the_downloaded_masters_brings_back_the_masters_and_their_bf16_copies()
    {
        using var model = new GpuGpt(TestGpu.Device, TestGpu.Stream, TestGpu.Blas, TestGpu.Kernels, Shape, batch: 1);
        var parameters = model.Parameters;
        parameters.InitialiseLikeSpec(seed: 5);
        parameters.RefreshBf16(model.Elementwise, TestGpu.Stream);
        float[] masters = parameters.DownloadMasters();
        ushort[] copies = parameters.Bf16Copies.ToArray();
        Assert.Equal(parameters.TotalElements, masters.Length);
        Assert.Contains(masters, v => v != 0);
        Assert.All(masters, v => Assert.True(float.IsFinite(v)));

        // Other weights, as an optimizer step would leave them (another seed: every tensor changes), then the restore.
        parameters.InitialiseLikeSpec(seed: 6);
        parameters.RefreshBf16(model.Elementwise, TestGpu.Stream);
        ushort[] otherCopies = parameters.Bf16Copies.ToArray();
        Assert.NotEqual(copies, otherCopies);
        parameters.RestoreMasters(masters, model.Elementwise, TestGpu.Stream);

        Assert.Equal(masters, parameters.DownloadMasters());
        Assert.Equal(copies, parameters.Bf16Copies.ToArray());
    }

    [GpuFact]
    public void Restoring_masters_of_another_length_is_refused()
    {
        using var model = new GpuGpt(TestGpu.Device, TestGpu.Stream, TestGpu.Blas, TestGpu.Kernels, Shape, batch: 1);
        var e = Assert.Throws<ArgumentException>(() => model.Parameters.RestoreMasters(new float[model.Parameters.TotalElements - 1], model.Elementwise, TestGpu.Stream));
        Assert.Contains($"{model.Parameters.TotalElements} elements", e.Message);
    }
}

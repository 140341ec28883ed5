using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using AutoResearch.Optim.Gpu;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Optim.Tests.Gpu;

/// <summary>
/// The GPU model and optimizer together on a tiny configuration: the loss starts at ln(vocab) and falls fast on a
/// learnable sequence, with every gradient finite.
/// </summary>
[Trait("Category", "GPU")]
public class GpuTrainingSmokeTests
{
    [GpuFact]
    public void Tiny_model_learns_a_periodic_sequence_on_the_gpu()
    {
        var device = TestGpu.Device;
        var stream = TestGpu.Stream;
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 128, windowPattern: "SL", vocabSize: 512, seqLen: 128);
        const int batch = 4, steps = 60;
        using var model = new GpuGpt(device, stream, TestGpu.Blas, TestGpu.Kernels, shape, batch, new AttentionNaive(TestGpu.Kernels), headChunkRows: 200);
        model.Parameters.InitialiseLikeSpec(42);
        model.Parameters.RefreshBf16(model.Elementwise, stream);
        using var optimizer = new MuonAdamWGpu(device, stream, TestGpu.Blas, TestGpu.Kernels, model.Parameters, new OptimizerSettings(shape.ModelDim));

        int n = batch * shape.SeqLen;
        var inputs = new int[n];
        var targets = new int[n];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < shape.SeqLen; t++)
            {
                inputs[b * shape.SeqLen + t] = (b * 5 + t * 7) % 97;
                targets[b * shape.SeqLen + t] = t == 5 ? -1 : (b * 5 + (t + 1) * 7) % 97; // one ignored target per row
            }
        }
        int scored = targets.Count(t => t >= 0);
        model.Upload(inputs, targets);
        var losses = new List<float>();
        for (int step = 0; step < steps; step++)
        {
            model.Parameters.ZeroGradients(stream);
            model.ResetLossSum();
            model.ForwardBackward(1f / scored);
            losses.Add(model.ReadLossSum() / scored);
            if (step == 0)
            {
                var grads = model.Parameters.Gradients.ToArray();
                Assert.All(grads, g => Assert.True(float.IsFinite(g)));
                Assert.Contains(grads, g => g != 0);
            }
            float momentum = (float)(0.85 + 0.10 * Math.Min(step / 300.0, 1));
            optimizer.Step(1f, momentum, 0.2f * (1 - (float)step / steps));
        }
        Assert.InRange(losses[0], Math.Log(512) - 0.3, Math.Log(512) + 0.3);
        Assert.True(losses[^1] < 0.25 * losses[0], $"loss went {losses[0]:F3} → {losses[^1]:F3}: {string.Join(", ", losses.Select(l => l.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}");
        Assert.True(device.Memory.PeakBytes > 0);
    }
}

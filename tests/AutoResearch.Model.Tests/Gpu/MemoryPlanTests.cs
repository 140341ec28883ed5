using AutoResearch.Model.Gpu;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// Where <see cref="GpuActivations"/> puts its scratch tensors (dq | dk | dv and dO in a layer's dead MLP activation, the final
/// norm's output in the residual gradient) and the Recompute knob (one MLP activation for all layers, recomputed in the
/// backward; wte[inputs] gathered again): none of it may change a bit. Two micro-steps accumulate, so a buffer that one step
/// leaves dirty for the next would show.
/// </summary>
[Trait("Category", "GPU")]
public class MemoryPlanTests
{
    /// <summary>The summed loss of two micro-batches and every accumulated gradient, from ModelParity's weights and tokens.</summary>
    private static (float Loss, Dictionary<string, float[]> Gradients, float EvalLoss) TwoMicroSteps(ModelShape shape, int batch, bool fusedMlp, bool recomputeMlp,
        int seed)
    {
        var (cpu, inputs, targets) = ModelParity.Reference(shape, batch, seed);
        var (_, inputs2, targets2) = ModelParity.Reference(shape, batch, seed + 1);
        using var gpu = new GpuGpt(TestGpu.Device, TestGpu.Stream, TestGpu.Blas, TestGpu.Kernels, shape, batch, headChunkRows: 300, fusedMlp: fusedMlp,
            recomputeMlp: recomputeMlp);
        Assert.Equal(recomputeMlp, gpu.Activations.RecomputeMlp);
        foreach (var (name, values) in cpu.Parameters)
            gpu.Parameters.Upload(name, values.Select(v => (float)v).ToArray());
        gpu.Parameters.RefreshBf16(gpu.Elementwise, TestGpu.Stream);
        gpu.Parameters.ZeroGradients(TestGpu.Stream);
        gpu.ResetLossSum();
        gpu.Upload(inputs, targets);
        gpu.ForwardBackward(1e-3f);
        gpu.Upload(inputs2, targets2);
        gpu.ForwardBackward(1e-3f);
        float loss = gpu.ReadLossSum();
        var gradients = shape.ParameterShapes().ToDictionary(p => p.Name, p => gpu.Parameters.Download(gpu.Parameters.Gradients, p.Name), StringComparer.Ordinal);
        // The evaluation path (forward and loss, no backward) after a backward has run.
        gpu.ResetLossSum();
        gpu.Upload(inputs, targets);
        gpu.Forward();
        gpu.Loss(0);
        return (loss, gradients, gpu.ReadLossSum());
    }

    [GpuTheory]
    [InlineData("relu2 fused: dq|dk|dv and dO fill s exactly", 2, 128, 128, 0, "relu2", 4.0, true)]
    [InlineData("relu2 on cuBLAS", 2, 128, 128, 0, "relu2", 4.0, false)]
    [InlineData("gelu fused: u kept and recomputed too", 2, 128, 128, 0, "gelu", 4.0, true)]
    [InlineData("swiglu: the scratch does not fit in s", 2, 128, 128, 0, "swiglu", 4.0, true)]
    [InlineData("head 64, GQA 8 on 2: a narrower dq|dk|dv", 2, 256, 64, 2, "relu2", 4.0, true)]
    [InlineData("MLP ratio 2: s too small for the scratch", 3, 128, 128, 0, "relu2", 2.0, true)]
    public void The_recompute_and_the_scratch_placement_change_no_bit(string name, int depth, int aspect, int headDim, int kvHeads, string activation,
        double mlpRatio, bool fusedMlp)
    {
        var shape = ModelShape.FromKnobs(depth, aspect, "SL", 512, 256, headDim, kvHeads, mlpRatio, Activations.Parse(activation));
        const int batch = 2, seed = 31;
        var kept = TwoMicroSteps(shape, batch, fusedMlp, recomputeMlp: false, seed);
        var recomputed = TwoMicroSteps(shape, batch, fusedMlp, recomputeMlp: true, seed);

        Assert.True(float.IsFinite(kept.Loss) && kept.Loss > 0, $"{name}: loss {kept.Loss}");
        Assert.Equal(kept.Loss, recomputed.Loss);
        Assert.Equal(kept.EvalLoss, recomputed.EvalLoss);
        foreach (var (tensor, values) in kept.Gradients)
        {
            Assert.True(values.Any(v => v != 0), $"{name}: {tensor} has no gradient");
            Assert.True(values.AsSpan().SequenceEqual(recomputed.Gradients[tensor]), $"{name}: {tensor} differs with Recompute=mlp");
        }
    }

    /// <summary>The placements themselves, as the class summary gives them, at the baseline's proportions.</summary>
    [GpuFact]
    public void The_baseline_keeps_its_backward_scratch_in_the_mlp_activation()
    {
        var shape = ModelShape.FromKnobs(2, 128, "SL", 512, 256);
        using var gpu = new GpuGpt(TestGpu.Device, TestGpu.Stream, TestGpu.Blas, TestGpu.Kernels, shape, 2);
        var a = gpu.Activations;
        Assert.True(a.ScratchInActivation);
        for (int i = 0; i < shape.Depth; i++)
        {
            Assert.Equal(a.S[i].Pointer, a.Dqkv(i).Pointer);
            Assert.True(a.DOf(i).At(a.DOf(i).Length) <= a.S[i].At(a.S[i].Length));
        }
        Assert.Equal(a.G.Pointer, a.HFinal.Pointer);
    }
}

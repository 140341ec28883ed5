using AutoResearch.Model.Gpu;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// Where <see cref="GpuActivations"/> puts its scratch tensors (dq | dk | dv and dO in a layer's dead MLP activation, the final
/// norm's output in the residual gradient) and the Recompute knob (one MLP activation for all layers, recomputed in the
/// backward): neither may change the results. Each is compared with the plan without it: the
/// scratch placed against every scratch tensor in a buffer of its own, the recompute against keeping every layer's activation.
/// Two micro-steps accumulate, so a buffer that one step leaves dirty for the next would show. The results are not compared
/// bit for bit: sums the device adds with atomics in whatever order blocks finish (the flash backward's dq, the norms' lambda
/// gradients, the embedding and value-gate gradients, the loss) differ in their last bits from one run to the next anyway, so
/// each tensor is held to a relative difference far below what a clobbered buffer gives.
/// </summary>
[Trait("Category", "GPU")]
public class MemoryPlanTests
{
    private sealed record Outcome(float Loss, Dictionary<string, float[]> Gradients, float EvalLoss);

    /// <summary>The summed loss of two micro-batches and every accumulated gradient, from ModelParity's weights and tokens.</summary>
    private static Outcome TwoMicroSteps(ModelShape shape, int batch, bool fusedMlp, bool recomputeMlp, bool placeScratch, int seed)
    {
        var (cpu, inputs, targets) = ModelParity.Reference(shape, batch, seed);
        var (_, inputs2, targets2) = ModelParity.Reference(shape, batch, seed + 1);
        using var gpu = new GpuGpt(TestGpu.Device, TestGpu.Stream, TestGpu.Blas, TestGpu.Kernels, shape, batch, headChunkRows: 300, fusedMlp: fusedMlp,
            recomputeMlp: recomputeMlp, placeScratch: placeScratch);
        Assert.Equal(recomputeMlp, gpu.Activations.RecomputeMlp);
        if (!placeScratch)
            Assert.False(gpu.Activations.ScratchInActivation);
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
        return new Outcome(loss, gradients, gpu.ReadLossSum());
    }

    /// <summary>Losses within 1e-5 and each gradient within 1e-3 of the other's norm (‖a − b‖ ≤ 1e-3·‖a‖), none of them zero.</summary>
    private static void AssertSame(string what, Outcome expected, Outcome actual)
    {
        Assert.True(float.IsFinite(expected.Loss) && expected.Loss > 0, $"{what}: loss {expected.Loss}");
        Assert.True(Math.Abs(actual.Loss - expected.Loss) <= 1e-5 * expected.Loss, $"{what}: loss {actual.Loss} against {expected.Loss}");
        Assert.True(Math.Abs(actual.EvalLoss - expected.EvalLoss) <= 1e-5 * expected.EvalLoss, $"{what}: evaluation loss {actual.EvalLoss} against {expected.EvalLoss}");
        foreach (var (tensor, values) in expected.Gradients)
        {
            var other = actual.Gradients[tensor];
            Assert.True(values.Any(v => v != 0), $"{what}: {tensor} has no gradient");
            double difference = 0, norm = 0;
            for (int i = 0; i < values.Length; i++)
            {
                Assert.True(float.IsFinite(other[i]), $"{what}: {tensor}[{i}] = {other[i]}");
                difference += ((double)other[i] - values[i]) * ((double)other[i] - values[i]);
                norm += (double)values[i] * values[i];
            }
            Assert.True(Math.Sqrt(difference) <= 1e-3 * Math.Sqrt(norm),
                $"{what}: {tensor} differs by {Math.Sqrt(difference / norm):G3} of its norm");
        }
    }

    [GpuTheory]
    [InlineData("relu2 fused: dq|dk|dv and dO fill s exactly", 2, 128, 128, 0, "relu2", 4.0, true)]
    [InlineData("relu2 on cuBLAS", 2, 128, 128, 0, "relu2", 4.0, false)]
    [InlineData("gelu fused: u kept and recomputed too", 2, 128, 128, 0, "gelu", 4.0, true)]
    [InlineData("swiglu: the scratch does not fit in s", 2, 128, 128, 0, "swiglu", 4.0, true)]
    [InlineData("head 64, GQA 8 on 2: a narrower dq|dk|dv", 2, 256, 64, 2, "relu2", 4.0, true)]
    [InlineData("MLP ratio 2: s too small for the scratch", 3, 128, 128, 0, "relu2", 2.0, true)]
    public void The_recompute_and_the_scratch_placement_change_no_result(string name, int depth, int aspect, int headDim, int kvHeads, string activation,
        double mlpRatio, bool fusedMlp)
    {
        var shape = ModelShape.FromKnobs(depth, aspect, "SL", 512, 256, headDim, kvHeads, mlpRatio, Activations.Parse(activation));
        const int batch = 2, seed = 31;
        var apart = TwoMicroSteps(shape, batch, fusedMlp, recomputeMlp: false, placeScratch: false, seed);
        var placed = TwoMicroSteps(shape, batch, fusedMlp, recomputeMlp: false, placeScratch: true, seed);
        var recomputed = TwoMicroSteps(shape, batch, fusedMlp, recomputeMlp: true, placeScratch: true, seed);

        AssertSame($"{name}: scratch placed against apart", apart, placed);
        AssertSame($"{name}: Recompute=mlp against kept", apart, recomputed);
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
            Assert.True(a.Dqkv(i).At(a.Dqkv(i).Length) <= a.DOf(i).Pointer, $"layer {i}: dO overlaps dq | dk | dv");
            Assert.Equal(0UL, a.DOf(i).Pointer % 256);
            Assert.True(a.DOf(i).At(a.DOf(i).Length) <= a.S[i].At(a.S[i].Length));
        }
        Assert.Equal(a.G.Pointer, a.HFinal.Pointer);
    }
}

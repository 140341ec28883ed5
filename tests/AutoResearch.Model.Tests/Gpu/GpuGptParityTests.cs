using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// The whole GPU model against the fp64 CPU reference: the loss and every parameter's gradient for one batch, from the same
/// weights (rounded to bf16 first, as the GPU reads them). The GPU keeps bf16 activations between ops (SPEC §5), so the
/// tolerance is bf16-sized: 1e-2 relative for the loss, 5e-2 relative L2 per gradient tensor.
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
        var cpu = new CpuGpt(shape);
        cpu.InitialiseLikeSpec(seed);
        var r = new Random(seed);
        foreach (var (name, values) in cpu.Parameters)
        {
            bool zeroInit = name.EndsWith("c_proj.weight", StringComparison.Ordinal) || name.EndsWith("ve_gate.weight", StringComparison.Ordinal);
            for (int i = 0; i < values.Length; i++)
            {
                // Zero-initialised tensors get small random values so their gradients (and those behind them) are exercised.
                double v = zeroInit ? (r.NextDouble() * 2 - 1) * 0.02 : values[i];
                values[i] = name.EndsWith("lambdas", StringComparison.Ordinal) ? (float)v : Bf16.Round((float)v);
            }
        }
        int n = batch * seqLen;
        var inputs = new int[n];
        var targets = new int[n];
        for (int i = 0; i < n; i++)
        {
            inputs[i] = r.Next(vocab);
            targets[i] = i % 97 == 5 ? -1 : r.Next(vocab);
        }
        var cpuGrads = cpu.NewGradients();
        var (cpuLoss, _) = cpu.ForwardBackward(inputs, targets, batch, cpuGrads);
        int scored = targets.Count(t => t >= 0);

        using var gpu = new GpuGpt(TestGpu.Device, TestGpu.Stream, TestGpu.Blas, TestGpu.Kernels, shape, batch, new FlashAttention(TestGpu.Kernels), headChunkRows: 1000,
            fusedMlp: fusedMlp);
        Assert.Equal(fusedMlp && MlpGemm.Supports(TestGpu.Device.Properties, batch * seqLen, shape.ModelDim, shape.MlpHidden), gpu.FusedMlp);
        foreach (var (name, values) in cpu.Parameters)
            gpu.Parameters.Upload(name, values.Select(v => (float)v).ToArray());
        gpu.Parameters.RefreshBf16(gpu.Elementwise, TestGpu.Stream);
        gpu.Parameters.ZeroGradients(TestGpu.Stream);
        gpu.Upload(inputs, targets);
        gpu.ResetLossSum();
        gpu.ForwardBackward(1f / scored);
        double gpuLoss = gpu.ReadLossSum() / scored;
        Numerics.AssertClose("loss", [(float)gpuLoss], [cpuLoss], 1e-2, seed);
        var failures = new List<string>();
        foreach (var (name, cpuGrad) in cpuGrads)
        {
            var gpuGrad = gpu.Parameters.Download(gpu.Parameters.Gradients, name);
            double error = Numerics.RelativeError(gpuGrad, cpuGrad);
            if (!(error <= 5e-2))
                failures.Add($"{name}: relative error {error:E3}");
        }
        Assert.True(failures.Count == 0, $"gradients off (seed {seed}, cpu loss {cpuLoss:F5}, gpu loss {gpuLoss:F5}):\n" + string.Join('\n', failures));
    }
}

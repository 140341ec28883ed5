using AutoResearch.Bench.Kernels;
using AutoResearch.Bench.Workbench;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Bench.Tests.Gpu;

/// <summary>
/// A benchmark refuses to time a wrong kernel: the shipped kernels copied to a temporary folder, one sign flipped in
/// rmsnorm_backward, and the RMSNorm benchmark pointed at that folder as a tuner would (--kernels DIR).
/// </summary>
[Trait("Category", "GPU")]
[Collection(BenchOptionsCollection.Name)]
public class BrokenKernelTests
{
    /// <summary>The line of rmsnorm_backward (rows held in registers, both of its kernels) that computes dx: rstd·dy minus the projection.</summary>
    private const string DxLine = "const float g = a * gv[k][i] - r * r * xv[k][i] * mean_dot;";

    [GpuFact]
    public void Rmsnorm_backward_with_a_wrong_sign_is_refused_with_the_kernel_the_tensor_and_the_error()
    {
        using var folder = new KernelFolder();
        var kernels = folder.Sub("kernels");
        var cubins = folder.Sub("cubins");
        Directory.CreateDirectory(kernels);
        foreach (var file in Directory.GetFiles(KernelCache.DefaultKernelDirectory))
            File.Copy(file, Path.Combine(kernels, Path.GetFileName(file)));
        var path = Path.Combine(kernels, "rmsnorm.cu");
        var source = File.ReadAllText(path);
        Assert.True(source.Split(DxLine).Length == 2, $"rmsnorm.cu no longer holds the line this test breaks exactly once: {DxLine}");
        File.WriteAllText(path, source.Replace(DxLine, DxLine.Replace(" - r * r", " + r * r", StringComparison.Ordinal), StringComparison.Ordinal));

        var saved = KernelBenchOptions.Current;
        try
        {
            KernelBenchOptions.Current = new KernelBenchOptions { CurrentKernels = kernels, CubinDirectory = cubins, Short = true };
            // The final norm's use, bf16 in and out, checked to 1e-2 (the flipped sign gives about 9 %).
            var broken = new RmsNormBenchmarks { Config = "baseline", B = 2, T = 2048 };
            var e = Assert.Throws<KernelCheckException>(broken.SetupBackward);
            Assert.Equal("rmsnorm_backward", e.Kernel);
            Assert.Contains(e.Failures, f => f.Tensor == "dx");
            Assert.StartsWith("rmsnorm_backward refused, not timed", e.Message);
            Assert.Contains("dx: relative L2 error", e.Message);
            Assert.Contains("over the bound 1.0E-002", e.Message);
            // Refused means never timed: the benchmark method will not run either.
            var refused = Assert.Throws<InvalidOperationException>(broken.Backward);
            Assert.Contains("refusing to time", refused.Message);

            // The kernels the sign did not touch still pass from the same folder and are timed.
            var forward = new RmsNormBenchmarks { Config = "baseline", B = 2, T = 2048 };
            forward.SetupForward();
            forward.Forward();
            forward.Cleanup();

            // And the shipped rmsnorm_backward passes the same check.
            KernelBenchOptions.Current = new KernelBenchOptions { CubinDirectory = cubins, Short = true };
            var intact = new RmsNormBenchmarks { Config = "baseline", B = 2, T = 2048 };
            intact.SetupBackward();
            intact.Backward();
            intact.Cleanup();
        }
        finally
        {
            KernelBenchOptions.Current = saved;
        }
    }
}

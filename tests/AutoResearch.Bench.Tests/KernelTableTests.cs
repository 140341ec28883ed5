using AutoResearch.Bench.Kernels;
using AutoResearch.Bench.Workbench;
using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Running;
using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>
/// What the tables are built from, without a GPU: the configurations' shapes, the benchmark cases BenchmarkDotNet makes of
/// the families (one per configuration, window, kernel version ...), the join between a running benchmark and its row, and
/// the work counted per call.
/// </summary>
[Collection(BenchOptionsCollection.Name)]
public class KernelTableTests
{
    [Fact]
    public void Every_configuration_is_a_valid_model_shape_with_the_knobs_it_names()
    {
        foreach (var name in BenchConfigs.Names)
            Assert.Equal(2048, BenchConfigs.Shape(name).SeqLen);
        var baseline = BenchConfigs.Shape("baseline");
        Assert.Equal((512, 4, 4, 128, 2048), (baseline.ModelDim, baseline.Heads, baseline.KvHeads, baseline.HeadDim, baseline.MlpHidden));
        Assert.Equal([1024, 1024, 1024, 2048, 1024, 1024, 1024, 2048], baseline.Windows);
        Assert.Equal((8, 64), (BenchConfigs.Shape("head64").Heads, BenchConfigs.Shape("head64").HeadDim));
        Assert.Equal((4, 2), (BenchConfigs.Shape("gqa2").Heads, BenchConfigs.Shape("gqa2").KvHeads));
        Assert.Equal((2048, 16, 8192), (BenchConfigs.Shape("width2048").ModelDim, BenchConfigs.Shape("width2048").Heads, BenchConfigs.Shape("width2048").MlpHidden));
        var swiglu = BenchConfigs.Shape("swiglu"); // ⅔·4·512 = 1365.3, to the nearest multiple of 128
        Assert.Equal((Activation.SwiGlu, 1408, 2816), (swiglu.Activation, swiglu.MlpHidden, swiglu.FcRows));
        Assert.Equal(0, BenchConfigs.Shape("nocap").SoftCap);
        Assert.Throws<ArgumentException>(() => BenchConfigs.Shape("head32"));
    }

    [Fact]
    public void A_family_becomes_one_case_per_configuration_window_and_kernel_version()
    {
        var saved = KernelBenchOptions.Current;
        using var before = new KernelFolder("flash_forward.cu");
        try
        {
            KernelBenchOptions.Current = new KernelBenchOptions();
            var full = BenchmarkConverter.TypeToBenchmarks(typeof(FlashForwardBenchmarks)).BenchmarksCases;
            Assert.Equal(3 * 2, full.Length); // baseline, head64, gqa2 × S, L
            Assert.All(full, c => Assert.Equal(10, c.Job.Run.IterationCount));

            KernelBenchOptions.Current = new KernelBenchOptions { Short = true, BeforeKernels = before.Path };
            var cases = BenchmarkConverter.TypeToBenchmarks(typeof(FlashForwardBenchmarks)).BenchmarksCases;
            Assert.Equal(2 * 2, cases.Length); // baseline only × S, L × current, before
            Assert.Equal(["before", "current"], cases.Select(c => (string)c.Parameters["Kernels"]).Distinct().Order());
            Assert.All(cases, c => Assert.Equal(3, c.Job.Run.IterationCount));
        }
        finally
        {
            KernelBenchOptions.Current = saved;
        }
    }

    [Fact]
    public void A_running_benchmark_and_its_row_in_the_summary_share_one_key()
    {
        var saved = KernelBenchOptions.Current;
        try
        {
            KernelBenchOptions.Current = new KernelBenchOptions();
            var benchmarkCase = BenchmarkConverter.TypeToBenchmarks(typeof(RmsNormBenchmarks)).BenchmarksCases
                .First(c => c.Descriptor.WorkloadMethod.Name == nameof(RmsNormBenchmarks.Backward) && (string)c.Parameters["Config"] == "width1024");
            var running = new RmsNormBenchmarks { Config = "width1024", B = 128, T = 2048, Kernels = "current" };
            Assert.Equal(KernelTimings.KeyOf(benchmarkCase), KernelTimings.KeyOf(running, nameof(RmsNormBenchmarks.Backward)));
            Assert.NotEqual(KernelTimings.KeyOf(benchmarkCase), KernelTimings.KeyOf(running, nameof(RmsNormBenchmarks.Forward)));
            running.Config = "baseline";
            Assert.NotEqual(KernelTimings.KeyOf(benchmarkCase), KernelTimings.KeyOf(running, nameof(RmsNormBenchmarks.Backward)));
        }
        finally
        {
            KernelBenchOptions.Current = saved;
        }
    }

    [Fact]
    public void The_device_time_is_the_median_of_the_timed_iterations_that_come_last()
    {
        var entry = KernelTimings.Start("test key", KernelWork.Memory(1e9), "dx 1.0E-5 ≤ 1E-4");
        Assert.Null(entry.MedianMilliseconds(3));
        foreach (var ms in new[] { 50.0, 9.0, 2.0, 3.0, 1.0 }) // jitting and a warm-up, then three timed iterations
            entry.Add(ms);
        Assert.Equal(2.0, entry.MedianMilliseconds(3));
        Assert.Equal(2.5, entry.MedianMilliseconds(4));
        Assert.Same(entry, KernelTimings.Find("test key"));
    }

    [Fact]
    public void The_work_of_a_call_is_counted_once_in_flops_or_bytes()
    {
        var attention = KernelWork.Attention(128, 2048, 4, 128, 2048, backward: false);
        Assert.True(attention.IsCompute);
        Assert.Equal(GpuGpt.AttentionFlops(128, 2048, 4, 128, 2048, backward: false), attention.Flops);
        Assert.Equal(2.5 * attention.Flops, KernelWork.Attention(128, 2048, 4, 128, 2048, backward: true).Flops);
        Assert.Equal(2.0 * 262144 * 2048 * 512, KernelWork.Gemm(262144, 2048, 512).Flops);
        // One Polar Express iteration of a 2048×512 matrix: XᵀX (2·512²·2048), A² (2·512³), X·B (2·2048·512²); five of them.
        Assert.Equal(5.0 * (2.0 * 512 * 512 * 2048 * 2 + 2.0 * 512 * 512 * 512), KernelWork.MuonGroup(2048, 512, 1).Flops);
        Assert.Equal(KernelWork.MuonGroup(2048, 512, 3).Flops, KernelWork.MuonGroup(512, 2048, 3).Flops);
        var norm = KernelWork.RmsNormForward(262144, 512, writesY: true);
        Assert.False(norm.IsCompute);
        Assert.Equal(262144.0 * 512 * 4 + 262144.0 * 4, norm.Bytes);
        Assert.Equal(30.0 * 1000, KernelWork.AdamW(1000).Bytes);
        Assert.Equal(6.0 * 1000, KernelWork.Cast(1000).Bytes);
        Assert.Equal(8192.0 * 8192 * 4 + 8192.0 * 8, KernelWork.CrossEntropy(8192, 8192, gradient: true).Bytes);
    }

    [Fact]
    public void The_peak_fraction_holds_flops_against_the_gemm_rate_and_bytes_against_the_copy()
    {
        var peaks = new DevicePeaks("test device", GemmTeraflops: 800, CopyTerabytes: 4);
        Assert.Equal(0.5, peaks.Fraction(KernelWork.Compute(400e12), 1), 12);
        Assert.Equal(0.25, peaks.Fraction(KernelWork.Memory(1e12), 1), 12);
    }
}

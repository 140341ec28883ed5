using AutoResearch.Native;
using AutoResearch.Optim.Gpu;
using AutoResearch.Runner.Training;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>The memory estimates that refuse a configuration before it allocates anything, on the CPU (no device needed).</summary>
public class MemoryEstimateTests
{
    private static readonly DeviceProperties H200 = new(0, "NVIDIA H200", 9, 0, 132, 150L << 30, 60 << 20, 232448, 1024);

    [Fact]
    public void The_baseline_estimate_is_close_to_the_measured_peak_and_grows_with_the_batch()
    {
        var h = Hyperparameters.Default;
        var shape = h.Shape(8192, 2048);
        var settings = h.Optimizer(shape.ModelDim);
        long model = Model.Gpu.GpuGpt.EstimateBytes(H200, shape, 128);
        long optimizer = MuonAdamWGpu.EstimateBytes(shape, settings);
        // The profiled peak of the baseline is 28,554.6 MB of tracked allocations (model and optimizer); the estimate is what
        // they allocate, so it should land within a few percent.
        double megabytes = (model + optimizer) / 1e6;
        long activations = Model.Gpu.GpuActivations.EstimateBytes(shape, 128, 8192, 0, true);
        Assert.True(megabytes is > 27_000 and < 30_500, $"model {model / 1e6:F0} MB (activations {activations / 1e6:F0} MB), optimizer {optimizer / 1e6:F0} MB");
        Assert.True(GpuTrainer.EstimateBytes(H200, shape, 64, settings) < GpuTrainer.EstimateBytes(H200, shape, 128, settings));
    }

    [Fact]
    public void Optimizer_state_is_kept_only_for_the_adam_tensors_and_muon_groups()
    {
        var shape = Hyperparameters.Default.Shape(8192, 2048);
        long parameters = shape.ParameterCount;
        long bytes = MuonAdamWGpu.EstimateBytes(shape, Hyperparameters.Default.Optimizer(shape.ModelDim));
        // Adam moments (8 bytes) for the embeddings and lm_head, about 12 bytes for each Muon element: far less than 8 bytes for
        // every parameter plus Muon's buffers.
        Assert.True(bytes < 12L * parameters, $"{bytes} bytes for {parameters} parameters");
    }

    [Fact]
    public void Cpu_reference_refuses_a_model_that_cannot_fit_in_host_memory()
    {
        var shape = (Hyperparameters.Default with { Depth = 32, AspectRatio = 64 }).Shape(8192, 2048);
        var e = Assert.Throws<InvalidOperationException>(() => CpuTrainer.CheckMemory(shape, 128, 16L << 30));
        Assert.Contains("--device-batch", e.Message);
        Assert.Contains("GB", e.Message);
        CpuTrainer.CheckMemory((Hyperparameters.Default with { Depth = 2, AspectRatio = 64 }).Shape(512, 64), 4, 16L << 30); // the CPU defaults fit
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(100000000)]
    public void A_depth_beyond_the_knob_range_is_refused_naming_the_knob(int depth)
    {
        var e = Assert.Throws<ArgumentException>(() => (Hyperparameters.Default with { Depth = depth }).Validate());
        Assert.Contains("Depth", e.Message);
        Assert.Contains("1..64", e.Message);
    }
}

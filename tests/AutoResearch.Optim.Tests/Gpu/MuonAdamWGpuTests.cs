using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using AutoResearch.Optim.Gpu;
using AutoResearch.Optim.Reference;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Optim.Tests.Gpu;

/// <summary>
/// The GPU optimizer against the CPU reference over consecutive steps, for every group, on random parameters and fresh random
/// gradients each step (so the moments, the bias corrections, the momentum warm-up and NorMuon's second moments are all used).
/// Compared per tensor: the parameter change of each step. Tolerances: 1e-4 relative for AdamW (fp32 vs fp64), 2e-2 for
/// Muon (bf16 Newton–Schulz on both sides, rounding at the same points, but not always to the same neighbour).
/// </summary>
[Trait("Category", "GPU")]
public class MuonAdamWGpuTests
{
    [GpuTheory]
    [InlineData("fp32")]
    [InlineData("reference")] // bf16 embeddings and moments, the bf16 Muon update: both sides round at the same points
    public void Gpu_optimizer_matches_the_cpu_reference_over_three_steps_for_every_group(string precision)
    {
        int seed = 2024 + precision.Length;
        var device = TestGpu.Device;
        var stream = TestGpu.Stream;
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 128, windowPattern: "SL", vocabSize: 96, seqLen: 16);
        using var parameters = new GpuParameters(device, shape);
        var settings = new OptimizerSettings(shape.ModelDim, Precision: OptimizerPrecisions.Parse(precision));
        var r = new Random(seed);
        var reference = parameters.Entries.Select(e => new ReferenceParameter(e.Name, e.Rows, e.Cols)).ToList();
        foreach (var p in reference)
        {
            for (int i = 0; i < p.Value.Length; i++)
                p.Value[i] = (float)((r.NextDouble() * 2 - 1) * 0.1);
            parameters.Upload(p.Name, p.Value.Select(v => (float)v).ToArray());
        }
        var cpu = new MuonAdamWReference(reference, settings) { RoundLikeGpu = true };
        using var gpu = new MuonAdamWGpu(device, stream, TestGpu.Blas, TestGpu.Kernels, parameters, settings);
        Assert.Contains(gpu.MuonGroups, g => g.Rows > g.Cols);
        Assert.Contains(gpu.MuonGroups, g => g.Rows < g.Cols);
        Assert.Contains(gpu.MuonGroups, g => g.Rows == g.Cols);

        var schedule = new[] { (Lr: 1.0, Step: 0, Wd: 0.2), (Lr: 0.8, Step: 1, Wd: 0.15), (Lr: 0.5, Step: 2, Wd: 0.1) };
        long spared = 0;
        foreach (var (lr, step, wd) in schedule)
        {
            var before = reference.ToDictionary(p => p.Name, p => (double[])p.Value.Clone());
            foreach (var p in reference)
            {
                var g = new float[p.Gradient.Length];
                for (int i = 0; i < g.Length; i++)
                    p.Gradient[i] = g[i] = (float)(r.NextDouble() * 2 - 1);
                parameters.UploadTo(parameters.Gradients, p.Name, g);
            }
            double momentum = TrainingSchedule.MuonMomentum(step);
            cpu.Step(lr, momentum, wd);
            gpu.Step((float)lr, (float)momentum, (float)wd);
            stream.Synchronize();
            spared += cpu.LastMask.Spared;
            foreach (var p in reference)
            {
                var gpuValues = parameters.Download(parameters.Master, p.Name);
                var gpuDelta = gpuValues.Select((v, i) => (float)(v - before[p.Name][i])).ToArray();
                var cpuDelta = p.Value.Select((v, i) => v - before[p.Name][i]).ToArray();
                var group = settings.GroupOf(p.Name);
                bool bf16 = settings.Precision.HasBf16Parameters(group);
                Numerics.AssertClose($"{precision}: step {step + 1} {p.Name} update", gpuDelta, cpuDelta, group == ParameterGroup.Muon || bf16 ? 2e-2 : 1e-4, seed);
                if (bf16)
                    Assert.All(gpuValues, v => Assert.Equal(AutoResearch.Native.Bf16.Round(v), v)); // a bf16 parameter stays on the bf16 grid
                // Resynchronise the reference to the GPU's values so rounding differences do not compound across steps.
                for (int i = 0; i < gpuValues.Length; i++)
                    p.Value[i] = gpuValues[i];
            }
            // The bf16 copies follow the masters in the same pass.
            var copy = AutoResearch.Native.Bf16.ToFloat(parameters.Bf16Copies.ToArray());
            var masters = parameters.Master.ToArray();
            foreach (var e in parameters.Entries)
            {
                for (long i = e.Offset; i < e.Offset + e.Count; i++)
                    Assert.Equal(AutoResearch.Native.Bf16.Round(masters[i]), copy[i]);
            }
        }
        Assert.True(spared > 0, "the cautious mask never spared an element");
    }
}

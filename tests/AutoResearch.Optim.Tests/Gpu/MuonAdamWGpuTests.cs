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

        // The state each carries on: the same buffers under the same names, the same values to the precision of each group
        // (the CPU's parameters were reset to the GPU's after each step, its moments were not).
        var gpuState = gpu.ExportState();
        var cpuState = cpu.ExportState();
        Assert.Equal(3, gpuState.Step);
        Assert.Equal(cpuState.Step, gpuState.Step);
        foreach (var (what, g, c) in new[]
        {
            ("exp_avg", gpuState.AdamFirst, cpuState.AdamFirst), ("exp_avg_sq", gpuState.AdamSecond, cpuState.AdamSecond),
            ("momentum_buffer", gpuState.Momentum, cpuState.Momentum), ("second_momentum_buffer", gpuState.SecondMoment, cpuState.SecondMoment),
        })
        {
            Assert.Equal(c.Keys.Order(), g.Keys.Order());
            foreach (var (name, values) in c)
            {
                bool bf16 = settings.Precision.HasBf16Parameters(settings.GroupOf(name));
                double tolerance = what == "second_momentum_buffer" ? 2e-2 : bf16 ? 1e-2 : 1e-5;
                Numerics.AssertClose($"{precision}: {what} of {name}", g[name], Array.ConvertAll(values, v => (double)v), tolerance, seed);
            }
        }
    }

    [GpuFact]
    public void A_state_saved_and_loaded_into_a_new_optimizer_takes_the_same_next_step()
    {
        const int seed = 77;
        var device = TestGpu.Device;
        var stream = TestGpu.Stream;
        var shape = ModelShape.FromKnobs(depth: 2, aspectRatio: 128, windowPattern: "SL", vocabSize: 96, seqLen: 16);
        using var parameters = new GpuParameters(device, shape);
        var settings = new OptimizerSettings(shape.ModelDim, Precision: OptimizerPrecision.Reference);
        var r = new Random(seed);
        foreach (var e in parameters.Entries)
            parameters.Upload(e.Name, Enumerable.Range(0, (int)e.Count).Select(_ => (float)((r.NextDouble() * 2 - 1) * 0.1)).ToArray());
        var gradients = Enumerable.Range(0, 3).Select(_ => parameters.Entries.ToDictionary(e => e.Name,
            e => Enumerable.Range(0, (int)e.Count).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray())).ToArray();
        void Step(MuonAdamWGpu optimizer, int step)
        {
            foreach (var (name, g) in gradients[step])
                parameters.UploadTo(parameters.Gradients, name, g);
            optimizer.Step(1f - 0.2f * step, (float)TrainingSchedule.MuonMomentum(step), 0.2f);
            stream.Synchronize();
        }

        using var first = new MuonAdamWGpu(device, stream, TestGpu.Blas, TestGpu.Kernels, parameters, settings);
        Step(first, 0);
        Step(first, 1);
        var path = Path.Combine(TestGpu.NewTempDirectory("optimizer-state"), "state.safetensors");
        first.ExportState().Save(path);
        var (masters, copies) = (parameters.Master.ToArray(), parameters.Bf16Copies.ToArray());
        Step(first, 2);
        var (expectedMasters, expectedState) = (parameters.Master.ToArray(), first.ExportState());

        // A new optimizer on the weights after step 2, its state from the file: step 3 again.
        parameters.Master.CopyFrom(masters);
        parameters.Bf16Copies.CopyFrom(copies);
        using var second = new MuonAdamWGpu(device, stream, TestGpu.Blas, TestGpu.Kernels, parameters, settings);
        var loaded = OptimizerState.Load(path);
        loaded.CheckMatches(shape, settings, path);
        Assert.Equal(2, loaded.Step);
        second.ImportState(loaded);
        Assert.Equal(2, second.StepCount);
        Step(second, 2);
        // AdamW and the momentum buffers are element-wise: the same bits. Muon's Frobenius norm adds its blocks' sums with atomics,
        // in whatever order they finish, so what follows the orthogonalisation (the Muon matrices, NorMuon's second moments)
        // agrees to the last bits of bf16, not bit for bit.
        var state = second.ExportState();
        Assert.Equal(expectedState.Step, state.Step);
        Assert.All(expectedState.AdamFirst, kv => Assert.Equal(kv.Value, state.AdamFirst[kv.Key]));
        Assert.All(expectedState.AdamSecond, kv => Assert.Equal(kv.Value, state.AdamSecond[kv.Key]));
        Assert.All(expectedState.Momentum, kv => Assert.Equal(kv.Value, state.Momentum[kv.Key]));
        Assert.All(expectedState.SecondMoment, kv => Numerics.AssertClose($"second_momentum_buffer of {kv.Key}", state.SecondMoment[kv.Key],
            Array.ConvertAll(kv.Value, v => (double)v), 1e-3, seed));
        var resumed = parameters.Master.ToArray();
        foreach (var e in parameters.Entries)
        {
            var change = Change(resumed, masters, e);
            var expectedChange = Array.ConvertAll(Change(expectedMasters, masters, e), v => (double)v);
            if (settings.GroupOf(e.Name) == ParameterGroup.Muon)
                Numerics.AssertClose($"step 3 of {e.Name} after the state was loaded", change, expectedChange, 1e-2, seed);
            else
                Assert.Equal(Change(expectedMasters, masters, e), change);
        }

        // Not a no-op: from a fresh state the same step moves every Muon matrix elsewhere.
        parameters.Master.CopyFrom(masters);
        parameters.Bf16Copies.CopyFrom(copies);
        using var fresh = new MuonAdamWGpu(device, stream, TestGpu.Blas, TestGpu.Kernels, parameters, settings);
        Step(fresh, 2);
        var restarted = parameters.Master.ToArray();
        foreach (var e in parameters.Entries.Where(e => settings.GroupOf(e.Name) == ParameterGroup.Muon))
        {
            double error = Numerics.RelativeError(Change(restarted, masters, e), Array.ConvertAll(Change(expectedMasters, masters, e), v => (double)v));
            Assert.True(error > 0.1, $"{e.Name}: a fresh optimizer's step is within {error:E2} of the resumed one");
        }

        // A state that lacks a buffer is refused before anything changes.
        var partial = new OptimizerState(2, loaded.AdamFirst, loaded.AdamSecond,
            loaded.Momentum.Where(kv => kv.Key != "transformer.h.0.mlp.c_fc.weight").ToDictionary(), loaded.SecondMoment);
        var before = fresh.ExportState();
        var refused = Assert.Throws<ArgumentException>(() => fresh.ImportState(partial));
        var after = fresh.ExportState();
        Assert.All(before.AdamSecond, kv => Assert.Equal(kv.Value, after.AdamSecond[kv.Key]));
        Assert.All(before.Momentum, kv => Assert.Equal(kv.Value, after.Momentum[kv.Key]));
        Assert.Contains("Muon momentum", refused.Message, StringComparison.Ordinal);
        Assert.Contains("transformer.h.0.mlp.c_fc.weight", refused.Message, StringComparison.Ordinal);
        Assert.Equal(1, fresh.StepCount); // the one step it took, not the refused state's two
    }

    private static float[] Change(float[] after, float[] before, GpuParameters.Entry e)
        => Enumerable.Range(0, (int)e.Count).Select(i => after[e.Offset + i] - before[e.Offset + i]).ToArray();
}

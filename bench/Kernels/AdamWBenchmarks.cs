using AutoResearch.Bench.Workbench;
using AutoResearch.Optim;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/adamw.cu: the optimizer step's one AdamW launch over every Adam tensor of the 8-layer model (wte, lm_head, the value
/// embeddings, the two lambda vectors; <c>MuonAdamWGpu.StepAdamW</c>), fp32 masters, moments and gradients, bf16 copies
/// written. The timed call, like the training step, includes the upload of the per-tensor segment table (a few hundred bytes
/// from the host) before the launch. Checked on a one-layer model of the same width against the fp64 reference (1e-4).
/// Memory-bound (30 bytes an element). Run: <c>bench --filter '*AdamWBenchmarks*'</c>.
/// </summary>
public class AdamWBenchmarks : OptimizerBenchmark
{
    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "width1024", "width2048");

    [GlobalSetup(Target = nameof(Step))]
    public void SetupStep()
    {
        Prepare(nameof(Step), () => CheckStep("adamw_step", 1201, e => Settings.GroupOf(e.Name) != ParameterGroup.Muon, o => o.StepAdamW(LrMultiplier), 1e-4), () =>
        {
            AllocateModel();
            var settings = Settings; // the shape is known once Prepare has built it
            return KernelWork.AdamW(Parameters.Entries.Where(e => settings.GroupOf(e.Name) != ParameterGroup.Muon).Sum(e => e.Count));
        });
    }

    [Benchmark]
    public void Step()
    {
        Begin();
        Optimizer.StepAdamW(LrMultiplier);
        End();
    }
}

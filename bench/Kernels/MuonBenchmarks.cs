using AutoResearch.Bench.Workbench;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// One Muon shape group's update as the optimizer step runs it (<c>MuonAdamWGpu.StepMuonGroup</c>): Nesterov momentum and the
/// Frobenius normalisation (kernels/muon.cu), five Polar Express iterations as strided-batched bf16 cuBLASLt GEMMs over the
/// group's matrices, NorMuon's statistics and scales, the cautious update and the bf16 copies (kernels/muon.cu). Groups:
/// <c>attn</c> (c_q, c_k, c_v, c_proj: C×C, 4 a layer), <c>c_fc</c> (4C×C) and <c>c_proj</c> (C×4C), of the 8-layer model.
/// Checked on a one-layer model of the same width against the fp64 reference (rounding to bf16 where the GPU does, so a 2e-2
/// bound); that reference costs O(rows·cols²) a matrix, so widths stop at 1024. Tensor-core work (the iterations' FLOPs).
/// Run: <c>bench --filter '*MuonBenchmarks*'</c>.
/// </summary>
public class MuonBenchmarks : OptimizerBenchmark
{
    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "width1024");

    /// <summary>The shape group: attn (C×C), c_fc (4C×C), c_proj (C×4C).</summary>
    [Params("attn", "c_fc", "c_proj")]
    public string Group { get; set; } = "attn";

    private (int Rows, int Cols) GroupShape => Group switch
    {
        "attn" => (Shape.ModelDim, Shape.ModelDim),
        "c_fc" => (Shape.FcRows, Shape.ModelDim),
        "c_proj" => (Shape.ModelDim, Shape.MlpHidden),
        _ => throw new ArgumentException($"Group = '{Group}': expected attn, c_fc or c_proj"),
    };

    [GlobalSetup(Target = nameof(Step))]
    public void SetupStep()
    {
        Prepare(nameof(Step), () =>
        {
            var (rows, cols) = GroupShape;
            return CheckStep("muon.cu + Polar Express (cuBLASLt)", 1101, e => e.Rows == rows && e.Cols == cols && e.Name.StartsWith("transformer.h.", StringComparison.Ordinal),
                o => o.StepMuonGroup(rows, cols, LrMultiplier, Momentum, WeightDecay), 2e-2);
        }, () =>
        {
            AllocateModel();
            var (rows, cols) = GroupShape;
            return KernelWork.MuonGroup(rows, cols, Optimizer.MuonGroups.Single(g => g.Rows == rows && g.Cols == cols).Count);
        });
    }

    [Benchmark]
    public void Step()
    {
        var (rows, cols) = GroupShape;
        Begin();
        Optimizer.StepMuonGroup(rows, cols, LrMultiplier, Momentum, WeightDecay);
        End();
    }
}

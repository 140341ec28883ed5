using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/flash_forward.cu (flash_attention_forward, wgmma + TMA) at B × T tokens, for each head size, grouping of query heads
/// onto kv heads, and window: o and lse from q, k, v as the model calls it. Checked against the fp64 reference at B 2, T 512
/// (<see cref="AttentionBenchmark"/>). Tensor-core work: the matrix FLOPs of the visible (query, key) pairs against the
/// device's GEMM rate. Run: <c>bench --filter '*FlashForwardBenchmarks*'</c>.
/// </summary>
public class FlashForwardBenchmarks : AttentionBenchmark
{
    private FlashForward _flash = null!;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "head64", "gqa2");

    [Params(128)]
    public override int B { get; set; } = 128;

    [Params(2048)]
    public override int T { get; set; } = 2048;

    protected override void Open() => _flash = new FlashForward(KernelFiles, Shape.HeadDim);

    [GlobalSetup(Target = nameof(Forward))]
    public void SetupForward() => Prepare(nameof(Forward), () => CheckForward("flash_attention_forward", _flash.Forward), () =>
    {
        AllocateInputs();
        return KernelWork.Attention(B, T, Shape.Heads, Shape.HeadDim, WindowTokens, backward: false);
    });

    [Benchmark]
    public void Forward()
    {
        Begin();
        _flash.Forward(Q, K, V, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, O, Lse, Stream);
        End();
    }
}

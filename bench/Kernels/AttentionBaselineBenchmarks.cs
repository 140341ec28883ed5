using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// The flash kernels against the plain way of doing the same attention: kernels/attention_naive.cu (one warp per query, fp32,
/// atomics in the backward; the GPU oracle of the flash tests), the baseline of each category, at a small batch (B 4, T 2048)
/// where the naive kernels finish in reasonable time. Forward: o and lse; backward: dense dq, dk, dv (dq written). Both
/// checked against the fp64 reference at B 2, T 512. Run: <c>bench --filter '*AttentionBaselineBenchmarks*'</c>.
/// </summary>
public class AttentionBaselineBenchmarks : AttentionBenchmark
{
    private FlashAttention _flash = null!;
    private AttentionNaive _naive = null!;
    private ulong _dq, _dk, _dv, _scratch;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline");

    [Params(4)]
    public override int B { get; set; } = 4;

    [Params(2048)]
    public override int T { get; set; } = 2048;

    protected override void Open()
    {
        _flash = new FlashAttention(KernelFiles, Shape.HeadDim);
        _naive = new AttentionNaive(KernelFiles, Shape.HeadDim);
    }

    private KernelWork SetUpForward()
    {
        AllocateInputs();
        return KernelWork.Attention(B, T, Shape.Heads, Shape.HeadDim, WindowTokens, backward: false);
    }

    private KernelWork SetUpBackward(IAttentionKernels attention)
    {
        AllocateInputs();
        long q = (long)B * T * Shape.Heads * Shape.HeadDim, kv = (long)B * T * Shape.KvDim;
        _dq = Buffers.Allocate<ushort>(q, "dq").Pointer;
        _dk = Buffers.Allocate<ushort>(kv, "dk").Pointer;
        _dv = Buffers.Allocate<ushort>(kv, "dv").Pointer;
        _scratch = Buffers.Allocate<byte>(attention.BackwardScratchBytes(B, T, Shape.Heads, Shape.KvHeads), "backward scratch").Pointer;
        Device.Synchronize();
        attention.Forward(Q, K, V, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, O, Lse, Stream);
        return KernelWork.Attention(B, T, Shape.Heads, Shape.HeadDim, WindowTokens, backward: true);
    }

    [GlobalSetup(Target = nameof(FlashForward))]
    public void SetupFlashForward() => Prepare(nameof(FlashForward), () => CheckForward("flash_attention_forward", _flash.Forward), SetUpForward);

    [Benchmark, BenchmarkCategory("forward")]
    public void FlashForward()
    {
        Begin();
        _flash.Forward(Q, K, V, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, O, Lse, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(NaiveForward))]
    public void SetupNaiveForward() => Prepare(nameof(NaiveForward), () => CheckForward("naive_attention_forward", _naive.Forward), SetUpForward);

    [Benchmark(Baseline = true), BenchmarkCategory("forward")]
    public void NaiveForward()
    {
        Begin();
        _naive.Forward(Q, K, V, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, O, Lse, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(FlashBackward))]
    public void SetupFlashBackward()
        => Prepare(nameof(FlashBackward), () => CheckBackward("flash_attention_backward (+ prepare, finish)", _flash, asTheModelCalls: false), () => SetUpBackward(_flash));

    [Benchmark, BenchmarkCategory("backward")]
    public void FlashBackward()
    {
        Begin();
        _flash.Backward(Q, K, V, O, DOut, Lse, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, _dq, _dk, _dv, _scratch, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(NaiveBackward))]
    public void SetupNaiveBackward()
        => Prepare(nameof(NaiveBackward), () => CheckBackward("naive_attention_backward (+ finish)", _naive, asTheModelCalls: false), () => SetUpBackward(_naive));

    [Benchmark(Baseline = true), BenchmarkCategory("backward")]
    public void NaiveBackward()
    {
        Begin();
        _naive.Backward(Q, K, V, O, DOut, Lse, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, _dq, _dk, _dv, _scratch, Stream);
        End();
    }
}

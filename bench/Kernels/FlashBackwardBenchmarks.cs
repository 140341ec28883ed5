using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/flash_backward.cu at B × T tokens, for each head size, grouping and window. <see cref="Backward"/> is the model's
/// call less k's rotary epilogue (the model passes a <see cref="KRotaryBackward"/>): flash_attention_backward_prepare (D, the zeroed dq accumulator) and flash_attention_backward, dk and dv written as
/// rows of one dq | dk | dv matrix, dq left in the fp32 accumulator for the rotary backward. <see cref="BackwardWithDq"/> adds
/// flash_attention_backward_finish (dq to bf16) and writes dense tensors. o and lse come from the flash forward. Checked
/// against the fp64 reference at B 2, T 512 (<see cref="AttentionBenchmark"/>); tensor-core work (2.5× the forward's FLOPs).
/// <see cref="BackwardPrepare"/> times flash_attention_backward_prepare alone (memory-bound), the part of
/// <see cref="Backward"/> that is not tensor-core work. Run: <c>bench --filter '*FlashBackwardBenchmarks*'</c>.
/// </summary>
public class FlashBackwardBenchmarks : AttentionBenchmark
{
    private FlashAttention _flash = null!;
    private ulong _grads, _scratch;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "head64", "gqa2");

    [Params(128)]
    public override int B { get; set; } = 128;

    [Params(2048)]
    public override int T { get; set; } = 2048;

    private int QWidth => Shape.Heads * Shape.HeadDim;

    private int RowStride => QWidth + 2 * Shape.KvDim;

    protected override void Open() => _flash = new FlashAttention(KernelFiles, Shape.HeadDim);

    private KernelWork SetUpTiming()
    {
        AllocateInputs();
        _grads = Buffers.Allocate<ushort>((long)B * T * RowStride, "dq | dk | dv").Pointer;
        _scratch = Buffers.Allocate<byte>(_flash.BackwardScratchBytes(B, T, Shape.Heads, Shape.KvHeads), "backward scratch").Pointer;
        Device.Synchronize();
        _flash.Forward(Q, K, V, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, O, Lse, Stream);
        return KernelWork.Attention(B, T, Shape.Heads, Shape.HeadDim, WindowTokens, backward: true);
    }

    [GlobalSetup(Target = nameof(Backward))]
    public void SetupBackward()
        => Prepare(nameof(Backward), () => CheckBackward("flash_attention_backward_prepare + flash_attention_backward", _flash, asTheModelCalls: true), SetUpTiming);

    /// <summary>As the model calls it for all but its last layer (strided dq | dk | dv rows, dq left in the fp32 accumulator, the
    /// other accumulator zeroed for the next layer), less k's rotary backward: the
    /// model also passes a <see cref="KRotaryBackward"/>, whose epilogue this times without (its cost is in the model's
    /// `profile`, where the attention backward includes it).</summary>
    [Benchmark]
    public void Backward()
    {
        Begin();
        _flash.Backward(Q, K, V, O, DOut, Lse, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, _grads, _grads + 2UL * (ulong)QWidth,
            _grads + 2UL * (ulong)(QWidth + Shape.KvDim), _scratch, Stream, RowStride, leaveDqAccumulated: true, zeroNextAccumulator: true);
        End();
    }

    [GlobalSetup(Target = nameof(BackwardPrepare))]
    public void SetupBackwardPrepare() => Prepare(nameof(BackwardPrepare), CheckPrepare, () =>
    {
        SetUpTiming();
        // o and dout read (bf16), the dq accumulator zeroed (fp32), D written (fp32).
        long rows = (long)B * T * Shape.Heads;
        return KernelWork.Memory(rows * Shape.HeadDim * (2.0 + 2.0 + 4.0) + rows * 4.0);
    });

    /// <summary>The backward's first kernel alone: D = Σ o·dout per row, the fp32 dq accumulator and the tile counter zeroed.</summary>
    [Benchmark]
    public void BackwardPrepare()
    {
        Begin();
        _flash.PrepareBackward(O, DOut, B, T, Shape.Heads, _scratch, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(BackwardPrepareDOnly))]
    public void SetupBackwardPrepareDOnly() => Prepare(nameof(BackwardPrepareDOnly), () => CheckPrepare(zeroes: false), () =>
    {
        SetUpTiming();
        // o and dout read (bf16), D written (fp32): the accumulator was zeroed by the backward before (zeroNextAccumulator).
        long rows = (long)B * T * Shape.Heads;
        return KernelWork.Memory(rows * Shape.HeadDim * (2.0 + 2.0) + rows * 4.0);
    });

    /// <summary>The prepare as the model runs it for 7 of 8 layers: D only, the accumulator zeroed already.</summary>
    [Benchmark]
    public void BackwardPrepareDOnly()
    {
        Begin();
        _flash.PrepareBackward(O, DOut, B, T, Shape.Heads, _scratch, Stream, accumulator: 1, accumulatorZeroed: true);
        End();
    }

    private KernelCheck CheckPrepare() => CheckPrepare(zeroes: true);

    /// <summary>D against Σ o·dout in fp64, from a scratch poisoned with NaN; with <paramref name="zeroes"/>, every element of
    /// the accumulator exactly 0, else every one still NaN (not written).</summary>
    private KernelCheck CheckPrepare(bool zeroes)
    {
        int b = CheckBatch, t = CheckSeqLen, h = Shape.Heads, d = Shape.HeadDim;
        long rows = (long)b * t * h;
        var check = new KernelCheck("flash_attention_backward_prepare", 303, $"B {b}, T {t}, {h} heads of {d}");
        var r = new Random(check.Seed);
        var (oBits, o) = HostRandom.Bf16Values(r, rows * d);
        var (doBits, dout) = HostRandom.Bf16Values(r, rows * d);
        // Rows come in [B, T, H] order; D is [B, H, T].
        var dRef = new double[rows];
        for (long row = 0; row < rows; row++)
        {
            long head = row % h, position = row / h % t, batch = row / h / t;
            double sum = 0;
            for (long c = row * d; c < (row + 1) * d; c++)
                sum += o[c] * dout[c];
            dRef[(batch * h + head) * t + position] = sum;
        }
        using var s = new DeviceScratch(Device);
        var dO = s.Upload(oBits, "o");
        var dDout = s.Upload(doBits, "dout");
        var scratch = s.Poisoned<float>(FlashAttention.ScratchBytes(b, t, h, d) / sizeof(float), "backward scratch");
        RunForCheck(() => _flash.PrepareBackward(dO.Pointer, dDout.Pointer, b, t, h, scratch.Pointer, Stream, accumulator: 0,
            accumulatorZeroed: !zeroes));
        var all = scratch.ToArray();
        long accumulator = FlashAttention.DqAccumulatorOffset(b, t, h) / sizeof(float);
        check.Compare("D", all.AsSpan(0, (int)rows), dRef, 1e-5);
        if (zeroes)
            check.Compare("dq accumulator (zeroed)", all.AsSpan((int)accumulator, (int)(rows * d)), new double[rows * d], 0);
        else if (!all.AsSpan((int)accumulator, (int)(rows * d)).ToArray().All(float.IsNaN))
            throw new KernelCheckException($"{check.Kernel}: the D-only prepare wrote into the dq accumulator");
        return check;
    }

    [GlobalSetup(Target = nameof(BackwardWithDq))]
    public void SetupBackwardWithDq()
        => Prepare(nameof(BackwardWithDq), () => CheckBackward("flash_attention_backward (+ prepare, finish)", _flash, asTheModelCalls: false), SetUpTiming);

    /// <summary>Dense dq, dk, dv, with dq written in bf16 by the finish kernel.</summary>
    [Benchmark]
    public void BackwardWithDq()
    {
        long tokens = (long)B * T;
        Begin();
        _flash.Backward(Q, K, V, O, DOut, Lse, B, T, Shape.Heads, Shape.KvHeads, WindowTokens, _grads, _grads + (ulong)(2 * tokens * QWidth),
            _grads + (ulong)(2 * tokens * (QWidth + Shape.KvDim)), _scratch, Stream);
        End();
    }
}

using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// What the attention benchmarks share: the window parameter (S, the configuration's short window, T/2 by default; L, the
/// whole context), the full-size tensors (q, o, dout [B, T, H, D], k, v [B, T, KV, D] bf16; lse [B, H, T] fp32; q and k uniform
/// in ±√3, RMS 1 like QK-normed vectors) and the checks. The fp64 reference costs O(T²) per head, so the checks run at
/// B = 2, T = 512 with the window scaled alike (S = 256, L = 512): four 128-row tiles, the same heads, kv heads and head size.
/// </summary>
public abstract class AttentionBenchmark : KernelBenchmark
{
    protected const int CheckBatch = 2, CheckSeqLen = 512;

    /// <summary>The forward of either kernel family (flash, naive), as <see cref="IAttentionKernels.Forward"/> takes it.</summary>
    public delegate void ForwardCall(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int kvHeads, int window, ulong o, ulong lse, CudaStream stream);

    /// <summary>S: the configuration's short window; L: the whole context.</summary>
    [Params("S", "L")]
    public string Window { get; set; } = "L";

    public abstract int B { get; set; }

    public abstract int T { get; set; }

    protected override int SeqLen => T;

    /// <summary>Keys a query sees back (t − W ≤ s ≤ t).</summary>
    protected int WindowTokens => Window switch
    {
        "S" => Shape.Windows.Min(),
        "L" => T,
        _ => throw new ArgumentException($"Window = '{Window}': expected S or L"),
    };

    /// <summary>The window of the check, scaled with T.</summary>
    private int CheckWindow => (int)Math.Max(1, (long)WindowTokens * CheckSeqLen / T);

    protected ulong Q { get; private set; }

    protected ulong K { get; private set; }

    protected ulong V { get; private set; }

    protected ulong O { get; private set; }

    protected ulong Lse { get; private set; }

    protected ulong DOut { get; private set; }

    /// <summary>Full-size q, k, v, dout (random), o and lse.</summary>
    protected void AllocateInputs()
    {
        long q = (long)B * T * Shape.Heads * Shape.HeadDim, kv = (long)B * T * Shape.KvDim;
        Q = Buffers.RandomBf16(q, 31, Math.Sqrt(3), "q").Pointer;
        K = Buffers.RandomBf16(kv, 32, Math.Sqrt(3), "k").Pointer;
        V = Buffers.RandomBf16(kv, 33, 1, "v").Pointer;
        DOut = Buffers.RandomBf16(q, 34, 1, "dout").Pointer;
        O = Buffers.Allocate<ushort>(q, "o").Pointer;
        Lse = Buffers.Allocate<float>((long)B * Shape.Heads * T, "lse").Pointer;
    }

    /// <summary>Host inputs of a check and their reference values: q, k, v, dout.</summary>
    private (ushort[][] Bits, double[][] Values) CheckInputs(int seed)
    {
        var r = new Random(seed);
        long q = (long)CheckBatch * CheckSeqLen * Shape.Heads * Shape.HeadDim, kv = (long)CheckBatch * CheckSeqLen * Shape.KvDim;
        var parts = new[] { (q, Math.Sqrt(3)), (kv, Math.Sqrt(3)), (kv, 1.0), (q, 1.0) }.Select(p => HostRandom.Bf16Values(r, p.Item1, p.Item2)).ToArray();
        return (parts.Select(p => p.Bits).ToArray(), parts.Select(p => p.Values).ToArray());
    }

    private string CheckInputsText => $"B {CheckBatch}, T {CheckSeqLen}, window {CheckWindow}, {Shape.Heads} heads on {Shape.KvHeads} kv heads of {Shape.HeadDim}";

    /// <summary>o and lse of <paramref name="forward"/> against <see cref="CpuOps.Attention"/>.</summary>
    protected KernelCheck CheckForward(string kernel, ForwardCall forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        int b = CheckBatch, t = CheckSeqLen, h = Shape.Heads, kv = Shape.KvHeads, d = Shape.HeadDim, w = CheckWindow;
        var check = new KernelCheck(kernel, 301, CheckInputsText);
        var (bits, values) = CheckInputs(check.Seed);
        var (oRef, lseRef) = CpuOps.Attention(values[0], values[1], values[2], b, t, h, kv, d, w);
        using var s = new DeviceScratch(Device);
        var dQ = s.Upload(bits[0], "q");
        var dK = s.Upload(bits[1], "k");
        var dV = s.Upload(bits[2], "v");
        var dO = s.Poisoned<ushort>(bits[0].Length, "o");
        var dLse = s.Poisoned<float>((long)b * h * t, "lse");
        RunForCheck(() => forward(dQ.Pointer, dK.Pointer, dV.Pointer, b, t, h, kv, w, dO.Pointer, dLse.Pointer, Stream));
        check.CompareBf16("o", dO.ToArray(), oRef, 1e-2);
        check.Compare("lse", dLse.ToArray(), lseRef, 1e-4);
        return check;
    }

    /// <summary>
    /// dq, dk and dv of <paramref name="attention"/>'s backward (from its own forward's o and lse) against
    /// <see cref="CpuOps.AttentionBackward"/>. <paramref name="asTheModelCalls"/>: dq | dk | dv as rows of one
    /// [B·T, H·D + 2·KV·D] matrix and dq left in the fp32 accumulator where the kernels keep one (read back through its column
    /// permutation); else three dense tensors, dq written.
    /// </summary>
    protected KernelCheck CheckBackward(string kernel, IAttentionKernels attention, bool asTheModelCalls)
    {
        ArgumentNullException.ThrowIfNull(attention);
        int b = CheckBatch, t = CheckSeqLen, h = Shape.Heads, kv = Shape.KvHeads, d = Shape.HeadDim, w = CheckWindow;
        var check = new KernelCheck(kernel, 302, CheckInputsText + (asTheModelCalls ? ", gradients as rows of dq | dk | dv, dq accumulated" : ", dense gradients"));
        var (bits, values) = CheckInputs(check.Seed);
        var (dqRef, dkRef, dvRef) = CpuOps.AttentionBackward(values[0], values[1], values[2], values[3], b, t, h, kv, d, w);
        long tokens = (long)b * t;
        int qWidth = h * d, kvWidth = kv * d, stride = asTheModelCalls ? qWidth + 2 * kvWidth : 0;
        using var s = new DeviceScratch(Device);
        var dQ = s.Upload(bits[0], "q");
        var dK = s.Upload(bits[1], "k");
        var dV = s.Upload(bits[2], "v");
        var dDo = s.Upload(bits[3], "dout");
        var dO = s.Poisoned<ushort>(bits[0].Length, "o");
        var dLse = s.Poisoned<float>((long)b * h * t, "lse");
        // Poisoned (NaN) where the kernels keep two accumulators, so that the one zeroed for the next backward shows any element left.
        bool zeroNext = asTheModelCalls && attention.AlternatesAccumulators;
        var scratch = zeroNext ? s.Poisoned<byte>(attention.BackwardScratchBytes(b, t, h, kv), "backward scratch")
            : s.Allocate<byte>(attention.BackwardScratchBytes(b, t, h, kv), "backward scratch");
        var grads = s.Poisoned<ushort>(asTheModelCalls ? tokens * stride : tokens * (qWidth + 2 * kvWidth), "dq | dk | dv");
        ulong dq = grads.Pointer, dk = grads.At(asTheModelCalls ? qWidth : tokens * qWidth), dv = grads.At(asTheModelCalls ? qWidth + kvWidth : tokens * (qWidth + kvWidth));
        ulong accumulator = 0;
        RunForCheck(() =>
        {
            attention.Forward(dQ.Pointer, dK.Pointer, dV.Pointer, b, t, h, kv, w, dO.Pointer, dLse.Pointer, Stream);
            accumulator = attention.Backward(dQ.Pointer, dK.Pointer, dV.Pointer, dO.Pointer, dDo.Pointer, dLse.Pointer, b, t, h, kv, w, dq, dk, dv,
                scratch.Pointer, Stream, stride, leaveDqAccumulated: asTheModelCalls, zeroNextAccumulator: zeroNext);
        });
        var all = Bf16.ToFloat(grads.ToArray());
        float[] Rows(long first, int width, int rowStride)
        {
            var result = new float[tokens * width];
            for (long i = 0; i < tokens; i++)
                Array.Copy(all, first + i * rowStride, result, i * width, width);
            return result;
        }
        float[] dqOut = accumulator != 0 ? FromAccumulator(DeviceScratch.Read<float>(Device, accumulator, tokens * qWidth), b, t, h, d)
            : asTheModelCalls ? Rows(0, qWidth, stride) : Rows(0, qWidth, qWidth);
        check.Compare(accumulator != 0 ? "dq (fp32 accumulator)" : "dq", dqOut, dqRef, 2e-2);
        check.Compare("dk", asTheModelCalls ? Rows(qWidth, kvWidth, stride) : Rows(tokens * qWidth, kvWidth, kvWidth), dkRef, 2e-2);
        check.Compare("dv", asTheModelCalls ? Rows(qWidth + kvWidth, kvWidth, stride) : Rows(tokens * (qWidth + kvWidth), kvWidth, kvWidth), dvRef, 2e-2);
        if (zeroNext)
        {
            long other = FlashAttention.DqAccumulatorOffset(b, t, h, d, 1);
            check.Compare("the next backward's dq accumulator (zeroed)", DeviceScratch.Read<float>(Device, scratch.Pointer + (ulong)other, tokens * qWidth),
                new double[tokens * qWidth], 0);
        }
        return check;
    }

    /// <summary>
    /// dq [B, T, H, D] from the flash backward's fp32 accumulator [B, H, T, D], whose rows keep column c at c XOR 8·(t mod 8)
    /// (dq_column in kernels/common.cuh).
    /// </summary>
    private static float[] FromAccumulator(float[] accumulator, int batch, int seqLen, int heads, int headDim)
    {
        var dq = new float[accumulator.Length];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < seqLen; t++)
            {
                for (int h = 0; h < heads; h++)
                {
                    long from = (((long)b * heads + h) * seqLen + t) * headDim, to = (((long)b * seqLen + t) * heads + h) * headDim;
                    for (int c = 0; c < headDim; c++)
                        dq[to + c] = accumulator[from + (c ^ ((t & 7) << 3))];
                }
            }
        }
        return dq;
    }
}

using AutoResearch.Bench.Workbench;
using AutoResearch.Model;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/rotary.cu (rotary embedding + QK-norm) for each head size and kv-head count, one call = q and k of a layer, as the
/// model makes it: <see cref="Forward"/> rotates and normalises q [N, H, D] and k [N, KV, D] in place (rstd kept);
/// <see cref="Backward"/> takes q's gradient from the flash backward's fp32 dq accumulator and k's from its rows of the
/// dq | dk | dv matrix, writing both into that matrix. With the flash attention the model runs the k pass inside the flash
/// backward's epilogue instead, so there this kernel's backward is the q pass alone; both passes are the model's call with
/// the naive attention. Checked at B 2 and the full T against the fp64 reference with the
/// same bf16-rounded cos/sin table. Memory-bound. Run: <c>bench --filter '*RotaryBenchmarks*'</c>.
/// </summary>
public class RotaryBenchmarks : TokenKernelBenchmark
{
    private const int CheckBatch = 2;

    private Rotary _rotary = null!;
    private ulong _q, _k, _rstdQ, _rstdK, _table, _grads, _accumulator;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "head64", "gqa2");

    private int H => Shape.Heads;

    private int KV => Shape.KvHeads;

    private int D => Shape.HeadDim;

    /// <summary>Elements from one token's row of dq | dk | dv to the next.</summary>
    private int RowStride => Shape.QkvDim;

    protected override void Open() => _rotary = new Rotary(KernelFiles, D);

    private void AllocateCommon()
    {
        long n = (long)B * T;
        _q = Buffers.RandomBf16(n * H * D, 51, 1, "q").Pointer;
        _k = Buffers.RandomBf16(n * KV * D, 52, 1, "k").Pointer;
        _rstdQ = Buffers.RandomF32(n * H, 53, 1, "rstd q").Pointer;
        _rstdK = Buffers.RandomF32(n * KV, 54, 1, "rstd k").Pointer;
        _table = Buffers.Upload(RotaryTable.Bf16Pairs(RotaryTable.CosSin(T, D, Shape.RotaryBase), T, D), "cos/sin pairs").Pointer;
    }

    [GlobalSetup(Target = nameof(Forward))]
    public void SetupForward() => Prepare(nameof(Forward), CheckForward, () =>
    {
        AllocateCommon();
        long n = (long)B * T;
        return new KernelWork(0, KernelWork.RotaryForward(n * H, D).Bytes + KernelWork.RotaryForward(n * KV, D).Bytes);
    });

    [Benchmark]
    public void Forward()
    {
        int n = B * T;
        Begin();
        _rotary.Forward(_q, _table, n * H, H, T, _rstdQ, Stream);
        _rotary.Forward(_k, _table, n * KV, KV, T, _rstdK, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(Backward))]
    public void SetupBackward() => Prepare(nameof(Backward), CheckBackward, () =>
    {
        AllocateCommon();
        long n = (long)B * T;
        _grads = Buffers.RandomBf16(n * RowStride, 55, 1, "dq | dk | dv").Pointer;
        _accumulator = Buffers.RandomF32(n * H * D, 56, 1, "dq accumulator").Pointer;
        return new KernelWork(0, KernelWork.RotaryBackward(n * H, D, fromAccumulator: true).Bytes + KernelWork.RotaryBackward(n * KV, D, fromAccumulator: false).Bytes);
    });

    [Benchmark]
    public void Backward()
    {
        int n = B * T;
        Begin();
        _rotary.Backward(_q, _rstdQ, _grads, _table, n * H, H, T, Stream, RowStride, _accumulator);
        _rotary.Backward(_k, _rstdK, _grads + 2UL * (ulong)(H * D), _table, n * KV, KV, T, Stream, RowStride);
        End();
    }

    private KernelCheck CheckForward()
    {
        int rowsQ = CheckBatch * T * H, rowsK = CheckBatch * T * KV;
        var check = new KernelCheck("rotary_qknorm_forward", 501, $"B {CheckBatch}, T {T}, q with {H} heads and k with {KV} of {D}");
        var r = new Random(check.Seed);
        var table = RotaryTable.CosSin(T, D, Shape.RotaryBase);
        var (qBits, q) = HostRandom.Bf16Values(r, (long)rowsQ * D, 2);
        var (kBits, k) = HostRandom.Bf16Values(r, (long)rowsK * D, 2);
        var (qRef, rstdQRef) = CpuOps.RotaryQkNorm(q, table, rowsQ, H, T, D);
        var (kRef, rstdKRef) = CpuOps.RotaryQkNorm(k, table, rowsK, KV, T, D);
        using var s = new DeviceScratch(Device);
        var dTable = s.Upload(RotaryTable.Bf16Pairs(table, T, D), "cos/sin pairs");
        var dQ = s.Upload(qBits, "q");
        var dK = s.Upload(kBits, "k");
        var dRstdQ = s.Poisoned<float>(rowsQ, "rstd q");
        var dRstdK = s.Poisoned<float>(rowsK, "rstd k");
        RunForCheck(() =>
        {
            _rotary.Forward(dQ.Pointer, dTable.Pointer, rowsQ, H, T, dRstdQ.Pointer, Stream);
            _rotary.Forward(dK.Pointer, dTable.Pointer, rowsK, KV, T, dRstdK.Pointer, Stream);
        });
        check.CompareBf16("q", dQ.ToArray(), qRef, 1e-2);
        check.Compare("rstd q", dRstdQ.ToArray(), rstdQRef, 1e-4);
        check.CompareBf16("k", dK.ToArray(), kRef, 1e-2);
        check.Compare("rstd k", dRstdK.ToArray(), rstdKRef, 1e-4);
        return check;
    }

    private KernelCheck CheckBackward()
    {
        int b = CheckBatch, tokens = b * T, rowsQ = tokens * H, rowsK = tokens * KV, qWidth = H * D, kvWidth = KV * D, stride = RowStride;
        var check = new KernelCheck("rotary_qknorm_backward", 502,
            $"B {b}, T {T}, dq from the fp32 accumulator, dk from rows of dq | dk | dv, {H} and {KV} heads of {D}");
        var r = new Random(check.Seed);
        var table = RotaryTable.CosSin(T, D, Shape.RotaryBase);
        var (qBits, q) = HostRandom.Bf16Values(r, (long)rowsQ * D, 2);
        var (kBits, k) = HostRandom.Bf16Values(r, (long)rowsK * D, 2);
        var dyQ = HostRandom.Floats(r, (long)rowsQ * D);
        var (dyKBits, dyK) = HostRandom.Bf16Values(r, (long)rowsK * D);
        var dqRef = CpuOps.RotaryQkNormBackward(q, Values(dyQ), table, rowsQ, H, T, D);
        var dkRef = CpuOps.RotaryQkNormBackward(k, dyK, table, rowsK, KV, T, D);
        // The forward's outputs y and rstd from the reference (the backward reads y = norm(rotate(x)) and rstd).
        var (yQ, rstdQ) = CpuOps.RotaryQkNorm(q, table, rowsQ, H, T, D);
        var (yK, rstdK) = CpuOps.RotaryQkNorm(k, table, rowsK, KV, T, D);
        // dq's gradient in the accumulator's layout [B, H, T, D], column c of query t at c XOR 8·(t mod 8).
        var accumulator = new float[(long)rowsQ * D];
        for (int row = 0; row < rowsQ; row++)
        {
            int t = row / H % T, bb = row / H / T, h = row % H;
            long baseIndex = (((long)bb * H + h) * T + t) * D;
            for (int col = 0; col < D; col++)
                accumulator[baseIndex + (col ^ ((t & 7) << 3))] = dyQ[(long)row * D + col];
        }
        var grads = new ushort[(long)tokens * stride];
        Array.Fill(grads, (ushort)0xFFFF); // dq's part poisoned: written from the accumulator
        for (long i = 0; i < tokens; i++)
            Array.Copy(dyKBits, i * kvWidth, grads, i * stride + qWidth, kvWidth);
        using var s = new DeviceScratch(Device);
        var dTable = s.Upload(RotaryTable.Bf16Pairs(table, T, D), "cos/sin pairs");
        var dYQ = s.Upload(Array.ConvertAll(yQ, v => Bf16.FromFloat((float)v)), "y q");
        var dYK = s.Upload(Array.ConvertAll(yK, v => Bf16.FromFloat((float)v)), "y k");
        var dRstdQ = s.Upload(Array.ConvertAll(rstdQ, v => (float)v), "rstd q");
        var dRstdK = s.Upload(Array.ConvertAll(rstdK, v => (float)v), "rstd k");
        var dAccumulator = s.Upload(accumulator, "dq accumulator");
        var dGrads = s.Upload(grads, "dq | dk | dv");
        RunForCheck(() =>
        {
            _rotary.Backward(dYQ.Pointer, dRstdQ.Pointer, dGrads.Pointer, dTable.Pointer, rowsQ, H, T, Stream, stride, dAccumulator.Pointer);
            _rotary.Backward(dYK.Pointer, dRstdK.Pointer, dGrads.At(qWidth), dTable.Pointer, rowsK, KV, T, Stream, stride);
        });
        var all = Bf16.ToFloat(dGrads.ToArray());
        float[] Rows(int first, int width)
        {
            var result = new float[(long)tokens * width];
            for (long i = 0; i < tokens; i++)
                Array.Copy(all, i * stride + first, result, i * width, width);
            return result;
        }
        check.Compare("dq", Rows(0, qWidth), dqRef, 2e-2);
        check.Compare("dk", Rows(qWidth, kvWidth), dkRef, 2e-2);
        return check;
    }
}

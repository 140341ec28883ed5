using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/value_gate.cu (the ResFormer value embedding's gate, compiled per head size and kv-head count) at N = B·T tokens
/// with uniform token ids over the 8192-token vocabulary, as the model calls it: <see cref="Forward"/> v += 2·sigmoid(x[:, :32]·Wgᵀ)
/// ·VE[ids] per kv head (the gate kept); <see cref="Backward"/> scatters into dVE, sums dWg and adds into dx[:, :32], reading dv
/// from its rows of the dq | dk | dv matrix; <see cref="BackwardGrouped"/> the same in grouped token order (dve's share of a
/// run of equal ids summed, then added once; the order made in set-up). Checked on 4096 tokens of the same shape (accumulated outputs start from random
/// values, and what the kernel added is compared). Memory-bound. Run: <c>bench --filter '*ValueGateBenchmarks*'</c>.
/// </summary>
public class ValueGateBenchmarks : TokenKernelBenchmark
{
    private const int CheckTokens = 4096, Vocab = BenchConfigs.VocabSize, GateWidth = ValueGate.GateWidth;

    private ValueGate _gate = null!;
    private ulong _x, _wg, _ids, _ve, _v, _gateValues, _grads, _dve, _dwg, _dx, _order;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "head64", "gqa2");

    private int N => B * T;

    private int KV => Shape.KvHeads;

    private int D => Shape.HeadDim;

    private int KvDim => Shape.KvDim;

    protected override void Open() => _gate = new ValueGate(KernelFiles, D, KV);

    private void AllocateForward()
    {
        _x = Buffers.RandomBf16((long)N * C, 61, 1, "x (normed)").Pointer;
        _wg = Buffers.RandomBf16((long)KV * GateWidth, 62, 0.5, "W_gate").Pointer;
        _ids = Buffers.RandomIds(N, 63, Vocab, "token ids").Pointer;
        _ve = Buffers.RandomBf16((long)Vocab * KvDim, 64, 1, "value embedding").Pointer;
        _v = Buffers.RandomBf16((long)N * KvDim, 65, 1, "v").Pointer;
        _gateValues = Buffers.RandomF32((long)N * KV, 66, 1, "gate").Pointer;
    }

    [GlobalSetup(Target = nameof(Forward))]
    public void SetupForward() => Prepare(nameof(Forward), CheckForward, () =>
    {
        AllocateForward();
        return KernelWork.ValueGateForward(N, KV, D);
    });

    [Benchmark]
    public void Forward()
    {
        Begin();
        _gate.Forward(_x, _wg, _ids, _ve, N, C, _v, _gateValues, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(Backward))]
    public void SetupBackward() => Prepare(nameof(Backward), () => CheckBackward(grouped: false), () =>
    {
        AllocateBackward();
        return KernelWork.ValueGateBackward(N, KV, D);
    });

    private void AllocateBackward()
    {
        AllocateForward();
        _grads = Buffers.RandomBf16((long)N * Shape.QkvDim, 67, 1, "dq | dk | dv").Pointer;
        _dve = Buffers.RandomF32((long)Vocab * KvDim, 68, 1, "d value embedding").Pointer;
        _dwg = Buffers.RandomF32((long)KV * GateWidth, 69, 1, "d W_gate").Pointer;
        _dx = Buffers.RandomBf16((long)N * C, 70, 1, "dx (bf16)").Pointer;
    }

    [GlobalSetup(Target = nameof(BackwardGrouped))]
    public void SetupBackwardGrouped() => Prepare(nameof(BackwardGrouped), () => CheckBackward(grouped: true), () =>
    {
        AllocateBackward();
        _order = Buffers.Allocate<int>(N, "order").Pointer;
        new Embedding(KernelFiles).GroupTokens(_ids, N, Vocab, _order, Buffers.Allocate<int>(Vocab, "cursor").Pointer, Stream);
        return KernelWork.ValueGateBackwardGrouped(N, KV, D);
    });

    /// <summary><see cref="Backward"/> with the tokens in grouped order.</summary>
    [Benchmark]
    public void BackwardGrouped()
    {
        Begin();
        _gate.Backward(_gateValues, _grads + 2UL * (ulong)(C + KvDim), _ids, _ve, _x, _wg, N, C, _dve, _dwg, _dx, Stream, Shape.QkvDim, _order);
        End();
    }

    /// <summary>dv read from its rows of dq | dk | dv, as the model passes it.</summary>
    [Benchmark]
    public void Backward()
    {
        Begin();
        _gate.Backward(_gateValues, _grads + 2UL * (ulong)(C + KvDim), _ids, _ve, _x, _wg, N, C, _dve, _dwg, _dx, Stream, Shape.QkvDim);
        End();
    }

    private KernelCheck CheckForward()
    {
        int n = CheckTokens, c = C;
        var check = new KernelCheck("value_gate_forward", 601, $"{n} tokens, width {c}, {KV} kv heads of {D}, vocabulary {Vocab}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c);
        var (wgBits, wg) = HostRandom.Bf16Values(r, (long)KV * GateWidth, 0.5);
        var ids = HostRandom.Ids(r, n, Vocab);
        var (veBits, ve) = HostRandom.Bf16Values(r, (long)Vocab * KvDim);
        var (vBits, v) = HostRandom.Bf16Values(r, (long)n * KvDim);
        var (vRef, gateRef) = CpuOps.ValueGate(x, wg, ids, ve, v, n, KV, D, c);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dWg = s.Upload(wgBits, "W_gate");
        var dIds = s.Upload(ids, "ids");
        var dVe = s.Upload(veBits, "value embedding");
        var dV = s.Upload(vBits, "v (updated)");
        var dGate = s.Poisoned<float>((long)n * KV, "gate");
        RunForCheck(() => _gate.Forward(dX.Pointer, dWg.Pointer, dIds.Pointer, dVe.Pointer, n, c, dV.Pointer, dGate.Pointer, Stream));
        check.CompareBf16("v", dV.ToArray(), vRef, 1e-2);
        check.Compare("gate", dGate.ToArray(), gateRef, 1e-4);
        return check;
    }

    private KernelCheck CheckBackward(bool grouped)
    {
        int n = CheckTokens, c = C, stride = Shape.QkvDim, dvOffset = C + KvDim;
        var check = new KernelCheck(grouped ? "value_gate_backward_grouped" : "value_gate_backward", 602, $"{n} tokens, width {c}, {KV} kv heads of {D}, dv as rows of dq | dk | dv");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c);
        var (wgBits, wg) = HostRandom.Bf16Values(r, (long)KV * GateWidth, 0.5);
        var ids = HostRandom.Ids(r, n, Vocab);
        var (veBits, ve) = HostRandom.Bf16Values(r, (long)Vocab * KvDim);
        var (dvBits, dv) = HostRandom.Bf16Values(r, (long)n * KvDim);
        var dveStart = HostRandom.Floats(r, (long)Vocab * KvDim);
        var dwgStart = HostRandom.Floats(r, (long)KV * GateWidth);
        var (dxStartBits, dxStart) = HostRandom.Bf16Values(r, (long)n * c, 0.05);
        var (_, gateRef) = CpuOps.ValueGate(x, wg, ids, ve, new double[(long)n * KvDim], n, KV, D, c);
        var (dveRef, dwgRef, dxRef) = CpuOps.ValueGateBackward(x, wg, ids, ve, dv, n, KV, D, c, Vocab);
        var rows = new ushort[(long)n * stride];
        for (long i = 0; i < n; i++)
            Array.Copy(dvBits, i * KvDim, rows, i * stride + dvOffset, KvDim);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dWg = s.Upload(wgBits, "W_gate");
        var dIds = s.Upload(ids, "ids");
        var dVe = s.Upload(veBits, "value embedding");
        var dGate = s.Upload(Array.ConvertAll(gateRef, g => (float)g), "gate");
        var dRows = s.Upload(rows, "dq | dk | dv");
        var dDve = s.Upload(dveStart, "d value embedding");
        var dDwg = s.Upload(dwgStart, "d W_gate");
        var dDx = s.Upload(dxStartBits, "dx (bf16)");
        ulong order = 0;
        if (grouped)
        {
            order = s.Poisoned<int>(n, "order").Pointer;
            new Embedding(KernelFiles).GroupTokens(dIds.Pointer, n, Vocab, order, s.Allocate<int>(Vocab, "cursor").Pointer, Stream);
        }
        RunForCheck(() => _gate.Backward(dGate.Pointer, dRows.At(dvOffset), dIds.Pointer, dVe.Pointer, dX.Pointer, dWg.Pointer, n, c, dDve.Pointer, dDwg.Pointer,
            dDx.Pointer, Stream, stride, order));
        check.CompareIncrement("d value embedding", dDve.ToArray(), dveStart, dveRef, 1e-4);
        check.CompareIncrement("d W_gate", dDwg.ToArray(), dwgStart, dwgRef, 1e-4);
        var dxExpected = new double[dxRef.Length];
        for (long i = 0; i < dxExpected.Length; i++)
            dxExpected[i] = dxStart[i] + dxRef[i];
        check.CompareBf16("dx", dDx.ToArray(), dxExpected, 1e-2);
        return check;
    }
}

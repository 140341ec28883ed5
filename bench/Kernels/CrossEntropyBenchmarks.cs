using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/cross_entropy.cu on one chunk of the head's logits as the model runs it (8192 rows × the 8192-token vocabulary,
/// bf16): softcap_cross_entropy (the baseline's cap 15) or plain_cross_entropy (nocap), in training (<see cref="Train"/>:
/// losses and the bf16 gradient) and in evaluation (<see cref="Evaluate"/>: losses only); and sum_f32 over a batch's B·T
/// losses (<see cref="LossSum"/>). Checked on 64 rows (every fifth target ignored) against the fp64 reference. Memory-bound.
/// Run: <c>bench --filter '*CrossEntropyBenchmarks*'</c>.
/// </summary>
public class CrossEntropyBenchmarks : TokenKernelBenchmark
{
    private const int CheckRows = 64, Vocab = BenchConfigs.VocabSize;

    private CrossEntropy _crossEntropy = null!;
    private ulong _logits, _targets, _losses, _dlogits, _total;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "nocap");

    /// <summary>Rows of one chunk of the head (GpuGpt's default).</summary>
    private int Rows => Math.Min(GpuGpt.DefaultHeadChunkRows, B * T);

    private float Cap => (float)Shape.SoftCap;

    private string Kernel => Cap == 0 ? "plain_cross_entropy" : "softcap_cross_entropy";

    protected override void Open() => _crossEntropy = new CrossEntropy(KernelFiles);

    private void AllocateChunk()
    {
        _logits = Buffers.RandomBf16((long)Rows * Vocab, 81, 25, "logits").Pointer;
        _targets = Buffers.RandomIds(Rows, 82, Vocab, "targets").Pointer;
        _losses = Buffers.Allocate<float>(Rows, "losses").Pointer;
    }

    [GlobalSetup(Target = nameof(Train))]
    public void SetupTrain() => Prepare(nameof(Train), () => CheckLoss(gradient: true), () =>
    {
        AllocateChunk();
        _dlogits = Buffers.Allocate<ushort>((long)Rows * Vocab, "dlogits").Pointer;
        return KernelWork.CrossEntropy(Rows, Vocab, gradient: true);
    });

    [Benchmark]
    public void Train()
    {
        Begin();
        _crossEntropy.Forward(_logits, _targets, Rows, Vocab, 1f / (B * T), _losses, _dlogits, Stream, Cap);
        End();
    }

    [GlobalSetup(Target = nameof(Evaluate))]
    public void SetupEvaluate() => Prepare(nameof(Evaluate), () => CheckLoss(gradient: false), () =>
    {
        AllocateChunk();
        return KernelWork.CrossEntropy(Rows, Vocab, gradient: false);
    });

    [Benchmark]
    public void Evaluate()
    {
        Begin();
        _crossEntropy.Forward(_logits, _targets, Rows, Vocab, 0f, _losses, 0, Stream, Cap);
        End();
    }

    [GlobalSetup(Target = nameof(LossSum))]
    public void SetupLossSum() => Prepare(nameof(LossSum), CheckSum, () =>
    {
        _losses = Buffers.RandomF32((long)B * T, 83, 1, "losses").Pointer;
        _total = Buffers.Allocate<float>(1, "loss sum").Pointer;
        return KernelWork.Sum((long)B * T);
    });

    /// <summary>sum_f32 over the micro-batch's losses.</summary>
    [Benchmark]
    public void LossSum()
    {
        Begin();
        _crossEntropy.Sum(_losses, (long)B * T, _total, Stream);
        End();
    }

    private KernelCheck CheckLoss(bool gradient)
    {
        int rows = CheckRows;
        var check = new KernelCheck(Kernel + (gradient ? "" : " (losses only)"), 801, $"{rows} rows of {Vocab} logits in ±25, cap {Cap}, every fifth target ignored");
        var r = new Random(check.Seed);
        var (logitBits, logits) = HostRandom.Bf16Values(r, (long)rows * Vocab, 25);
        var targets = Enumerable.Range(0, rows).Select(i => i % 5 == 3 ? -1 : r.Next(Vocab)).ToArray();
        double scale = 1.0 / (targets.Count(t => t >= 0) * 2);
        var lossRef = CpuOps.SoftcapCrossEntropy(logits, targets, rows, Vocab, Cap);
        using var s = new DeviceScratch(Device);
        var dLogits = s.Upload(logitBits, "logits");
        var dTargets = s.Upload(targets, "targets");
        var dLosses = s.Poisoned<float>(rows, "losses");
        var dGrad = s.Poisoned<ushort>((long)rows * Vocab, "dlogits");
        RunForCheck(() => _crossEntropy.Forward(dLogits.Pointer, dTargets.Pointer, rows, Vocab, gradient ? (float)scale : 0f, dLosses.Pointer,
            gradient ? dGrad.Pointer : 0, Stream, Cap));
        check.Compare("losses", dLosses.ToArray(), lossRef, 1e-5);
        if (gradient)
            check.CompareBf16("dlogits", dGrad.ToArray(), CpuOps.SoftcapCrossEntropyBackward(logits, targets, rows, Vocab, Cap, scale), 1e-2);
        return check;
    }

    private KernelCheck CheckSum()
    {
        const int count = 100_003;
        var check = new KernelCheck("sum_f32", 802, $"{count} values in [0, 1)");
        var r = new Random(check.Seed);
        var values = HostRandom.Floats(r, count, 0, 1);
        float[] start = [HostRandom.Floats(r, 1)[0] * 100];
        using var s = new DeviceScratch(Device);
        var dValues = s.Upload(values, "values");
        var dTotal = s.Upload(start, "total");
        RunForCheck(() => _crossEntropy.Sum(dValues.Pointer, count, dTotal.Pointer, Stream));
        check.CompareIncrement("total", dTotal.ToArray(), start, [values.Sum(v => (double)v)], 1e-4);
        return check;
    }
}

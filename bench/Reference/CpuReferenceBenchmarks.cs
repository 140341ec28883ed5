using AutoResearch.Model.Cpu;
using AutoResearch.Optim.Reference;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Reference;

/// <summary>
/// The fp64 CPU reference at the baseline's shapes: what `parity --device cpu` (and its `--train-steps`) and the CPU tests
/// spend their time in. One token row of T = 2048 at width 512: the lm_head product and its two gradients (8192 outputs), the
/// MLP's fc product (2048 outputs), the attention of one head over the whole context with the flash kernels' roundings,
/// forward and backward, and one Polar Express orthogonalisation of a 2048 × 512 matrix. Multiply-adds per operation are in
/// the summaries of the results file. Run: <c>bench --filter '*CpuReferenceBenchmarks*'</c>.
/// </summary>
[Config(typeof(ShortCpuConfig))]
public class CpuReferenceBenchmarks
{
    public const int Tokens = 2048, Width = 512, Vocab = 8192, Hidden = 2048, HeadDim = 128;

    private double[] _x = [], _head = [], _fc = [], _dHead = [], _dHeadWeight = [];
    private double[] _q = [], _k = [], _v = [], _o = [], _lse = [], _dout = [], _matrix = [];

    private static double[] Random(Random r, long count)
    {
        var values = new double[count];
        for (long i = 0; i < count; i++)
            values[i] = r.NextDouble() * 2 - 1;
        return values;
    }

    [GlobalSetup]
    public void Setup()
    {
        var r = new Random(5);
        _x = Random(r, (long)Tokens * Width);
        _head = Random(r, (long)Vocab * Width);
        _fc = Random(r, (long)Hidden * Width);
        _dHead = Random(r, (long)Tokens * Vocab);
        _dHeadWeight = new double[(long)Vocab * Width];
        _q = Random(r, (long)Tokens * HeadDim);
        _k = Random(r, (long)Tokens * HeadDim);
        _v = Random(r, (long)Tokens * HeadDim);
        _dout = Random(r, (long)Tokens * HeadDim);
        (_o, _lse) = CpuOps.AttentionLikeFlash(_q, _k, _v, 1, Tokens, 1, 1, HeadDim, Tokens);
        var m = Random(r, (long)Hidden * Width);
        double norm = Math.Sqrt(m.Sum(v => v * v));
        _matrix = m.Select(v => v / norm).ToArray();
    }

    /// <summary>2048 × 512 · (8192 × 512)ᵀ: 8.6 G multiply-adds.</summary>
    [Benchmark]
    public double[] LmHead() => CpuOps.Linear(_x, _head, Tokens, Width, Vocab);

    /// <summary>dx = dy · W for the lm_head: 8.6 G multiply-adds.</summary>
    [Benchmark]
    public double[] LmHeadInputGradient() => CpuOps.LinearBackwardInput(_dHead, _head, Tokens, Width, Vocab);

    /// <summary>dW += dyᵀ · x for the lm_head: 8.6 G multiply-adds.</summary>
    [Benchmark]
    public void LmHeadWeightGradient() => CpuOps.LinearBackwardWeight(_dHead, _x, Tokens, Width, Vocab, _dHeadWeight);

    /// <summary>2048 × 512 · (2048 × 512)ᵀ: 2.1 G multiply-adds.</summary>
    [Benchmark]
    public double[] MlpFc() => CpuOps.Linear(_x, _fc, Tokens, Width, Hidden);

    /// <summary>One head, T 2048, causal, whole context: 0.54 G multiply-adds (scores and P·V over 2.1 M visible pairs).</summary>
    [Benchmark]
    public double[] AttentionForward() => CpuOps.AttentionLikeFlash(_q, _k, _v, 1, Tokens, 1, 1, HeadDim, Tokens).O;

    /// <summary>Its backward: 1.1 G multiply-adds (scores, dP, dV, dQ, dK).</summary>
    [Benchmark]
    public double[] AttentionBackward() => CpuOps.AttentionBackwardLikeFlash(_q, _k, _v, _o, _lse, _dout, 1, Tokens, 1, 1, HeadDim, Tokens).Dq;

    /// <summary>Five Polar Express iterations on 2048 × 512 (bf16 rounding as the GPU): about 4.4 G multiply-adds.</summary>
    [Benchmark]
    public double[] Orthogonalise() => MuonAdamWReference.Orthogonalise(_matrix, Hidden, Width, roundLikeGpu: true);
}

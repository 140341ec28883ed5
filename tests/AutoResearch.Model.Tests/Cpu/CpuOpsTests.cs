using AutoResearch.Model.Cpu;
using Xunit;

namespace AutoResearch.Model.Tests.Cpu;

/// <summary>The fp64 ops' backward passes against central finite differences of their forward passes.</summary>
public class CpuOpsTests
{
    private const double Step = 1e-5;

    private static double[] Random(Random r, int count, double scale = 1) => Enumerable.Range(0, count).Select(_ => (r.NextDouble() * 2 - 1) * scale).ToArray();

    private static double RelativeL2(double[] actual, double[] expected)
        => Math.Sqrt(actual.Select((a, i) => (a - expected[i]) * (a - expected[i])).Sum() / expected.Sum(e => e * e));

    private static double Dot(double[] a, double[] b) => a.Select((v, i) => v * b[i]).Sum();

    /// <summary>Checks d(Σ w·f(x))/dx[i] against the analytic gradient at a sample of indices.</summary>
    private static void CheckGradient(string what, double[] x, Func<double[], double> loss, double[] analytic, int seed, int samples = 24)
    {
        var r = new Random(seed);
        // A central difference of a sum of magnitude |L| carries a rounding error of about 1e-16·|L|/Step: the absolute floor
        // below which gradients are too small to resolve grows with |L|.
        double floor = 1e-4 * Math.Max(1, Math.Abs(loss(x)));
        for (int s = 0; s < samples; s++)
        {
            int i = r.Next(x.Length);
            double keep = x[i];
            x[i] = keep + Step;
            double up = loss(x);
            x[i] = keep - Step;
            double down = loss(x);
            x[i] = keep;
            double numeric = (up - down) / (2 * Step);
            double error = Math.Abs(numeric - analytic[i]) / Math.Max(floor, Math.Abs(numeric) + Math.Abs(analytic[i]));
            Assert.True(error < 1e-5, $"{what}[{i}]: analytic {analytic[i]:E6} vs numeric {numeric:E6} (seed {seed})");
        }
    }

    [Fact]
    public void RmsNorm_backward_matches_finite_differences()
    {
        const int seed = 101, n = 5, c = 24;
        var r = new Random(seed);
        var x = Random(r, n * c, 2);
        var w = Random(r, n * c);
        CheckGradient("rmsnorm dx", x, v => Dot(w, CpuOps.RmsNorm(v, n, c).Y), CpuOps.RmsNormBackward(x, w, n, c), seed);
    }

    [Theory]
    [InlineData(128, 2, 10000.0)]
    [InlineData(64, 3, 10000.0)]
    [InlineData(64, 2, 500000.0)]
    public void Rotary_qknorm_backward_matches_finite_differences(int headDim, int heads, double rotaryBase)
    {
        const int seqLen = 5;
        int seed = 102 + headDim + heads, rows = 2 * seqLen * heads;
        var r = new Random(seed);
        var cosSin = RotaryTable.CosSin(seqLen, headDim, rotaryBase);
        var x = Random(r, rows * headDim);
        var w = Random(r, rows * headDim);
        CheckGradient("rotary dx", x, v => Dot(w, CpuOps.RotaryQkNorm(v, cosSin, rows, heads, seqLen, headDim).Y),
            CpuOps.RotaryQkNormBackward(x, w, cosSin, rows, heads, seqLen, headDim), seed);
    }

    [Theory]
    [InlineData(128, 2)]
    [InlineData(64, 3)]
    public void Rotary_qknorm_backward_from_the_output_is_the_backward_and_follows_a_rounded_output(int headDim, int heads)
    {
        const int seqLen = 5;
        int seed = 131 + headDim + heads, rows = 2 * seqLen * heads;
        var r = new Random(seed);
        var cosSin = RotaryTable.CosSin(seqLen, headDim, 10000.0);
        var x = Random(r, rows * headDim);
        var dy = Random(r, rows * headDim);
        var (y, rstd) = CpuOps.RotaryQkNorm(x, cosSin, rows, heads, seqLen, headDim);
        var exact = CpuOps.RotaryQkNormBackward(x, dy, cosSin, rows, heads, seqLen, headDim);

        // From the exact output it is the backward (checked against finite differences above).
        var fromOutput = CpuOps.RotaryQkNormBackwardFromOutput(y, rstd, dy, cosSin, rows, heads, seqLen, headDim);
        for (int i = 0; i < exact.Length; i++)
            Assert.Equal(exact[i], fromOutput[i], 1e-12 * (1 + Math.Abs(exact[i])));
        // From the output rounded to bf16, as the GPU stores it: close to the backward, not equal to it.
        var rounded = y.Select(v => (double)AutoResearch.Native.Bf16.Round((float)v)).ToArray();
        var fromRounded = CpuOps.RotaryQkNormBackwardFromOutput(rounded, rstd, dy, cosSin, rows, heads, seqLen, headDim);
        double difference = 0, norm = 0;
        for (int i = 0; i < exact.Length; i++)
        {
            difference += (fromRounded[i] - exact[i]) * (fromRounded[i] - exact[i]);
            norm += exact[i] * exact[i];
        }
        Assert.InRange(Math.Sqrt(difference / norm), 1e-6, 1e-2);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(128)]
    public void Rotary_rotates_by_the_table_values_and_its_transpose_is_the_adjoint(int headDim)
    {
        const int seed = 103, seqLen = 6, heads = 2, rows = seqLen * heads;
        int half = headDim / 2;
        var cosSin = RotaryTable.CosSin(seqLen, headDim, 10000);
        // A unit vector in the first half of row r (position t = r / heads) comes out as (cos θ_j, −sin θ_j) from the table.
        var unit = new double[rows * headDim];
        int row = 9, j = 5, t = row / heads;
        unit[row * headDim + j] = 1;
        var rotated = CpuOps.Rotate(unit, cosSin, rows, heads, seqLen, headDim);
        Assert.Equal(cosSin[t * headDim + j], rotated[row * headDim + j]);
        Assert.Equal(-cosSin[t * headDim + half + j], rotated[row * headDim + half + j]);
        Assert.Equal(2, rotated.Count(v => v != 0)); // only that pair

        var r = new Random(seed);
        var x = Random(r, rows * headDim);
        var y = Random(r, rows * headDim);
        // ⟨R x, y⟩ = ⟨x, Rᵀ y⟩ (the backward's transpose), and position 0 (cos 1, sin 0) is the identity.
        Assert.Equal(Dot(CpuOps.Rotate(x, cosSin, rows, heads, seqLen, headDim), y), Dot(x, CpuOps.Rotate(y, cosSin, rows, heads, seqLen, headDim, transpose: true)), 10);
        var first = CpuOps.Rotate(x, cosSin, rows, heads, seqLen, headDim);
        for (int i = 0; i < heads * headDim; i++)
            Assert.Equal(x[i], first[i], 15);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(128)]
    public void Rotary_bf16_pairs_hold_each_columns_cos_low_and_sin_high_exactly(int headDim)
    {
        const int seqLen = 300;
        int half = headDim / 2;
        var cosSin = RotaryTable.CosSin(seqLen, headDim, 10000);
        var pairs = RotaryTable.Bf16Pairs(cosSin, seqLen, headDim);
        Assert.Equal(seqLen * half, pairs.Length);
        for (int t = 0; t < seqLen; t++)
        {
            for (int j = 0; j < half; j++)
            {
                uint pair = pairs[t * half + j];
                Assert.Equal(cosSin[t * headDim + j], AutoResearch.Native.Bf16.ToFloat((ushort)(pair & 0xFFFF)));
                Assert.Equal(cosSin[t * headDim + half + j], AutoResearch.Native.Bf16.ToFloat((ushort)(pair >> 16)));
            }
        }
        // Position 0 is cos 1, sin 0 (bf16 0x3F80, 0x0000) in every column; a later one is not.
        Assert.All(pairs.Take(half), pair => Assert.Equal(0x00003F80u, pair));
        Assert.NotEqual(0x00003F80u, pairs[17 * half + 3]);
        Assert.Throws<ArgumentException>(() => RotaryTable.Bf16Pairs(cosSin, seqLen - 1, headDim));
    }

    [Fact]
    public void Rotary_refuses_a_table_shorter_than_T()
    {
        var cosSin = RotaryTable.CosSin(4, 64, 10000);
        var e = Assert.Throws<ArgumentException>(() => CpuOps.Rotate(new double[8 * 64], cosSin, 8, 1, 8, 64));
        Assert.Contains("T 8 × D 64", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(2, 128)]
    [InlineData(2, 64)]
    [InlineData(1, 64)]
    public void Value_gate_backward_matches_finite_differences(int kvHeads, int headDim)
    {
        const int n = 3, c = 40, vocab = 5;
        int seed = 104 + kvHeads + headDim;
        var r = new Random(seed);
        var x = Random(r, n * c);
        var wg = Random(r, kvHeads * 32);
        var ids = new[] { 1, 3, 1 };
        var ve = Random(r, vocab * kvHeads * headDim);
        var v = Random(r, n * kvHeads * headDim);
        var dv = Random(r, n * kvHeads * headDim);
        var (dve, dwg, dx) = CpuOps.ValueGateBackward(x, wg, ids, ve, dv, n, kvHeads, headDim, c, vocab);
        CheckGradient("gate dx", x, p => Dot(dv, CpuOps.ValueGate(p, wg, ids, ve, v, n, kvHeads, headDim, c).V), dx, seed);
        CheckGradient("gate dwg", wg, p => Dot(dv, CpuOps.ValueGate(x, p, ids, ve, v, n, kvHeads, headDim, c).V), dwg, seed);
        CheckGradient("gate dve", ve, p => Dot(dv, CpuOps.ValueGate(x, wg, ids, p, v, n, kvHeads, headDim, c).V), dve, seed);
    }

    [Fact]
    public void Value_gate_scales_each_kv_head_by_its_own_gate()
    {
        const int n = 2, kvHeads = 2, headDim = 64, c = 32, vocab = 3, seed = 109;
        var r = new Random(seed);
        var x = Random(r, n * c);
        var wg = Random(r, kvHeads * 32);
        var ids = new[] { 2, 0 };
        var ve = Random(r, vocab * kvHeads * headDim);
        var v = Random(r, n * kvHeads * headDim);
        var (outV, gate) = CpuOps.ValueGate(x, wg, ids, ve, v, n, kvHeads, headDim, c);
        for (int i = 0; i < n; i++)
        {
            for (int h = 0; h < kvHeads; h++)
            {
                double z = Dot(x.AsSpan(i * c, 32).ToArray(), wg.AsSpan(h * 32, 32).ToArray());
                Assert.Equal(2 / (1 + Math.Exp(-z)), gate[i * kvHeads + h], 14);
                int at = (i * kvHeads + h) * headDim + 17;
                Assert.Equal(v[at] + gate[i * kvHeads + h] * ve[(ids[i] * kvHeads + h) * headDim + 17], outV[at], 14);
            }
        }
    }

    [Fact]
    public void Relu_square_backward_matches_finite_differences()
    {
        const int seed = 105;
        var r = new Random(seed);
        var u = Random(r, 64);
        var w = Random(r, 64);
        CheckGradient("relu² du", u, p => Dot(w, CpuOps.ReluSquare(p)), CpuOps.ReluSquareBackward(u, w), seed);
    }

    [Fact]
    public void Gelu_backward_matches_finite_differences()
    {
        const int seed = 110;
        var r = new Random(seed);
        var u = Random(r, 64, 4);
        var w = Random(r, 64);
        CheckGradient("gelu du", u, p => Dot(w, CpuOps.Gelu(p)), CpuOps.GeluBackward(u, w), seed);
    }

    [Fact]
    public void Gelu_is_the_tanh_form()
    {
        // 0.5·u·(1 + tanh(√(2/π)·(u + 0.044715·u³))) at a few points (fp64 evaluations of the formula).
        var s = CpuOps.Gelu([1.0, -1.0, 2.5, 0.0]);
        Assert.Equal(0.8411919906082768, s[0], 12);
        Assert.Equal(-0.15880800939172324, s[1], 12);
        Assert.Equal(2.484915733910001, s[2], 12);
        Assert.Equal(0, s[3]);
    }

    [Fact]
    public void SwiGlu_backward_matches_finite_differences()
    {
        const int seed = 111, n = 3, hidden = 10;
        var r = new Random(seed);
        var u = Random(r, n * 2 * hidden, 3);
        var w = Random(r, n * hidden);
        CheckGradient("swiglu du", u, p => Dot(w, CpuOps.SwiGlu(p, n, hidden)), CpuOps.SwiGluBackward(u, w, n, hidden), seed, 40);
    }

    [Fact]
    public void SwiGlu_gates_with_the_first_half_of_each_row()
    {
        const int n = 2, hidden = 3;
        // Row 1: gate (0.5, −2, 0), up (3, 1, 7).
        double[] u = [1, 1, 1, 1, 1, 1, 0.5, -2, 0, 3, 1, 7];
        var s = CpuOps.SwiGlu(u, n, hidden);
        static double Silu(double x) => x / (1 + Math.Exp(-x));
        double[] expected = [Silu(1), Silu(1), Silu(1), Silu(0.5) * 3, Silu(-2) * 1, 0];
        for (int i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i], s[i], 14);
        Assert.Equal(s, CpuOps.Activate(Activation.SwiGlu, u, n, hidden));
    }

    [Theory]
    [InlineData(15.0)]
    [InlineData(0.0)]
    public void Softcap_cross_entropy_backward_matches_finite_differences_and_ignores_minus_one(double cap)
    {
        int seed = 106 + (int)cap, rows = 4, vocab = 11;
        var r = new Random(seed);
        var logits = Random(r, rows * vocab, 30); // beyond the cap, so the tanh matters
        var targets = new[] { 3, -1, 0, 10 };
        var grad = CpuOps.SoftcapCrossEntropyBackward(logits, targets, rows, vocab, cap, 0.5);
        CheckGradient("ce dlogits", logits, p => 0.5 * CpuOps.SoftcapCrossEntropy(p, targets, rows, vocab, cap).Sum(), grad, seed, 40);
        Assert.All(grad.Skip(vocab).Take(vocab), g => Assert.Equal(0, g));
        Assert.Equal(0, CpuOps.SoftcapCrossEntropy(logits, targets, rows, vocab, cap)[1]);
    }

    [Fact]
    public void Softcap_zero_is_plain_cross_entropy_and_a_cap_changes_large_logits()
    {
        const int seed = 112, vocab = 7;
        var r = new Random(seed);
        var logits = Random(r, vocab, 40);
        double max = logits.Max(), lse = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        Assert.Equal(lse - logits[2], CpuOps.SoftcapCrossEntropy(logits, [2], 1, vocab, 0)[0], 12);
        Assert.NotEqual(lse - logits[2], CpuOps.SoftcapCrossEntropy(logits, [2], 1, vocab, 15)[0], 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuOps.SoftcapCrossEntropy(logits, [2], 1, vocab, -1));
    }

    [Fact]
    public void Softcap_cross_entropy_of_uniform_logits_is_log_vocab()
    {
        var losses = CpuOps.SoftcapCrossEntropy(new double[3 * 8], [0, 5, 7], 3, 8, 15);
        Assert.All(losses, l => Assert.Equal(Math.Log(8), l, 12));
    }

    [Theory]
    [InlineData(2, 2, 128, 3)]   // the baseline's heads, window smaller than T
    [InlineData(4, 2, 64, 3)]    // grouped-query: two query heads per kv head, head size 64
    [InlineData(4, 1, 64, 7)]    // one kv head for all, whole context
    [InlineData(3, 3, 64, 0)]    // window 0: each query sees only itself
    public void Attention_backward_matches_finite_differences(int heads, int kvHeads, int headDim, int window)
    {
        const int batch = 2, seqLen = 7;
        int seed = 107 + heads * 10 + kvHeads + headDim + window;
        var r = new Random(seed);
        var q = Random(r, batch * seqLen * heads * headDim, 0.3);
        var k = Random(r, batch * seqLen * kvHeads * headDim, 0.3);
        var v = Random(r, batch * seqLen * kvHeads * headDim);
        var w = Random(r, batch * seqLen * heads * headDim);
        var (dq, dk, dv) = CpuOps.AttentionBackward(q, k, v, w, batch, seqLen, heads, kvHeads, headDim, window);
        CheckGradient("attention dq", q, p => Dot(w, CpuOps.Attention(p, k, v, batch, seqLen, heads, kvHeads, headDim, window).O), dq, seed);
        CheckGradient("attention dk", k, p => Dot(w, CpuOps.Attention(q, p, v, batch, seqLen, heads, kvHeads, headDim, window).O), dk, seed);
        CheckGradient("attention dv", v, p => Dot(w, CpuOps.Attention(q, k, p, batch, seqLen, heads, kvHeads, headDim, window).O), dv, seed);
    }

    /// <summary>
    /// The flash kernels' emulation: without its roundings it is the exact attention (so the tiles of 128 keys, the running
    /// maximum in base 2 and D = Σ o·dO are the same function); with them, P and dS on the bf16 grid move the results by
    /// bf16-sized amounts and leave lse (which takes P unrounded) as it was. T 300 with window 200 spans three tiles, so the
    /// running maximum moves within a row.
    /// </summary>
    [Theory]
    [InlineData(2, 2, 64, 200)]
    [InlineData(4, 2, 64, 300)]
    public void Flash_emulation_is_the_attention_without_its_roundings_and_bf16_close_with_them(int heads, int kvHeads, int headDim, int window)
    {
        const int batch = 1, seqLen = 300;
        var r = new Random(131 + heads + window);
        var q = Random(r, batch * seqLen * heads * headDim, 1.5);
        var k = Random(r, batch * seqLen * kvHeads * headDim, 1.5);
        var v = Random(r, batch * seqLen * kvHeads * headDim);
        var dout = Random(r, batch * seqLen * heads * headDim);
        var (o, lse) = CpuOps.Attention(q, k, v, batch, seqLen, heads, kvHeads, headDim, window);
        var (dq, dk, dv) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, kvHeads, headDim, window);

        var (oTiled, lseTiled) = CpuOps.AttentionLikeFlash(q, k, v, batch, seqLen, heads, kvHeads, headDim, window, round: false);
        Assert.True(RelativeL2(oTiled, o) < 1e-12, "tiled forward");
        Assert.True(RelativeL2(lseTiled, lse) < 1e-12, "tiled lse");
        var (dqTiled, dkTiled, dvTiled) = CpuOps.AttentionBackwardLikeFlash(q, k, v, o, lse, dout, batch, seqLen, heads, kvHeads, headDim, window, round: false);
        Assert.True(RelativeL2(dqTiled, dq) < 1e-10, "dq from D = Σ o·dO");
        Assert.True(RelativeL2(dkTiled, dk) < 1e-10, "dk");
        Assert.True(RelativeL2(dvTiled, dv) < 1e-10, "dv");

        var (oRounded, lseRounded) = CpuOps.AttentionLikeFlash(q, k, v, batch, seqLen, heads, kvHeads, headDim, window);
        Assert.True(RelativeL2(lseRounded, lse) < 1e-12, "lse sums P unrounded");
        Assert.InRange(RelativeL2(oRounded, o), 1e-5, 4e-3);
        var (dqRounded, dkRounded, dvRounded) = CpuOps.AttentionBackwardLikeFlash(q, k, v, o, lse, dout, batch, seqLen, heads, kvHeads, headDim, window);
        foreach (var (name, rounded, exact) in new[] { ("dq", dqRounded, dq), ("dk", dkRounded, dk), ("dv", dvRounded, dv) })
            Assert.InRange(RelativeL2(rounded, exact), 1e-5, 2e-2);
    }

    [Fact]
    public void Grouped_query_attention_equals_full_attention_over_repeated_kv_heads()
    {
        const int seed = 113, batch = 2, seqLen = 5, heads = 6, kvHeads = 2, headDim = 64, window = 2, group = heads / kvHeads;
        var r = new Random(seed);
        var q = Random(r, batch * seqLen * heads * headDim);
        var k = Random(r, batch * seqLen * kvHeads * headDim);
        var v = Random(r, batch * seqLen * kvHeads * headDim);
        var dout = Random(r, batch * seqLen * heads * headDim);
        // Query head h reads kv head h / group: repeat each kv head group times.
        double[] Repeat(double[] kv)
        {
            var full = new double[batch * seqLen * heads * headDim];
            for (int bt = 0; bt < batch * seqLen; bt++)
            {
                for (int h = 0; h < heads; h++)
                    Array.Copy(kv, (bt * kvHeads + h / group) * headDim, full, (bt * heads + h) * headDim, headDim);
            }
            return full;
        }
        var (o, lse) = CpuOps.Attention(q, k, v, batch, seqLen, heads, kvHeads, headDim, window);
        var (oFull, lseFull) = CpuOps.Attention(q, Repeat(k), Repeat(v), batch, seqLen, heads, heads, headDim, window);
        Assert.Equal(oFull, o);
        Assert.Equal(lseFull, lse);

        // dk, dv of a kv head are the sums over its group's query heads.
        var (dq, dk, _) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, kvHeads, headDim, window);
        var (dqFull, dkFull, _) = CpuOps.AttentionBackward(q, Repeat(k), Repeat(v), dout, batch, seqLen, heads, heads, headDim, window);
        for (int i = 0; i < dq.Length; i++)
            Assert.Equal(dqFull[i], dq[i], 12);
        for (int bt = 0; bt < batch * seqLen; bt++)
        {
            for (int d = 0; d < headDim; d += 7)
            {
                double sum = Enumerable.Range(0, group).Sum(g => dkFull[(bt * heads + group + g) * headDim + d]); // kv head 1
                Assert.Equal(sum, dk[(bt * kvHeads + 1) * headDim + d], 12);
            }
        }
    }

    [Fact]
    public void Attention_refuses_kv_heads_that_do_not_divide_the_heads()
    {
        var e = Assert.Throws<ArgumentException>(() => CpuOps.Attention(new double[4 * 64], new double[3 * 64], new double[3 * 64], 1, 1, 4, 3, 64, 1));
        Assert.Contains("4 query heads and 3 kv heads", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Attention_first_query_copies_its_own_value_and_window_zero_is_the_diagonal()
    {
        var r = new Random(108);
        int count = 4 * 64;
        var q = Random(r, count);
        var k = Random(r, count);
        var v = Random(r, count);
        var (o, _) = CpuOps.Attention(q, k, v, 1, 4, 1, 1, 64, 0);
        for (int i = 0; i < count; i++)
            Assert.Equal(v[i], o[i], 12);
    }
}

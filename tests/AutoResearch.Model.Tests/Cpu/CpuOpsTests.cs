using AutoResearch.Model.Cpu;
using Xunit;

namespace AutoResearch.Model.Tests.Cpu;

/// <summary>The fp64 ops' backward passes against central finite differences of their forward passes.</summary>
public class CpuOpsTests
{
    private const double Step = 1e-6;

    private static double[] Random(Random r, int count, double scale = 1) => Enumerable.Range(0, count).Select(_ => (r.NextDouble() * 2 - 1) * scale).ToArray();

    private static double Dot(double[] a, double[] b) => a.Select((v, i) => v * b[i]).Sum();

    /// <summary>Checks d(Σ w·f(x))/dx[i] against the analytic gradient at a sample of indices.</summary>
    private static void CheckGradient(string what, double[] x, Func<double[], double> loss, double[] analytic, int seed, int samples = 24)
    {
        var r = new Random(seed);
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
            // Relative error, with an absolute floor for gradients too small for a finite difference to resolve (~1e-9).
            double error = Math.Abs(numeric - analytic[i]) / Math.Max(1e-4, Math.Abs(numeric) + Math.Abs(analytic[i]));
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

    [Fact]
    public void Rotary_qknorm_backward_matches_finite_differences()
    {
        const int seed = 102, seqLen = 3, heads = 2, rows = 2 * seqLen * heads;
        var r = new Random(seed);
        var x = Random(r, rows * 128);
        var w = Random(r, rows * 128);
        CheckGradient("rotary dx", x, v => Dot(w, CpuOps.RotaryQkNorm(v, rows, heads, seqLen).Y),
            CpuOps.RotaryQkNormBackward(x, w, rows, heads, seqLen), seed);
    }

    [Fact]
    public void Rotary_rotation_is_orthogonal_and_position_zero_is_identity()
    {
        var r = new Random(103);
        var x = Random(r, 4 * 128);
        var back = CpuOps.Rotate(CpuOps.Rotate(x, 4, 1, 4), 4, 1, 4, inverse: true);
        for (int i = 0; i < x.Length; i++)
            Assert.Equal(x[i], back[i], 12);
        var first = CpuOps.Rotate(x, 4, 1, 4);
        for (int i = 0; i < 128; i++)
            Assert.Equal(x[i], first[i], 15);
    }

    [Fact]
    public void Value_gate_backward_matches_finite_differences()
    {
        const int seed = 104, n = 3, heads = 2, c = 40, vocab = 5;
        var r = new Random(seed);
        var x = Random(r, n * c);
        var wg = Random(r, heads * 32);
        var ids = new[] { 1, 3, 1 };
        var ve = Random(r, vocab * heads * 128);
        var v = Random(r, n * heads * 128);
        var dv = Random(r, n * heads * 128);
        var (dve, dwg, dx) = CpuOps.ValueGateBackward(x, wg, ids, ve, dv, n, heads, c, vocab);
        CheckGradient("gate dx", x, p => Dot(dv, CpuOps.ValueGate(p, wg, ids, ve, v, n, heads, c).V), dx, seed);
        CheckGradient("gate dwg", wg, p => Dot(dv, CpuOps.ValueGate(x, p, ids, ve, v, n, heads, c).V), dwg, seed);
        CheckGradient("gate dve", ve, p => Dot(dv, CpuOps.ValueGate(x, wg, ids, p, v, n, heads, c).V), dve, seed);
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
    public void Softcap_cross_entropy_backward_matches_finite_differences_and_ignores_minus_one()
    {
        const int seed = 106, rows = 4, vocab = 11;
        var r = new Random(seed);
        var logits = Random(r, rows * vocab, 30); // beyond the cap, so the tanh matters
        var targets = new[] { 3, -1, 0, 10 };
        var grad = CpuOps.SoftcapCrossEntropyBackward(logits, targets, rows, vocab, 15, 0.5);
        CheckGradient("ce dlogits", logits, p => 0.5 * CpuOps.SoftcapCrossEntropy(p, targets, rows, vocab, 15).Sum(), grad, seed, 40);
        Assert.All(grad.Skip(vocab).Take(vocab), g => Assert.Equal(0, g));
        Assert.Equal(0, CpuOps.SoftcapCrossEntropy(logits, targets, rows, vocab, 15)[1]);
    }

    [Fact]
    public void Softcap_cross_entropy_of_uniform_logits_is_log_vocab()
    {
        var losses = CpuOps.SoftcapCrossEntropy(new double[3 * 8], [0, 5, 7], 3, 8, 15);
        Assert.All(losses, l => Assert.Equal(Math.Log(8), l, 12));
    }

    [Fact]
    public void Attention_backward_matches_finite_differences_for_window_smaller_than_T()
    {
        const int seed = 107, batch = 1, seqLen = 7, heads = 2, window = 3;
        var r = new Random(seed);
        int count = batch * seqLen * heads * 128;
        var q = Random(r, count, 0.3);
        var k = Random(r, count, 0.3);
        var v = Random(r, count);
        var w = Random(r, count);
        var (dq, dk, dv) = CpuOps.AttentionBackward(q, k, v, w, batch, seqLen, heads, window);
        CheckGradient("attention dq", q, p => Dot(w, CpuOps.Attention(p, k, v, batch, seqLen, heads, window).O), dq, seed);
        CheckGradient("attention dk", k, p => Dot(w, CpuOps.Attention(q, p, v, batch, seqLen, heads, window).O), dk, seed);
        CheckGradient("attention dv", v, p => Dot(w, CpuOps.Attention(q, k, p, batch, seqLen, heads, window).O), dv, seed);
    }

    [Fact]
    public void Attention_first_query_copies_its_own_value_and_window_zero_is_the_diagonal()
    {
        var r = new Random(108);
        int count = 4 * 128;
        var q = Random(r, count);
        var k = Random(r, count);
        var v = Random(r, count);
        var (o, _) = CpuOps.Attention(q, k, v, 1, 4, 1, 0);
        for (int i = 0; i < count; i++)
            Assert.Equal(v[i], o[i], 12);
    }
}

namespace AutoResearch.Model.Cpu;

/// <summary>
/// The model's ops in fp64, written straight from SPEC §5, each forward beside its backward: the building blocks of
/// <see cref="CpuGpt"/> and the oracle of every GPU kernel test. Checked by finite differences in the tests. Row-major
/// arrays; shapes in the comments.
/// </summary>
public static class CpuOps
{
    public const double Eps = 1.1920929e-07;

    // ---- RMSNorm: y = x / sqrt(mean(x²) + eps) per row of c ----
    public static (double[] Y, double[] Rstd) RmsNorm(double[] x, int n, int c)
    {
        var y = new double[n * c];
        var rstd = new double[n];
        for (int i = 0; i < n; i++)
        {
            double ss = 0;
            for (int j = 0; j < c; j++)
                ss += x[i * c + j] * x[i * c + j];
            rstd[i] = 1 / Math.Sqrt(ss / c + Eps);
            for (int j = 0; j < c; j++)
                y[i * c + j] = x[i * c + j] * rstd[i];
        }
        return (y, rstd);
    }

    public static double[] RmsNormBackward(double[] x, double[] dy, int n, int c)
    {
        var (y, rstd) = RmsNorm(x, n, c);
        var dx = new double[n * c];
        for (int i = 0; i < n; i++)
        {
            double dot = 0;
            for (int j = 0; j < c; j++)
                dot += dy[i * c + j] * y[i * c + j];
            dot /= c;
            for (int j = 0; j < c; j++)
                dx[i * c + j] = rstd[i] * (dy[i * c + j] - y[i * c + j] * dot);
        }
        return dx;
    }

    // ---- Rotary (halves a, b; a' = a cos + b sin, b' = −a sin + b cos) then RMSNorm, per 128-vector; t = (row / heads) mod T ----
    public static double[] Rotate(double[] x, int rows, int heads, int seqLen, bool inverse = false)
    {
        var y = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            int t = r / heads % seqLen;
            for (int j = 0; j < 64; j++)
            {
                double angle = t * Math.Pow(10000, -2.0 * j / 128);
                double cos = Math.Cos(angle), sin = inverse ? -Math.Sin(angle) : Math.Sin(angle);
                double a = x[r * 128 + j], b = x[r * 128 + 64 + j];
                y[r * 128 + j] = a * cos + b * sin;
                y[r * 128 + 64 + j] = -a * sin + b * cos;
            }
        }
        return y;
    }

    public static (double[] Y, double[] Rstd) RotaryQkNorm(double[] x, int rows, int heads, int seqLen)
        => RmsNorm(Rotate(x, rows, heads, seqLen), rows, 128);

    public static double[] RotaryQkNormBackward(double[] x, double[] dy, int rows, int heads, int seqLen)
    {
        var rotated = Rotate(x, rows, heads, seqLen);
        var dRotated = RmsNormBackward(rotated, dy, rows, 128);
        // The rotation is orthogonal: its transpose is the rotation by −θ.
        return Rotate(dRotated, rows, heads, seqLen, inverse: true);
    }

    // ---- Value-embedding gate: g = 2·sigmoid(x[:, :32]·wgᵀ); v += g·ve[ids] per head ----
    public static (double[] V, double[] Gate) ValueGate(double[] x, double[] wg, int[] ids, double[] ve, double[] v, int n, int heads, int c)
    {
        var outV = (double[])v.Clone();
        var gate = new double[n * heads];
        for (int i = 0; i < n; i++)
        {
            for (int h = 0; h < heads; h++)
            {
                double z = 0;
                for (int j = 0; j < 32; j++)
                    z += x[i * c + j] * wg[h * 32 + j];
                double g = 2 / (1 + Math.Exp(-z));
                gate[i * heads + h] = g;
                for (int d = 0; d < 128; d++)
                    outV[(i * heads + h) * 128 + d] += g * ve[(ids[i] * heads + h) * 128 + d];
            }
        }
        return (outV, gate);
    }

    /// <summary>Gradients of Σ dv·v_out with respect to ve, wg and x (the v input's gradient is dv itself).</summary>
    public static (double[] Dve, double[] Dwg, double[] Dx) ValueGateBackward(double[] x, double[] wg, int[] ids, double[] ve, double[] dv,
        int n, int heads, int c, int vocab)
    {
        var dve = new double[vocab * heads * 128];
        var dwg = new double[heads * 32];
        var dx = new double[n * c];
        for (int i = 0; i < n; i++)
        {
            for (int h = 0; h < heads; h++)
            {
                double z = 0;
                for (int j = 0; j < 32; j++)
                    z += x[i * c + j] * wg[h * 32 + j];
                double s = 1 / (1 + Math.Exp(-z));
                double g = 2 * s, dg = 0;
                for (int d = 0; d < 128; d++)
                {
                    double grad = dv[(i * heads + h) * 128 + d];
                    dve[(ids[i] * heads + h) * 128 + d] += g * grad;
                    dg += grad * ve[(ids[i] * heads + h) * 128 + d];
                }
                double dz = dg * 2 * s * (1 - s);
                for (int j = 0; j < 32; j++)
                {
                    dwg[h * 32 + j] += dz * x[i * c + j];
                    dx[i * c + j] += dz * wg[h * 32 + j];
                }
            }
        }
        return (dve, dwg, dx);
    }

    // ---- relu² ----
    public static double[] ReluSquare(double[] u) => u.Select(v => v > 0 ? v * v : 0).ToArray();

    public static double[] ReluSquareBackward(double[] u, double[] ds) => u.Select((v, i) => ds[i] * 2 * Math.Max(v, 0)).ToArray();

    // ---- soft cap + cross-entropy per row: z = cap·tanh(l/cap), loss = lse(z) − z[target] (0 for target −1) ----
    public static double[] SoftcapCrossEntropy(double[] logits, int[] targets, int rows, int vocab, double cap)
    {
        var losses = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
                continue;
            var z = new double[vocab];
            double max = double.NegativeInfinity;
            for (int j = 0; j < vocab; j++)
            {
                z[j] = cap * Math.Tanh(logits[r * vocab + j] / cap);
                max = Math.Max(max, z[j]);
            }
            double sum = 0;
            for (int j = 0; j < vocab; j++)
                sum += Math.Exp(z[j] - max);
            losses[r] = max + Math.Log(sum) - z[targets[r]];
        }
        return losses;
    }

    /// <summary>d(scale·Σ losses)/dlogits.</summary>
    public static double[] SoftcapCrossEntropyBackward(double[] logits, int[] targets, int rows, int vocab, double cap, double scale)
    {
        var d = new double[rows * vocab];
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
                continue;
            var z = new double[vocab];
            double max = double.NegativeInfinity;
            for (int j = 0; j < vocab; j++)
            {
                z[j] = cap * Math.Tanh(logits[r * vocab + j] / cap);
                max = Math.Max(max, z[j]);
            }
            double sum = 0;
            for (int j = 0; j < vocab; j++)
                sum += Math.Exp(z[j] - max);
            for (int j = 0; j < vocab; j++)
            {
                double p = Math.Exp(z[j] - max) / sum;
                double t = z[j] / cap;
                d[r * vocab + j] = scale * (p - (j == targets[r] ? 1 : 0)) * (1 - t * t);
            }
        }
        return d;
    }

    // ---- causal sliding-window attention, head dim 128: query t sees keys t − W ≤ s ≤ t; [B, T, H, 128] layouts ----
    public static (double[] O, double[] Lse) Attention(double[] q, double[] k, double[] v, int batch, int seqLen, int heads, int window)
    {
        var o = new double[q.Length];
        var lse = new double[batch * heads * seqLen];
        Parallel.For(0, batch * heads, bh =>
        {
            int b = bh / heads, h = bh % heads;
            var p = new double[seqLen];
            for (int t = 0; t < seqLen; t++)
            {
                int first = Math.Max(0, t - window);
                lse[(b * heads + h) * seqLen + t] = SoftmaxRow(q, k, b, t, h, first, seqLen, heads, p);
                for (int s = first; s <= t; s++)
                {
                    for (int d = 0; d < 128; d++)
                        o[Index(b, t, h, d, seqLen, heads)] += p[s] * v[Index(b, s, h, d, seqLen, heads)];
                }
            }
        });
        return (o, lse);
    }

    /// <summary>Gradients of Σ dout·o with respect to q, k and v.</summary>
    public static (double[] Dq, double[] Dk, double[] Dv) AttentionBackward(double[] q, double[] k, double[] v, double[] dout,
        int batch, int seqLen, int heads, int window)
    {
        var dq = new double[q.Length];
        var dk = new double[q.Length];
        var dv = new double[q.Length];
        double scale = 1 / Math.Sqrt(128);
        Parallel.For(0, batch * heads, bh =>
        {
            int b = bh / heads, h = bh % heads;
            var p = new double[seqLen];
            var dp = new double[seqLen];
            for (int t = 0; t < seqLen; t++)
            {
                int first = Math.Max(0, t - window);
                SoftmaxRow(q, k, b, t, h, first, seqLen, heads, p);
                double pdp = 0;
                for (int s = first; s <= t; s++)
                {
                    double dot = 0;
                    for (int d = 0; d < 128; d++)
                        dot += dout[Index(b, t, h, d, seqLen, heads)] * v[Index(b, s, h, d, seqLen, heads)];
                    dp[s] = dot;
                    pdp += p[s] * dot;
                }
                for (int s = first; s <= t; s++)
                {
                    double ds = p[s] * (dp[s] - pdp) * scale;
                    for (int d = 0; d < 128; d++)
                    {
                        dv[Index(b, s, h, d, seqLen, heads)] += p[s] * dout[Index(b, t, h, d, seqLen, heads)];
                        dq[Index(b, t, h, d, seqLen, heads)] += ds * k[Index(b, s, h, d, seqLen, heads)];
                        dk[Index(b, s, h, d, seqLen, heads)] += ds * q[Index(b, t, h, d, seqLen, heads)];
                    }
                }
            }
        });
        return (dq, dk, dv);
    }

    /// <summary>
    /// p[s] = softmax over s in [first, t] of q_t·k_s / sqrt(128) for one (b, h); returns the row's log-sum-exp.
    /// </summary>
    private static double SoftmaxRow(double[] q, double[] k, int b, int t, int h, int first, int seqLen, int heads, double[] p)
    {
        double scale = 1 / Math.Sqrt(128), max = double.NegativeInfinity;
        for (int s = first; s <= t; s++)
        {
            double dot = 0;
            for (int d = 0; d < 128; d++)
                dot += q[Index(b, t, h, d, seqLen, heads)] * k[Index(b, s, h, d, seqLen, heads)];
            p[s] = dot * scale;
            max = Math.Max(max, p[s]);
        }
        double sum = 0;
        for (int s = first; s <= t; s++)
            sum += p[s] = Math.Exp(p[s] - max);
        for (int s = first; s <= t; s++)
            p[s] /= sum;
        return max + Math.Log(sum);
    }

    private static int Index(int b, int t, int h, int d, int seqLen, int heads) => ((b * seqLen + t) * heads + h) * 128 + d;

    // ---- linear layer y = x·Wᵀ, W stored out × in ----
    public static double[] Linear(double[] x, double[] w, int n, int inFeatures, int outFeatures)
    {
        var y = new double[(long)n * outFeatures];
        Parallel.For(0, n, i =>
        {
            for (int o = 0; o < outFeatures; o++)
            {
                double sum = 0;
                for (int j = 0; j < inFeatures; j++)
                    sum += x[(long)i * inFeatures + j] * w[(long)o * inFeatures + j];
                y[(long)i * outFeatures + o] = sum;
            }
        });
        return y;
    }

    /// <summary>dx = dy·W.</summary>
    public static double[] LinearBackwardInput(double[] dy, double[] w, int n, int inFeatures, int outFeatures)
    {
        var dx = new double[(long)n * inFeatures];
        Parallel.For(0, n, i =>
        {
            for (int o = 0; o < outFeatures; o++)
            {
                double g = dy[(long)i * outFeatures + o];
                if (g == 0)
                    continue;
                for (int j = 0; j < inFeatures; j++)
                    dx[(long)i * inFeatures + j] += g * w[(long)o * inFeatures + j];
            }
        });
        return dx;
    }

    /// <summary>dW += dyᵀ·x.</summary>
    public static void LinearBackwardWeight(double[] dy, double[] x, int n, int inFeatures, int outFeatures, double[] dw)
    {
        Parallel.For(0, outFeatures, o =>
        {
            for (int i = 0; i < n; i++)
            {
                double g = dy[(long)i * outFeatures + o];
                if (g == 0)
                    continue;
                for (int j = 0; j < inFeatures; j++)
                    dw[(long)o * inFeatures + j] += g * x[(long)i * inFeatures + j];
            }
        });
    }
}

using AutoResearch.Native;

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

    // ---- Rotary then QK-norm, per head vector of D values: rows = B·T·heads, t = (row / heads) mod T ----
    // cosSin [≥T, D] is RotaryTable.CosSin (bf16-rounded values): cos θ_j at [t, j], sin θ_j at [t, D/2 + j], j < D/2.

    /// <summary>
    /// Halves a = x[0:D/2], b = x[D/2:D] of each row: a' = a·cos θ + b·sin θ, b' = −a·sin θ + b·cos θ. With
    /// <paramref name="transpose"/> the transposed map (a = a'·cos θ − b'·sin θ, b = a'·sin θ + b'·cos θ): the backward. With the
    /// rounded table cos² + sin² is not exactly 1, so that is the transpose of the rotation, not quite its inverse.
    /// </summary>
    public static double[] Rotate(double[] x, float[] cosSin, int rows, int heads, int seqLen, int headDim, bool transpose = false)
    {
        CheckRotary(x, cosSin, rows, heads, seqLen, headDim);
        int half = headDim / 2;
        var y = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            int t = r / heads % seqLen;
            for (int j = 0; j < half; j++)
            {
                double cos = cosSin[t * headDim + j], sin = cosSin[t * headDim + half + j];
                if (transpose)
                    sin = -sin;
                double a = x[r * headDim + j], b = x[r * headDim + half + j];
                y[r * headDim + j] = a * cos + b * sin;
                y[r * headDim + half + j] = -a * sin + b * cos;
            }
        }
        return y;
    }

    /// <summary>y = norm(rotate(x)) per row of D; the rstd of each row.</summary>
    public static (double[] Y, double[] Rstd) RotaryQkNorm(double[] x, float[] cosSin, int rows, int heads, int seqLen, int headDim)
        => RmsNorm(Rotate(x, cosSin, rows, heads, seqLen, headDim), rows, headDim);

    /// <summary>dx from dy: the norm's backward at the rotated x, then the transposed rotation with the same table values.</summary>
    public static double[] RotaryQkNormBackward(double[] x, double[] dy, float[] cosSin, int rows, int heads, int seqLen, int headDim)
    {
        var rotated = Rotate(x, cosSin, rows, heads, seqLen, headDim);
        var dRotated = RmsNormBackward(rotated, dy, rows, headDim);
        return Rotate(dRotated, cosSin, rows, heads, seqLen, headDim, transpose: true);
    }

    /// <summary>
    /// The same backward from the forward's output y = norm(rotate(x)) and its rstd instead of x, as the GPU kernel computes it
    /// from the stored (bf16) y: d(rotated) = rstd·(dy − y·mean(dy·y)), then the transposed rotation. Given the exact y and rstd
    /// it equals <see cref="RotaryQkNormBackward"/>.
    /// </summary>
    public static double[] RotaryQkNormBackwardFromOutput(double[] y, double[] rstd, double[] dy, float[] cosSin, int rows, int heads, int seqLen, int headDim)
    {
        CheckRotary(y, cosSin, rows, heads, seqLen, headDim);
        ArgumentNullException.ThrowIfNull(rstd);
        CheckLength(nameof(rstd), rstd.Length, rows);
        CheckLength(nameof(dy), dy.Length, (long)rows * headDim);
        var dRotated = new double[(long)rows * headDim];
        for (int r = 0; r < rows; r++)
        {
            var yRow = y.AsSpan(r * headDim, headDim);
            var dyRow = dy.AsSpan(r * headDim, headDim);
            double mean = VectorMath.Dot(dyRow, yRow) / headDim;
            for (int j = 0; j < headDim; j++)
                dRotated[r * headDim + j] = rstd[r] * (dyRow[j] - yRow[j] * mean);
        }
        return Rotate(dRotated, cosSin, rows, heads, seqLen, headDim, transpose: true);
    }

    private static void CheckRotary(double[] x, float[] cosSin, int rows, int heads, int seqLen, int headDim)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(cosSin);
        if (headDim <= 0 || headDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the head size must be positive and even (rotary splits it in halves)");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        CheckLength(nameof(x), x.Length, (long)rows * headDim);
        if (cosSin.Length < (long)seqLen * headDim)
            throw new ArgumentException($"the rotary table holds {cosSin.Length} values; T {seqLen} × D {headDim} = {(long)seqLen * headDim} needed", nameof(cosSin));
    }

    // ---- Value-embedding gate per kv head: g = 2·sigmoid(x[:, :32]·wgᵀ) [n, KV]; v += g·ve[ids] ----
    // x [n, C], wg [KV, 32], ve [V, KV·D], v [n, KV·D]

    public static (double[] V, double[] Gate) ValueGate(double[] x, double[] wg, int[] ids, double[] ve, double[] v, int n, int kvHeads, int headDim, int c)
    {
        CheckValueGate(x, wg, ids, nameof(v), v, n, kvHeads, headDim, c);
        var outV = (double[])v.Clone();
        var gate = new double[n * kvHeads];
        for (int i = 0; i < n; i++)
        {
            for (int h = 0; h < kvHeads; h++)
            {
                double g = 2 * Sigmoid(GateLogit(x, wg, i, h, c));
                gate[i * kvHeads + h] = g;
                int row = (i * kvHeads + h) * headDim, table = (ids[i] * kvHeads + h) * headDim;
                for (int d = 0; d < headDim; d++)
                    outV[row + d] += g * ve[table + d];
            }
        }
        return (outV, gate);
    }

    /// <summary>Gradients of Σ dv·v_out with respect to ve, wg and x (the v input's gradient is dv itself).</summary>
    public static (double[] Dve, double[] Dwg, double[] Dx) ValueGateBackward(double[] x, double[] wg, int[] ids, double[] ve, double[] dv,
        int n, int kvHeads, int headDim, int c, int vocab)
    {
        CheckValueGate(x, wg, ids, nameof(dv), dv, n, kvHeads, headDim, c);
        var dve = new double[vocab * kvHeads * headDim];
        var dwg = new double[kvHeads * GateWidth];
        var dx = new double[n * c];
        for (int i = 0; i < n; i++)
        {
            for (int h = 0; h < kvHeads; h++)
            {
                double s = Sigmoid(GateLogit(x, wg, i, h, c));
                double g = 2 * s, dg = 0;
                int row = (i * kvHeads + h) * headDim, table = (ids[i] * kvHeads + h) * headDim;
                for (int d = 0; d < headDim; d++)
                {
                    dve[table + d] += g * dv[row + d];
                    dg += dv[row + d] * ve[table + d];
                }
                double dz = dg * 2 * s * (1 - s);
                for (int j = 0; j < GateWidth; j++)
                {
                    dwg[h * GateWidth + j] += dz * x[i * c + j];
                    dx[i * c + j] += dz * wg[h * GateWidth + j];
                }
            }
        }
        return (dve, dwg, dx);
    }

    private const int GateWidth = ModelShape.ValueGateWidth;

    private static double GateLogit(double[] x, double[] wg, int i, int h, int c)
    {
        double z = 0;
        for (int j = 0; j < GateWidth; j++)
            z += x[i * c + j] * wg[h * GateWidth + j];
        return z;
    }

    private static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    private static void CheckValueGate(double[] x, double[] wg, int[] ids, string vName, double[] v, int n, int kvHeads, int headDim, int c)
    {
        if (c < GateWidth)
            throw new ArgumentOutOfRangeException(nameof(c), c, $"the gate reads the first {GateWidth} channels: the width must be at least {GateWidth}");
        CheckLength(nameof(x), x.Length, (long)n * c);
        CheckLength(nameof(wg), wg.Length, (long)kvHeads * GateWidth);
        CheckLength(nameof(ids), ids.Length, n);
        CheckLength(vName, v.Length, (long)n * kvHeads * headDim);
    }

    // ---- MLP activations s = act(u): relu² and gelu element-wise (u [n, h]); swiglu u [n, 2h] = [gate | up] → s [n, h] ----

    /// <summary>s = act(u) for the model's activation; u is [n, hidden] ([n, 2·hidden] for swiglu).</summary>
    public static double[] Activate(Activation activation, double[] u, int n, int hidden) => activation switch
    {
        Activation.Relu2 => ReluSquare(u),
        Activation.Gelu => Gelu(u),
        Activation.SwiGlu => SwiGlu(u, n, hidden),
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "no CPU reference for this activation"),
    };

    /// <summary>du from ds = dL/ds, the same shape as u.</summary>
    public static double[] ActivateBackward(Activation activation, double[] u, double[] ds, int n, int hidden) => activation switch
    {
        Activation.Relu2 => ReluSquareBackward(u, ds),
        Activation.Gelu => GeluBackward(u, ds),
        Activation.SwiGlu => SwiGluBackward(u, ds, n, hidden),
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "no CPU reference for this activation"),
    };

    // relu²: s = max(u, 0)²
    public static double[] ReluSquare(double[] u) => u.Select(v => v > 0 ? v * v : 0).ToArray();

    public static double[] ReluSquareBackward(double[] u, double[] ds) => u.Select((v, i) => ds[i] * 2 * Math.Max(v, 0)).ToArray();

    // gelu, tanh form: s = 0.5·u·(1 + tanh(k·(u + 0.044715·u³))), k = √(2/π)
    private const double GeluK = 0.7978845608028654, GeluCubic = 0.044715;

    public static double[] Gelu(double[] u) => u.Select(v => 0.5 * v * (1 + Math.Tanh(GeluK * (v + GeluCubic * v * v * v)))).ToArray();

    /// <summary>ds/du = 0.5·(1 + th) + 0.5·u·(1 − th²)·k·(1 + 3·0.044715·u²), th = tanh(k·(u + 0.044715·u³)).</summary>
    public static double[] GeluBackward(double[] u, double[] ds) => u.Select((v, i) =>
    {
        double th = Math.Tanh(GeluK * (v + GeluCubic * v * v * v));
        return ds[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * GeluK * (1 + 3 * GeluCubic * v * v));
    }).ToArray();

    // swiglu: per row, gate = u[0..h), up = u[h..2h); s = silu(gate)·up, silu(x) = x·sigmoid(x)
    public static double[] SwiGlu(double[] u, int n, int hidden)
    {
        CheckLength(nameof(u), u.Length, 2L * n * hidden);
        var s = new double[n * hidden];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < hidden; j++)
            {
                double gate = u[i * 2 * hidden + j], up = u[i * 2 * hidden + hidden + j];
                s[i * hidden + j] = gate * Sigmoid(gate) * up;
            }
        }
        return s;
    }

    /// <summary>du [n, 2h] from ds [n, h]: d gate = ds·up·σ(gate)·(1 + gate·(1 − σ(gate))), d up = ds·silu(gate).</summary>
    public static double[] SwiGluBackward(double[] u, double[] ds, int n, int hidden)
    {
        CheckLength(nameof(u), u.Length, 2L * n * hidden);
        CheckLength(nameof(ds), ds.Length, (long)n * hidden);
        var du = new double[u.Length];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < hidden; j++)
            {
                double gate = u[i * 2 * hidden + j], up = u[i * 2 * hidden + hidden + j], sig = Sigmoid(gate), g = ds[i * hidden + j];
                du[i * 2 * hidden + j] = g * up * sig * (1 + gate * (1 - sig));
                du[i * 2 * hidden + hidden + j] = g * gate * sig;
            }
        }
        return du;
    }

    // ---- soft cap + cross-entropy per row: z = cap·tanh(l/cap) (cap 0: z = l), loss = lse(z) − z[target] (0 for target −1) ----

    /// <summary>z = cap·tanh(l/cap); a cap of 0 leaves the logit as it is.</summary>
    public static double SoftCap(double logit, double cap) => cap == 0 ? logit : cap * Math.Tanh(logit / cap);

    public static double[] SoftcapCrossEntropy(double[] logits, int[] targets, int rows, int vocab, double cap)
    {
        CheckCap(cap);
        var losses = new double[rows];
        var z = new double[vocab];
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
                continue;
            double lse = CappedLogSumExp(logits, r, vocab, cap, z);
            losses[r] = lse - z[targets[r]];
        }
        return losses;
    }

    /// <summary>d(scale·Σ losses)/dlogits: (softmax(z) − onehot)·dz/dl, dz/dl = 1 − (z/cap)² (1 without a cap).</summary>
    public static double[] SoftcapCrossEntropyBackward(double[] logits, int[] targets, int rows, int vocab, double cap, double scale)
    {
        CheckCap(cap);
        var d = new double[rows * vocab];
        var z = new double[vocab];
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
                continue;
            double lse = CappedLogSumExp(logits, r, vocab, cap, z);
            for (int j = 0; j < vocab; j++)
            {
                double p = Math.Exp(z[j] - lse);
                double slope = cap == 0 ? 1 : 1 - (z[j] / cap) * (z[j] / cap);
                d[r * vocab + j] = scale * (p - (j == targets[r] ? 1 : 0)) * slope;
            }
        }
        return d;
    }

    /// <summary>z = the capped logits of row r (into <paramref name="z"/>); returns log Σ exp z.</summary>
    private static double CappedLogSumExp(double[] logits, int r, int vocab, double cap, double[] z)
    {
        double max = double.NegativeInfinity;
        for (int j = 0; j < vocab; j++)
        {
            z[j] = SoftCap(logits[r * vocab + j], cap);
            max = Math.Max(max, z[j]);
        }
        double sum = 0;
        for (int j = 0; j < vocab; j++)
            sum += Math.Exp(z[j] - max);
        return max + Math.Log(sum);
    }

    private static void CheckCap(double cap)
    {
        if (!(cap >= 0) || double.IsInfinity(cap))
            throw new ArgumentOutOfRangeException(nameof(cap), cap, "the soft cap must be 0 (off) or a positive finite number");
    }

    // ---- causal sliding-window attention with grouped-query heads: query t sees keys t − W ≤ s ≤ t, scale 1/sqrt(D) ----
    // q, o [B, T, H, D]; k, v [B, T, KV, D]; query head h reads kv head h / (H/KV); lse [B, H, T]

    public static (double[] O, double[] Lse) Attention(double[] q, double[] k, double[] v, int batch, int seqLen, int heads, int kvHeads, int headDim, int window)
    {
        CheckAttention(q, k, v, batch, seqLen, heads, kvHeads, headDim);
        var o = new double[q.Length];
        var lse = new double[batch * heads * seqLen];
        int group = heads / kvHeads;
        Parallel.For(0, batch * heads, bh =>
        {
            int b = bh / heads, h = bh % heads, kvh = h / group;
            var p = new double[seqLen];
            for (int t = 0; t < seqLen; t++)
            {
                int first = Math.Max(0, t - window);
                lse[(b * heads + h) * seqLen + t] = SoftmaxRow(q, k, b, t, h, kvh, first, seqLen, heads, kvHeads, headDim, p);
                int row = Index(b, t, h, seqLen, heads, headDim);
                var orow = o.AsSpan(row, headDim);
                for (int s = first; s <= t; s++)
                    VectorMath.Axpy(p[s], v.AsSpan(Index(b, s, kvh, seqLen, kvHeads, headDim), headDim), orow);
            }
        });
        return (o, lse);
    }

    /// <summary>Gradients of Σ dout·o with respect to q, k and v; dk and dv sum over the query heads of each kv head's group.</summary>
    public static (double[] Dq, double[] Dk, double[] Dv) AttentionBackward(double[] q, double[] k, double[] v, double[] dout,
        int batch, int seqLen, int heads, int kvHeads, int headDim, int window)
    {
        CheckAttention(q, k, v, batch, seqLen, heads, kvHeads, headDim);
        CheckLength(nameof(dout), dout.Length, q.Length);
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        double scale = 1 / Math.Sqrt(headDim);
        int group = heads / kvHeads;
        // One task per (b, kv head): the query heads of a group add into the same dk, dv rows.
        Parallel.For(0, batch * kvHeads, bkv =>
        {
            int b = bkv / kvHeads, kvh = bkv % kvHeads;
            var p = new double[seqLen];
            var dp = new double[seqLen];
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
            {
                for (int t = 0; t < seqLen; t++)
                {
                    int first = Math.Max(0, t - window);
                    SoftmaxRow(q, k, b, t, h, kvh, first, seqLen, heads, kvHeads, headDim, p);
                    int row = Index(b, t, h, seqLen, heads, headDim);
                    double pdp = 0;
                    var doRow = dout.AsSpan(row, headDim);
                    for (int s = first; s <= t; s++)
                    {
                        double dot = VectorMath.Dot(doRow, v.AsSpan(Index(b, s, kvh, seqLen, kvHeads, headDim), headDim));
                        dp[s] = dot;
                        pdp += p[s] * dot;
                    }
                    var qRow = q.AsSpan(row, headDim);
                    var dqRow = dq.AsSpan(row, headDim);
                    for (int s = first; s <= t; s++)
                    {
                        int key = Index(b, s, kvh, seqLen, kvHeads, headDim);
                        double ds = p[s] * (dp[s] - pdp) * scale;
                        VectorMath.Axpy(p[s], doRow, dv.AsSpan(key, headDim));
                        VectorMath.Axpy(ds, k.AsSpan(key, headDim), dqRow);
                        VectorMath.Axpy(ds, qRow, dk.AsSpan(key, headDim));
                    }
                }
            }
        });
        return (dq, dk, dv);
    }

    /// <summary>Keys per tile of the flash kernels: a query row's keys are visited in tiles aligned to multiples of this.</summary>
    public const int FlashKeyTile = 128;

    /// <summary>
    /// <see cref="Attention"/> with the roundings of the flash forward (kernels/flash_forward.cu): keys in tiles of
    /// <see cref="FlashKeyTile"/> aligned to multiples of it, an online softmax in base 2 whose running maximum moves tile by
    /// tile, each tile's P = 2^(score·scale·log2 e − m) rounded to bf16 for P·V while the row sum takes it unrounded, and the
    /// output o = acc / l. Exact arithmetic between those points (the kernel's is fp32); o itself is left for the caller to
    /// round.
    /// </summary>
    /// <param name="round">false: the same tiles and formulas without the roundings, which is <see cref="Attention"/> (how the tests
    /// check the emulation itself).</param>
    public static (double[] O, double[] Lse) AttentionLikeFlash(double[] q, double[] k, double[] v, int batch, int seqLen, int heads, int kvHeads, int headDim,
        int window, bool round = true)
    {
        CheckAttention(q, k, v, batch, seqLen, heads, kvHeads, headDim);
        var o = new double[q.Length];
        var lse = new double[batch * heads * seqLen];
        int group = heads / kvHeads;
        double scale2 = Math.Log2(Math.E) / Math.Sqrt(headDim);
        Parallel.For(0, batch * heads, bh =>
        {
            int b = bh / heads, h = bh % heads, kvh = h / group;
            var acc = new double[headDim];
            var scores = new double[FlashKeyTile];
            for (int t = 0; t < seqLen; t++)
            {
                int first = Math.Max(0, t - window), row = Index(b, t, h, seqLen, heads, headDim);
                Array.Clear(acc);
                double m = double.NegativeInfinity, l = 0;
                for (int k0 = first / FlashKeyTile * FlashKeyTile; k0 <= t; k0 += FlashKeyTile)
                {
                    int lo = Math.Max(k0, first), hi = Math.Min(k0 + FlashKeyTile - 1, t);
                    double tileMax = double.NegativeInfinity;
                    for (int s = lo; s <= hi; s++)
                    {
                        double dot = VectorMath.Dot(q.AsSpan(row, headDim), k.AsSpan(Index(b, s, kvh, seqLen, kvHeads, headDim), headDim));
                        scores[s - k0] = dot;
                        tileMax = Math.Max(tileMax, dot);
                    }
                    double mNew = Math.Max(m, tileMax * scale2), correction = Math.Pow(2, m - mNew);
                    l *= correction;
                    for (int d = 0; d < headDim; d++)
                        acc[d] *= correction;
                    m = mNew;
                    for (int s = lo; s <= hi; s++)
                    {
                        double pExact = Math.Pow(2, scores[s - k0] * scale2 - m);
                        double pRounded = round ? Bf16.Round((float)pExact) : pExact; // the A operand of P·V
                        l += pExact;
                        VectorMath.Axpy(pRounded, v.AsSpan(Index(b, s, kvh, seqLen, kvHeads, headDim), headDim), acc);
                    }
                }
                for (int d = 0; d < headDim; d++)
                    o[row + d] = acc[d] / l;
                lse[(b * heads + h) * seqLen + t] = (m + Math.Log2(l)) * Math.Log(2);
            }
        });
        return (o, lse);
    }

    /// <summary>
    /// <see cref="AttentionBackward"/> with the roundings of the flash backward (kernels/flash_backward.cu): P = exp(score·scale −
    /// lse) from the forward's <paramref name="lse"/>, D_t = Σ_d o·dO from the forward's (bf16) <paramref name="o"/>, P rounded to
    /// bf16 for dV = Pᵀ·dO and dS = P ∘ (dO·Vᵀ − D) rounded to bf16 for dQ = dS·K·scale and dK = dSᵀ·Q·scale. dq, dk and dv are
    /// left for the caller to round.
    /// </summary>
    /// <param name="round">false: the same formulas without the roundings, which is <see cref="AttentionBackward"/> when o and lse
    /// are the exact forward's.</param>
    public static (double[] Dq, double[] Dk, double[] Dv) AttentionBackwardLikeFlash(double[] q, double[] k, double[] v, double[] o, double[] lse, double[] dout,
        int batch, int seqLen, int heads, int kvHeads, int headDim, int window, bool round = true)
    {
        CheckAttention(q, k, v, batch, seqLen, heads, kvHeads, headDim);
        CheckLength(nameof(dout), dout.Length, q.Length);
        CheckLength(nameof(o), o.Length, q.Length);
        CheckLength(nameof(lse), lse.Length, (long)batch * heads * seqLen);
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        double scale = 1 / Math.Sqrt(headDim);
        int group = heads / kvHeads;
        Parallel.For(0, batch * kvHeads, bkv =>
        {
            int b = bkv / kvHeads, kvh = bkv % kvHeads;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
            {
                for (int t = 0; t < seqLen; t++)
                {
                    int first = Math.Max(0, t - window), row = Index(b, t, h, seqLen, heads, headDim);
                    var qRow = q.AsSpan(row, headDim);
                    var doRow = dout.AsSpan(row, headDim);
                    var dqRow = dq.AsSpan(row, headDim);
                    double rowLse = lse[(b * heads + h) * seqLen + t], dRow = VectorMath.Dot(o.AsSpan(row, headDim), doRow);
                    for (int s = first; s <= t; s++)
                    {
                        int key = Index(b, s, kvh, seqLen, kvHeads, headDim);
                        double score = VectorMath.Dot(qRow, k.AsSpan(key, headDim)), dp = VectorMath.Dot(doRow, v.AsSpan(key, headDim));
                        double p = Math.Exp(score * scale - rowLse);
                        double pRounded = round ? Bf16.Round((float)p) : p, ds = round ? Bf16.Round((float)(p * (dp - dRow))) : p * (dp - dRow);
                        VectorMath.Axpy(pRounded, doRow, dv.AsSpan(key, headDim));
                        VectorMath.Axpy(ds * scale, k.AsSpan(key, headDim), dqRow);
                        VectorMath.Axpy(ds * scale, qRow, dk.AsSpan(key, headDim));
                    }
                }
            }
        });
        return (dq, dk, dv);
    }

    /// <summary>
    /// p[s] = softmax over s in [first, t] of q[b, t, h]·k[b, s, kvh] / sqrt(D); returns the row's log-sum-exp.
    /// </summary>
    private static double SoftmaxRow(double[] q, double[] k, int b, int t, int h, int kvh, int first, int seqLen, int heads, int kvHeads, int headDim, double[] p)
    {
        double scale = 1 / Math.Sqrt(headDim), max = double.NegativeInfinity;
        int row = Index(b, t, h, seqLen, heads, headDim);
        var qRow = q.AsSpan(row, headDim);
        for (int s = first; s <= t; s++)
        {
            p[s] = VectorMath.Dot(qRow, k.AsSpan(Index(b, s, kvh, seqLen, kvHeads, headDim), headDim)) * scale;
            max = Math.Max(max, p[s]);
        }
        double sum = 0;
        for (int s = first; s <= t; s++)
            sum += p[s] = Math.Exp(p[s] - max);
        for (int s = first; s <= t; s++)
            p[s] /= sum;
        return max + Math.Log(sum);
    }

    /// <summary>Start of the D values of head h at (b, t) in a [B, T, heads, D] array.</summary>
    private static int Index(int b, int t, int h, int seqLen, int heads, int headDim) => ((b * seqLen + t) * heads + h) * headDim;

    private static void CheckAttention(double[] q, double[] k, double[] v, int batch, int seqLen, int heads, int kvHeads, int headDim)
    {
        if (kvHeads < 1 || heads < 1 || heads % kvHeads != 0)
            throw new ArgumentException($"{heads} query heads and {kvHeads} kv heads: the kv heads must divide the query heads");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        CheckLength(nameof(q), q.Length, (long)batch * seqLen * heads * headDim);
        CheckLength(nameof(k), k.Length, (long)batch * seqLen * kvHeads * headDim);
        CheckLength(nameof(v), v.Length, (long)batch * seqLen * kvHeads * headDim);
    }

    private static void CheckLength(string name, long actual, long expected)
    {
        if (actual != expected)
            throw new ArgumentException($"{name} holds {actual} values; its shape needs {expected}", name);
    }

    // ---- linear layer y = x·Wᵀ, W stored out × in ----
    public static double[] Linear(double[] x, double[] w, int n, int inFeatures, int outFeatures)
    {
        var y = new double[(long)n * outFeatures];
        // Four rows at a time, so each row of w is read once for the four.
        Parallel.For(0, (n + 3) / 4, block =>
        {
            int i0 = 4 * block, rows = Math.Min(4, n - i0);
            Span<double> dots = stackalloc double[4];
            ReadOnlySpan<double> Row(int r) => x.AsSpan((int)((long)(i0 + Math.Min(r, rows - 1)) * inFeatures), inFeatures);
            ReadOnlySpan<double> x0 = Row(0), x1 = Row(1), x2 = Row(2), x3 = Row(3);
            for (int o = 0; o < outFeatures; o++)
            {
                VectorMath.Dot4(w.AsSpan(o * inFeatures, inFeatures), x0, x1, x2, x3, dots);
                for (int r = 0; r < rows; r++)
                    y[(long)(i0 + r) * outFeatures + o] = dots[r];
            }
        });
        return y;
    }

    /// <summary>dx = dy·W.</summary>
    public static double[] LinearBackwardInput(double[] dy, double[] w, int n, int inFeatures, int outFeatures)
    {
        var dx = new double[(long)n * inFeatures];
        // Four rows of dx at a time, so each row of w is read once for the four.
        Parallel.For(0, (n + 3) / 4, block =>
        {
            int i0 = 4 * block, rows = Math.Min(4, n - i0);
            var scratch = rows < 4 ? new double[inFeatures] : null; // where the missing rows of a last, short block go
            Span<double> Row(int r) => r < rows ? dx.AsSpan((int)((long)(i0 + r) * inFeatures), inFeatures) : scratch;
            double G(int r, int o) => r < rows ? dy[(long)(i0 + r) * outFeatures + o] : 0;
            for (int o = 0; o < outFeatures; o++)
            {
                double g0 = G(0, o), g1 = G(1, o), g2 = G(2, o), g3 = G(3, o);
                if (g0 != 0 || g1 != 0 || g2 != 0 || g3 != 0)
                    VectorMath.Axpy4(g0, g1, g2, g3, w.AsSpan(o * inFeatures, inFeatures), Row(0), Row(1), Row(2), Row(3));
            }
        });
        return dx;
    }

    /// <summary>dW += dyᵀ·x.</summary>
    public static void LinearBackwardWeight(double[] dy, double[] x, int n, int inFeatures, int outFeatures, double[] dw)
    {
        // Four rows of dw at a time, so each row of x is read once for the four.
        Parallel.For(0, (outFeatures + 3) / 4, block =>
        {
            int o0 = 4 * block, rows = Math.Min(4, outFeatures - o0);
            var scratch = rows < 4 ? new double[inFeatures] : null;
            Span<double> Row(int r) => r < rows ? dw.AsSpan((o0 + r) * inFeatures, inFeatures) : scratch;
            for (int i = 0; i < n; i++)
            {
                long at = (long)i * outFeatures + o0;
                double g0 = dy[at], g1 = rows > 1 ? dy[at + 1] : 0, g2 = rows > 2 ? dy[at + 2] : 0, g3 = rows > 3 ? dy[at + 3] : 0;
                if (g0 != 0 || g1 != 0 || g2 != 0 || g3 != 0)
                    VectorMath.Axpy4(g0, g1, g2, g3, x.AsSpan((int)((long)i * inFeatures), inFeatures), Row(0), Row(1), Row(2), Row(3));
            }
        });
    }
}

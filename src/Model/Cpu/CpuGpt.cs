using AutoResearch.Native;

namespace AutoResearch.Model.Cpu;

/// <summary>
/// The GPT of SPEC §5 on the CPU in fp64, without autograd: <see cref="ForwardBackward"/> runs the forward keeping what the
/// backward needs, the loss, and (when gradients are asked for) the explicit backward, op by op from <see cref="CpuOps"/>.
/// It is the oracle of the GPU model and trains tiny models where there is no GPU. Parameters are named and shaped as in
/// <see cref="ModelShape.ParameterShapes"/>; B rows of T tokens, N = B·T, C width, H query heads and KV key/value heads of D
/// (grouped-query attention), the MLP's hidden width and activation, the soft cap and the rotary base all from the
/// <see cref="ModelShape"/>.
/// </summary>
public sealed class CpuGpt
{
    /// <summary>The rotary cos/sin table [T, D] (bf16-rounded, <see cref="RotaryTable"/>): the GPU model's values.</summary>
    private readonly float[] _cosSin;

    /// <summary>
    /// Host bytes a forward and backward of <paramref name="batch"/> rows take, roughly: the parameters with their gradients and an
    /// optimizer's state (fp64), what the forward keeps per layer, and the logits with their gradient. Used to refuse a
    /// configuration that cannot fit before it starts.
    /// </summary>
    public static long EstimateBytes(ModelShape shape, int batch)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long n = (long)batch * shape.SeqLen, c = shape.ModelDim;
        long perLayer = n * (10 * c + 3 * (long)shape.KvDim + shape.FcRows + 2L * shape.MlpHidden);
        long values = shape.ParameterCount * 5 + shape.Depth * perLayer + 4 * n * shape.VocabSize;
        return values * sizeof(double);
    }

    public CpuGpt(ModelShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        Shape = shape;
        foreach (var (name, rows, cols) in shape.ParameterShapes())
            Parameters[name] = new double[(long)rows * cols];
        _cosSin = RotaryTable.CosSin(shape.SeqLen, shape.HeadDim, shape.RotaryBase);
    }

    public ModelShape Shape { get; }

    /// <summary>
    /// When set, the weights are read as bf16 (all but the lambdas: <see cref="Weights"/>), and every activation the GPU model
    /// stores in bf16 is rounded to bf16 here too, at the same points (the forward's
    /// x0, mixed inputs, norm outputs, q/k/v before and after rotary, attention output, residual stream after each block,
    /// MLP pre-activation and activation, final norm and logits; the backward's logit gradient, the residual gradient and the
    /// x0 gradient after each op that adds to them (layer 0's residual gradient joins the x0 gradient unrounded), the embedding
    /// norm's gradient, dout, dq/dk/dv, the MLP's gradients that feed the matrix products and its normed input's gradient;
    /// for the MLP as the GPU's fused GEMMs round with <see cref="FollowFusedMlp"/>), and the attention rounds P and dS as the
    /// flash kernels do (<see cref="CpuOps.AttentionLikeFlash"/>). Everything between those
    /// points stays fp64. Off (the default), the model is fp64 throughout: the function itself, as finite differences see it.
    /// On, it is the reference a bf16 GPU model is held to when errors would otherwise compound over many layers
    /// (<see cref="ModelParity"/>): the two then differ only by the kernels' own arithmetic, not by where they round.
    /// </summary>
    public bool RoundActivationsToBf16 { get; set; }

    /// <summary>
    /// With <see cref="RoundActivationsToBf16"/>, round the MLP where the GPU's fused MLP GEMMs (<c>MlpGemm</c>: relu² and GELU on
    /// Hopper) round, rather than where cuBLAS and the separate activation pass do: the forward forms u = rstd ⊙ x_mid·W_fcᵀ
    /// unrounded and rounds only s = act(u) (and u itself for GELU, which the backward reads); the backward rounds only
    /// du' = rstd ⊙ (g·W_proj) ⊙ act' (relu²'s act' = 2·sqrt(s) from the rounded s), takes dW_fc against x_mid, and rounds
    /// dh2' = du'·W_fc, which the norm backward takes scaled by rstd. The same function; other rounding points.
    /// </summary>
    public bool FollowFusedMlp { get; set; }

    private bool FusedRounding => RoundActivationsToBf16 && FollowFusedMlp && s_fusedActivations.Contains(Shape.Activation);

    private static readonly Activation[] s_fusedActivations = [Activation.Relu2, Activation.Gelu];

    /// <summary>Rounds <paramref name="values"/> to bf16 in place when <see cref="RoundActivationsToBf16"/> is set; returns them.</summary>
    private double[] R(double[] values)
    {
        if (RoundActivationsToBf16)
        {
            for (long e = 0; e < values.Length; e++)
                values[e] = Bf16.Round((float)values[e]);
        }
        return values;
    }

    /// <summary>
    /// The weights the model reads: <see cref="Parameters"/>, or with <see cref="RoundActivationsToBf16"/> their bf16 values (all but
    /// the lambdas, which stay fp32), as the GPU reads its bf16 copies of the fp32 masters. Gradients still go to the callers'
    /// arrays; only what the forward and backward multiply by is rounded.
    /// </summary>
    private Dictionary<string, double[]> Weights()
    {
        if (!RoundActivationsToBf16)
            return Parameters;
        return Parameters.ToDictionary(kv => kv.Key,
            kv => kv.Key.EndsWith("lambdas", StringComparison.Ordinal) ? kv.Value : R((double[])kv.Value.Clone()), StringComparer.Ordinal);
    }

    /// <summary>The bf16 copy of a gradient that feeds a matrix product (the array itself when not rounding).</summary>
    private double[] RoundedCopy(double[] values) => RoundActivationsToBf16 ? R((double[])values.Clone()) : values;

    /// <summary>Values by reference name (fp64, row-major out × in).</summary>
    public Dictionary<string, double[]> Parameters { get; } = new(StringComparer.Ordinal);

    /// <summary>SPEC §5's initialisation from <paramref name="seed"/> (<see cref="ParameterInitializer"/>; the GPU model draws the same values).</summary>
    public void InitialiseLikeSpec(int seed)
    {
        foreach (var (name, values) in ParameterInitializer.LikeSpec(Shape, seed))
            values.CopyTo(Parameters[name], 0);
    }

    /// <summary>Zeroed gradient arrays for every parameter.</summary>
    public Dictionary<string, double[]> NewGradients()
        => Parameters.ToDictionary(kv => kv.Key, kv => new double[kv.Value.Length], StringComparer.Ordinal);

    private static string W(int i, string name) => $"transformer.h.{i}.{name}.weight";

    /// <summary>
    /// Mean cross-entropy over the targets that are not −1, the per-token losses (0 where ignored), and — when
    /// <paramref name="gradients"/> is given — d(gradScale·Σ losses)/dθ added into it (gradScale defaults to 1/scored tokens,
    /// the gradient of the mean). With <paramref name="lambdaTermNorms"/> given, it also receives for each lambda's gradient
    /// (a sum over all N·C elements of g·x) the root sum of squares of those terms ("resid_lambdas", "x0_lambdas"): the scale
    /// against which a reduced-precision sum can be judged when the terms cancel.
    /// </summary>
    public (double Loss, double[] Losses) ForwardBackward(int[] inputs, int[] targets, int batch, Dictionary<string, double[]>? gradients = null, double? gradScale = null,
        Dictionary<string, double[]>? lambdaTermNorms = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(targets);
        var s = Shape;
        int t = s.SeqLen, n = batch * t, c = s.ModelDim, kv = s.KvDim, f = s.MlpHidden, fc = s.FcRows, v = s.VocabSize, depth = s.Depth;
        int h = s.Heads, kvh = s.KvHeads, d = s.HeadDim;
        if (inputs.Length != n || targets.Length != n)
            throw new ArgumentException($"expected {n} inputs and targets (B {batch} × T {t}); got {inputs.Length} and {targets.Length}");
        var p = Weights();
        var rl = p["resid_lambdas"];
        var xl = p["x0_lambdas"];
        var a = Forward(inputs, batch, p);
        var losses = CpuOps.SoftcapCrossEntropy(a.Logits, targets, n, v, s.SoftCap);
        int scored = targets.Count(x => x >= 0);
        double loss = scored == 0 ? 0 : losses.Sum() / scored;
        if (gradients is null)
            return (loss, losses);

        // ---- backward ----
        var gr = gradients;
        var dlogits = R(CpuOps.SoftcapCrossEntropyBackward(a.Logits, targets, n, v, s.SoftCap, gradScale ?? (scored == 0 ? 0 : 1.0 / scored)));
        CpuOps.LinearBackwardWeight(dlogits, a.Hf, n, c, v, gr["lm_head.weight"]);
        // g, the residual gradient, is bf16 between ops on the GPU (as in the reference): R after each op that writes it.
        var g = R(CpuOps.RmsNormBackward(a.Xs[depth], R(CpuOps.LinearBackwardInput(dlogits, p["lm_head.weight"], n, c, v)), n, c));
        var dx0 = new double[(long)n * c];
        for (int i = depth - 1; i >= 0; i--)
        {
            // MLP: x_out = x_mid + act(norm(x_mid)·Wfcᵀ)·Wprojᵀ
            var gb = RoundedCopy(g);
            CpuOps.LinearBackwardWeight(gb, a.Ss[i], n, f, c, gr[W(i, "mlp.c_proj")]);
            if (FusedRounding)
            {
                var du = FusedActivationBackward(CpuOps.LinearBackwardInput(gb, p[W(i, "mlp.c_proj")], n, f, c), a.Us[i], a.Ss[i], a.Rstd2s[i], n, f);
                CpuOps.LinearBackwardWeight(du, a.Xmids[i], n, c, fc, gr[W(i, "mlp.c_fc")]);
                var dh2 = R(CpuOps.LinearBackwardInput(du, p[W(i, "mlp.c_fc")], n, c, fc)); // rstd·dh2, bf16 out of the GEMM
                for (int r = 0; r < n; r++)
                {
                    for (int j = 0; j < c; j++)
                        dh2[(long)r * c + j] /= a.Rstd2s[i][r];
                }
                Add(g, CpuOps.RmsNormBackward(a.Xmids[i], dh2, n, c));
            }
            else
            {
                var du = R(CpuOps.ActivateBackward(s.Activation, a.Us[i], R(CpuOps.LinearBackwardInput(gb, p[W(i, "mlp.c_proj")], n, f, c)), n, f));
                CpuOps.LinearBackwardWeight(du, a.H2s[i], n, c, fc, gr[W(i, "mlp.c_fc")]);
                // dh2 leaves the GEMM in bf16 on the GPU too.
                Add(g, CpuOps.RmsNormBackward(a.Xmids[i], R(CpuOps.LinearBackwardInput(du, p[W(i, "mlp.c_fc")], n, c, fc)), n, c));
            }
            R(g);

            // Attention: x_mid = m + attention(norm(m))·Woᵀ; q [N, C] = H heads, k and v [N, KvDim] = KV heads, of D each
            gb = RoundedCopy(g);
            CpuOps.LinearBackwardWeight(gb, a.Os[i], n, c, c, gr[W(i, "attn.c_proj")]);
            var dout = R(CpuOps.LinearBackwardInput(gb, p[W(i, "attn.c_proj")], n, c, c));
            var (dq, dk, dv) = RoundActivationsToBf16
                ? CpuOps.AttentionBackwardLikeFlash(a.Qs[i], a.Ks[i], a.Vs[i], a.Os[i], a.Lses[i], dout, batch, t, h, kvh, d, s.Windows[i])
                : CpuOps.AttentionBackward(a.Qs[i], a.Ks[i], a.Vs[i], dout, batch, t, h, kvh, d, s.Windows[i]);
            // dq and dk reach the rotary backward in fp32 (the flash backward's dq accumulator; its dk, which its epilogue passes
            // through k's rotary backward), dv leaves in bf16. Rounding, the backward works as the GPU kernels do, from the
            // forward's stored (bf16) output and its rstd rather than from x. (The naive GPU attention rounds dk to bf16 first.)
            if (RoundActivationsToBf16)
            {
                dq = R(CpuOps.RotaryQkNormBackwardFromOutput(a.Qs[i], a.QRstds[i], dq, _cosSin, n * h, h, t, d));
                dk = R(CpuOps.RotaryQkNormBackwardFromOutput(a.Ks[i], a.KRstds[i], dk, _cosSin, n * kvh, kvh, t, d));
            }
            else
            {
                dq = CpuOps.RotaryQkNormBackward(a.QPre[i], dq, _cosSin, n * h, h, t, d);
                dk = CpuOps.RotaryQkNormBackward(a.KPre[i], dk, _cosSin, n * kvh, kvh, t, d);
            }
            R(dv);
            CpuOps.LinearBackwardWeight(dq, a.H1s[i], n, c, c, gr[W(i, "attn.c_q")]);
            CpuOps.LinearBackwardWeight(dk, a.H1s[i], n, c, kv, gr[W(i, "attn.c_k")]);
            CpuOps.LinearBackwardWeight(dv, a.H1s[i], n, c, kv, gr[W(i, "attn.c_v")]);
            var dh = CpuOps.LinearBackwardInput(dq, p[W(i, "attn.c_q")], n, c, c);
            Add(dh, CpuOps.LinearBackwardInput(dk, p[W(i, "attn.c_k")], n, c, kv));
            Add(dh, CpuOps.LinearBackwardInput(dv, p[W(i, "attn.c_v")], n, c, kv));
            R(dh); // dh1 leaves the one q | k | v GEMM in bf16
            if (s.HasValueEmbedding[i])
            {
                var (dve, dwg, dhGate) = CpuOps.ValueGateBackward(a.H1s[i], p[W(i, "attn.ve_gate")], inputs, p[$"value_embeds.{i}.weight"], dv, n, kvh, d, c, v);
                Add(gr[$"value_embeds.{i}.weight"], dve);
                Add(gr[W(i, "attn.ve_gate")], dwg);
                Add(dh, dhGate);
                R(dh); // the gate's share added in fp32 and rounded again
            }
            Add(g, CpuOps.RmsNormBackward(a.Ms[i], dh, n, c));
            if (!Gpu.RmsNorm.FusesNormMixBackward(c))
                R(g); // rows wider than the GPU's fused norm + mix backward takes: its two kernels round gt in between

            // Residual mix: m = resid_lambda·x + x0_lambda·x0
            double drl = 0, dxl = 0, drlSquares = 0, dxlSquares = 0;
            for (long e = 0; e < g.Length; e++)
            {
                double tr = g[e] * a.Xs[i][e], tx = g[e] * a.X0[e];
                drl += tr;
                dxl += tx;
                drlSquares += tr * tr;
                dxlSquares += tx * tx;
                dx0[e] += xl[i] * g[e];
                g[e] *= rl[i];
            }
            if (i > 0)
            {
                R(g);
                R(dx0); // the x0 gradient, summed over the layers in bf16
            }
            // Layer 0's g joins dx0 unrounded: the GPU adds both of its terms to dx0 in fp32 and rounds once (below).
            gr["resid_lambdas"][i] += drl;
            gr["x0_lambdas"][i] += dxl;
            if (lambdaTermNorms is not null)
            {
                (lambdaTermNorms.TryGetValue("resid_lambdas", out var r) ? r : lambdaTermNorms["resid_lambdas"] = new double[depth])[i] = Math.Sqrt(drlSquares);
                (lambdaTermNorms.TryGetValue("x0_lambdas", out var x) ? x : lambdaTermNorms["x0_lambdas"] = new double[depth])[i] = Math.Sqrt(dxlSquares);
            }
        }
        Add(dx0, g); // layer 0's input x is x0
        var demb = R(CpuOps.RmsNormBackward(a.Embedded, R(dx0), n, c)); // in place over dx0 on the GPU, bf16
        var dwte = gr["transformer.wte.weight"];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
                dwte[(long)inputs[i] * c + j] += demb[(long)i * c + j];
        }
        return (loss, losses);
    }

    /// <summary>
    /// The soft-capped logits (cap·tanh(z/cap), or z without a cap: the distribution the loss scores) of every position,
    /// [B·T, V]: what sampling draws the next token from. Causal: position t sees tokens 0..t only.
    /// </summary>
    public double[] Logits(int[] inputs, int batch)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        int n = batch * Shape.SeqLen;
        if (inputs.Length != n)
            throw new ArgumentException($"expected {n} inputs (B {batch} × T {Shape.SeqLen}); got {inputs.Length}");
        var logits = Forward(inputs, batch, Weights()).Logits;
        for (long e = 0; e < logits.Length; e++)
            logits[e] = CpuOps.SoftCap(logits[e], Shape.SoftCap);
        return logits;
    }

    /// <summary>What the forward keeps for the backward, in the order the forward makes it; per-layer arrays indexed by layer.</summary>
    private sealed record ForwardState(double[] Embedded, double[] X0, double[][] Xs, double[][] Ms, double[][] H1s, double[][] QPre, double[][] KPre,
        double[][] Qs, double[][] Ks, double[][] QRstds, double[][] KRstds, double[][] Vs, double[][] Os, double[][] Lses, double[][] Xmids, double[][] H2s,
        double[][] Us, double[][] Ss, double[][] Rstd2s, double[] Hf, double[] Logits);

    /// <summary>The forward of SPEC §5 up to the raw logits [N, V], keeping what the backward needs.</summary>
    private ForwardState Forward(int[] inputs, int batch, Dictionary<string, double[]> p)
    {
        var s = Shape;
        int t = s.SeqLen, n = batch * t, c = s.ModelDim, kv = s.KvDim, f = s.MlpHidden, fc = s.FcRows, v = s.VocabSize, depth = s.Depth;
        int h = s.Heads, kvh = s.KvHeads, d = s.HeadDim;
        var rl = p["resid_lambdas"];
        var xl = p["x0_lambdas"];

        var embedded = new double[(long)n * c];
        for (int i = 0; i < n; i++)
            Array.Copy(p["transformer.wte.weight"], (long)inputs[i] * c, embedded, (long)i * c, c);
        var x0 = R(CpuOps.RmsNorm(embedded, n, c).Y);
        var xs = new double[depth + 1][];
        var ms = new double[depth][];
        var h1s = new double[depth][];
        var qPre = new double[depth][];
        var kPre = new double[depth][];
        var qs = new double[depth][];
        var qRstds = new double[depth][];
        var kRstds = new double[depth][];
        var ks = new double[depth][];
        var vs = new double[depth][];
        var os = new double[depth][];
        var xmids = new double[depth][];
        var h2s = new double[depth][];
        var us = new double[depth][];
        var ss = new double[depth][];
        var rstd2s = new double[depth][];
        var lses = new double[depth][];
        xs[0] = x0;
        for (int i = 0; i < depth; i++)
        {
            var m = new double[(long)n * c];
            for (long e = 0; e < m.Length; e++)
                m[e] = rl[i] * xs[i][e] + xl[i] * x0[e];
            ms[i] = R(m);
            h1s[i] = R(CpuOps.RmsNorm(m, n, c).Y);
            qPre[i] = R(CpuOps.Linear(h1s[i], p[W(i, "attn.c_q")], n, c, c));   // [N, H·D]
            kPre[i] = R(CpuOps.Linear(h1s[i], p[W(i, "attn.c_k")], n, c, kv));  // [N, KV·D]
            vs[i] = R(CpuOps.Linear(h1s[i], p[W(i, "attn.c_v")], n, c, kv));    // [N, KV·D]
            if (s.HasValueEmbedding[i])
                vs[i] = R(CpuOps.ValueGate(h1s[i], p[W(i, "attn.ve_gate")], inputs, p[$"value_embeds.{i}.weight"], vs[i], n, kvh, d, c).V);
            (qs[i], qRstds[i]) = CpuOps.RotaryQkNorm(qPre[i], _cosSin, n * h, h, t, d);
            (ks[i], kRstds[i]) = CpuOps.RotaryQkNorm(kPre[i], _cosSin, n * kvh, kvh, t, d);
            R(qs[i]);
            R(ks[i]);
            if (RoundActivationsToBf16)
            {
                // The flash forward's own roundings (P in bf16 tile by tile); its lse feeds the backward, as on the GPU.
                var (o, lse) = CpuOps.AttentionLikeFlash(qs[i], ks[i], vs[i], batch, t, h, kvh, d, s.Windows[i]);
                os[i] = R(o);
                lses[i] = lse;
            }
            else
            {
                os[i] = CpuOps.Attention(qs[i], ks[i], vs[i], batch, t, h, kvh, d, s.Windows[i]).O;
            }
            var proj = CpuOps.Linear(os[i], p[W(i, "attn.c_proj")], n, c, c);
            xmids[i] = R(m.Select((value, e) => value + proj[e]).ToArray()); // the residual added in the GEMM, rounded once
            if (FusedRounding)
            {
                // u = rstd ⊙ x_mid·W_fcᵀ in the GEMM's fp32 accumulator; h2 is never formed (dW_fc is taken against x_mid).
                var (_, rstd) = CpuOps.RmsNorm(xmids[i], n, c);
                var u = CpuOps.Linear(xmids[i], p[W(i, "mlp.c_fc")], n, c, fc);
                for (int r = 0; r < n; r++)
                {
                    for (int j = 0; j < fc; j++)
                        u[(long)r * fc + j] *= rstd[r];
                }
                rstd2s[i] = rstd;
                h2s[i] = xmids[i];
                ss[i] = R(CpuOps.Activate(s.Activation, u, n, f));
                us[i] = R(u); // GELU's backward reads the stored bf16 u
            }
            else
            {
                h2s[i] = R(CpuOps.RmsNorm(xmids[i], n, c).Y);
                us[i] = R(CpuOps.Linear(h2s[i], p[W(i, "mlp.c_fc")], n, c, fc));     // [N, FcRows]
                ss[i] = R(CpuOps.Activate(s.Activation, us[i], n, f));               // [N, MlpHidden]
            }
            var mlp = CpuOps.Linear(ss[i], p[W(i, "mlp.c_proj")], n, f, c);
            xs[i + 1] = R(xmids[i].Select((value, e) => value + mlp[e]).ToArray());
        }
        var hf = R(CpuOps.RmsNorm(xs[depth], n, c).Y);
        var logits = R(CpuOps.Linear(hf, p["lm_head.weight"], n, c, v));
        return new ForwardState(embedded, x0, xs, ms, h1s, qPre, kPre, qs, ks, qRstds, kRstds, vs, os, lses, xmids, h2s, us, ss, rstd2s, hf, logits);
    }

    /// <summary>
    /// The fused gradient epilogue: du' = bf16(rstd ⊙ ds ⊙ act'), act' from what the forward stored in bf16 (relu²: 2·sqrt(s);
    /// GELU: gelu'(u)), ds = g·W_proj unrounded (the GEMM's accumulator).
    /// </summary>
    private double[] FusedActivationBackward(double[] ds, double[] u, double[] sKept, double[] rstd, int n, int hidden)
    {
        for (int r = 0; r < n; r++)
        {
            for (int j = 0; j < hidden; j++)
                ds[(long)r * hidden + j] *= rstd[r];
        }
        if (Shape.Activation == Activation.Relu2)
        {
            for (long e = 0; e < ds.Length; e++)
                ds[e] *= 2 * Math.Sqrt(sKept[e]);
            return R(ds);
        }
        return R(CpuOps.ActivateBackward(Shape.Activation, u, ds, n, hidden));
    }

    private static void Add(double[] target, double[] source)
    {
        for (long e = 0; e < target.Length; e++)
            target[e] += source[e];
    }
}

using AutoResearch.Model.Cpu;
using AutoResearch.Native;

namespace AutoResearch.Optim.Reference;

/// <summary>
/// The CPU reference of one MuonAdamW step (SPEC §6), in fp64, written for reading rather than speed: the oracle the GPU
/// optimizer is tested against, and the optimizer of the tiny CPU training run. With <see cref="RoundLikeGpu"/> the
/// orthogonalisation rounds to bf16 where the GPU does (the normalised input and every GEMM output), so the two agree to
/// bf16 precision; without it, everything is exact fp64. With the settings' <see cref="OptimizerPrecision.Reference"/> it also
/// rounds where the reference does (bf16 embedding parameters, gradients and moments; the bf16 Muon normalisation, scale
/// and update), whatever <see cref="RoundLikeGpu"/> says about the orthogonalisation. <see cref="RoundLikeGpu"/> also keeps
/// what the GPU keeps in fp32 (the masters of the other parameters, AdamW's moments there, the Polar Express coefficients) on
/// the fp32 grid.
/// </summary>
public sealed class MuonAdamWReference
{
    private readonly IReadOnlyList<ReferenceParameter> _parameters;
    private readonly OptimizerSettings _settings;
    private readonly Dictionary<string, double[]> _adamM = [];
    private readonly Dictionary<string, double[]> _adamV = [];
    private readonly Dictionary<string, double[]> _momentum = [];
    private readonly Dictionary<string, double[]> _secondMoment = [];

    public MuonAdamWReference(IReadOnlyList<ReferenceParameter> parameters, OptimizerSettings settings)
    {
        _parameters = parameters;
        _settings = settings;
        foreach (var p in parameters)
        {
            // Reference precision: wte and the value embeddings are bf16 parameters from the start.
            if (settings.Precision.HasBf16Parameters(settings.GroupOf(p.Name)))
            {
                for (int i = 0; i < p.Value.Length; i++)
                    p.Value[i] = Bf16.Round((float)p.Value[i]);
            }
            if (settings.GroupOf(p.Name) == ParameterGroup.Muon)
            {
                _momentum[p.Name] = new double[p.Value.Length];
                _secondMoment[p.Name] = new double[p.Rows >= p.Cols ? p.Rows : p.Cols];
            }
            else
            {
                _adamM[p.Name] = new double[p.Value.Length];
                _adamV[p.Name] = new double[p.Value.Length];
            }
        }
    }

    public bool RoundLikeGpu { get; init; }

    public int StepCount { get; private set; }

    /// <summary>Elements the cautious mask kept (X·p ≥ 0) and dropped in the last step, over all Muon matrices.</summary>
    public (long Decayed, long Spared) LastMask { get; private set; }

    /// <summary>The state carried between steps, as fp32 (what the GPU keeps; exact when <see cref="RoundLikeGpu"/>).</summary>
    public OptimizerState ExportState()
    {
        static Dictionary<string, float[]> F(Dictionary<string, double[]> d)
            => d.ToDictionary(kv => kv.Key, kv => Array.ConvertAll(kv.Value, v => (float)v), StringComparer.Ordinal);
        return new OptimizerState(StepCount, F(_adamM), F(_adamV), F(_momentum), F(_secondMoment)) { Precision = _settings.Precision };
    }

    /// <summary>
    /// Continues from <paramref name="state"/>: the step count and every buffer replaced by the state's (which must hold this
    /// optimizer's buffers, each of its length; <see cref="OptimizerState.CheckMatches"/> names what differs).
    /// </summary>
    public void ImportState(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var pairs = new[]
        {
            (state.AdamFirst, _adamM, "AdamW first moment"), (state.AdamSecond, _adamV, "AdamW second moment"),
            (state.Momentum, _momentum, "Muon momentum"), (state.SecondMoment, _secondMoment, "NorMuon second moment"),
        };
        foreach (var (from, to, what) in pairs) // all checked before anything changes
        {
            foreach (var (name, values) in to)
            {
                if (!from.TryGetValue(name, out var source) || source.Length != values.Length)
                    throw new ArgumentException($"the optimizer state has no {what} of {values.Length} values for '{name}'");
            }
        }
        foreach (var (from, to, _) in pairs)
        {
            foreach (var (name, values) in to)
            {
                var source = from[name];
                for (int i = 0; i < values.Length; i++)
                    values[i] = source[i];
            }
        }
        StepCount = state.Step;
    }

    public void Step(double lrMultiplier, double muonMomentum, double muonWeightDecay)
    {
        if (RoundLikeGpu)
        {
            // The GPU optimizer takes the schedule's values as fp32.
            (lrMultiplier, muonMomentum, muonWeightDecay) = ((float)lrMultiplier, (float)muonMomentum, (float)muonWeightDecay);
        }
        StepCount++;
        long decayed = 0, spared = 0;
        foreach (var p in _parameters)
        {
            var group = _settings.GroupOf(p.Name);
            if (group == ParameterGroup.Muon)
            {
                var (d, s) = MuonStep(p, lrMultiplier, muonMomentum, muonWeightDecay);
                decayed += d;
                spared += s;
            }
            else
            {
                AdamStep(p, _settings.Adam(group), lrMultiplier, _settings.Precision.HasBf16Parameters(group));
            }
        }
        LastMask = (decayed, spared);
    }

    /// <summary>AdamW; for a bf16 parameter (<paramref name="bf16"/>) the gradient, both moments and the new value are rounded to
    /// bf16 as they are stored, the arithmetic between them exact.</summary>
    private void AdamStep(ReferenceParameter p, OptimizerSettings.AdamHyper h, double lrMultiplier, bool bf16)
    {
        // What the GPU stores in fp32 is rounded to fp32 when following it.
        double B(double x) => bf16 ? Bf16.Round((float)x) : RoundLikeGpu ? (float)x : x;
        double lr = h.LearningRate * lrMultiplier;
        double bc1 = 1 - Math.Pow(h.Beta1, StepCount), bc2 = 1 - Math.Pow(h.Beta2, StepCount);
        var m = _adamM[p.Name];
        var v = _adamV[p.Name];
        for (int i = 0; i < p.Value.Length; i++)
        {
            double g = B(p.Gradient[i]);
            m[i] = B(h.Beta1 * m[i] + (1 - h.Beta1) * g);
            v[i] = B(h.Beta2 * v[i] + (1 - h.Beta2) * g * g);
            p.Value[i] = B(p.Value[i] * (1 - lr * h.WeightDecay) - lr / bc1 * m[i] / (Math.Sqrt(v[i] / bc2) + h.Eps));
        }
    }

    private (long Decayed, long Spared) MuonStep(ReferenceParameter p, double lrMultiplier, double mu, double weightDecay)
    {
        int rows = p.Rows, cols = p.Cols;
        bool reference = _settings.Precision == OptimizerPrecision.Reference;
        double B(double v) => reference ? Bf16.Round((float)v) : v;
        var buf = _momentum[p.Name];
        var u = new double[p.Value.Length];
        double sumSquares = 0;
        for (int i = 0; i < u.Length; i++)
        {
            buf[i] = mu * buf[i] + (1 - mu) * p.Gradient[i];
            if (RoundLikeGpu)
                buf[i] = (float)buf[i]; // the GPU's fp32 momentum buffer
            u[i] = B((1 - mu) * p.Gradient[i] + mu * buf[i]); // reference: X = u.bfloat16() before the norm
            sumSquares += u[i] * u[i];
        }
        double[] x;
        if (reference)
        {
            // X / (‖X‖·1.02 + 1e-6) on a bf16 X: the norm, each step of the denominator and the quotient are bf16; the constant
            // 1.02 is not (PyTorch multiplies a bf16 tensor by a Python number in fp32).
            double denominator = B(B(B(Math.Sqrt(sumSquares)) * 1.02) + 1e-6);
            x = u.Select(v => B(v / denominator)).ToArray();
        }
        else
        {
            double inv = 1 / (Math.Sqrt(sumSquares) * 1.02 + 1e-6);
            x = u.Select(v => Round(v * inv)).ToArray();
        }
        x = Orthogonalise(x, rows, cols, RoundLikeGpu || reference);

        // NorMuon: per row when rows ≥ cols, per column otherwise.
        bool perRow = rows >= cols;
        int length = perRow ? rows : cols, n = perRow ? cols : rows;
        var vMean = new double[length];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
                vMean[perRow ? i : j] += x[i * cols + j] * x[i * cols + j] / n;
        }
        var s2 = _secondMoment[p.Name];
        var r = new double[length];
        double sumV = 0, sumVr = 0;
        for (int l = 0; l < length; l++)
        {
            s2[l] = _settings.MuonBeta2 * s2[l] + (1 - _settings.MuonBeta2) * vMean[l];
            if (RoundLikeGpu)
                s2[l] = (float)s2[l]; // the GPU's fp32 second moment
            r[l] = 1 / Math.Sqrt(Math.Max(s2[l], 1e-10));
            sumV += vMean[l];
            sumVr += n * vMean[l] * r[l] * r[l];
        }
        double factor = Math.Sqrt(n * sumV) / Math.Max(Math.Sqrt(sumVr), 1e-10);

        double lrEff = _settings.MuonLearningRate * lrMultiplier * Math.Sqrt(Math.Max(1.0, (double)rows / cols));
        // Reference: lr and wd as bf16, the scale and X·scale bf16, lr·X bf16; (lr·wd) bf16 times the fp32 p stays fp32.
        double lrUpdate = B(lrEff), lrDecay = reference ? B(B(lrEff) * B(weightDecay)) : lrEff * weightDecay;
        if (RoundLikeGpu && !reference)
            (lrUpdate, lrDecay) = ((float)lrEff, (float)(lrEff * weightDecay)); // fp32 arguments of the GPU's update kernel
        long decayed = 0, spared = 0;
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                int k = i * cols + j;
                double xv = B(x[k] * B(r[perRow ? i : j] * factor));
                bool decay = xv * p.Value[k] >= 0;
                if (decay)
                    decayed++;
                else
                    spared++;
                p.Value[k] = p.Value[k] - (B(lrUpdate * xv) + (decay ? lrDecay * p.Value[k] : 0));
                if (RoundLikeGpu)
                    p.Value[k] = (float)p.Value[k]; // the GPU's fp32 master
            }
        }
        return (decayed, spared);
    }

    /// <summary>
    /// Five Polar Express iterations on X (rows × cols, Frobenius-normalised): XᵀX when rows &gt; cols, else XXᵀ, as written in
    /// SPEC §6. Every sum is a dot product of two contiguous rows on the machine's SIMD width (<see cref="VectorMath"/>); the
    /// loops read transposed copies and use the symmetry of the Gram matrix and its polynomial (identical products, same order:
    /// the same bits) so that the CPU training run is fast enough, and rows run in parallel.
    /// </summary>
    public static double[] Orthogonalise(double[] x, int rows, int cols, bool roundLikeGpu)
    {
        ArgumentNullException.ThrowIfNull(x);
        double R(double v) => roundLikeGpu ? Bf16.Round((float)v) : v;
        // The GPU passes the coefficients to its GEMMs and kernels as fp32.
        var coefficients = roundLikeGpu
            ? PolarExpress.Coefficients.Select(t => ((double)(float)t.A, (double)(float)t.B, (double)(float)t.C)).ToArray()
            : PolarExpress.Coefficients.ToArray();
        bool tall = rows > cols;
        int g = tall ? cols : rows, k = tall ? rows : cols; // Gram size, contraction length
        foreach (var (a, b, c) in coefficients)
        {
            // gram = A·Aᵀ with A = Xᵀ (g × k) when tall, X otherwise: gram[i, j] = Σ_t A[i, t]·A[j, t].
            var rowsOfA = tall ? Transpose(x, rows, cols) : x;
            var gram = new double[g * g];
            Parallel.For(0, g, i =>
            {
                for (int j = i; j < g; j++)
                {
                    double sum = VectorMath.Dot(rowsOfA.AsSpan(i * k, k), rowsOfA.AsSpan(j * k, k));
                    gram[i * g + j] = gram[j * g + i] = R(sum);
                }
            });
            // poly = b·gram + c·gram² (symmetric: gram[t, j] = gram[j, t]).
            var poly = new double[g * g];
            Parallel.For(0, g, i =>
            {
                for (int j = i; j < g; j++)
                {
                    double sq = VectorMath.Dot(gram.AsSpan(i * g, g), gram.AsSpan(j * g, g));
                    poly[i * g + j] = poly[j * g + i] = R(b * gram[i * g + j] + c * sq);
                }
            });
            // next = a·X + X·poly when tall, a·X + poly·X otherwise.
            var columnsOfX = tall ? null : Transpose(x, rows, cols);
            var current = x;
            var next = new double[x.Length];
            Parallel.For(0, rows, i =>
            {
                for (int j = 0; j < cols; j++)
                {
                    double sum = tall
                        ? VectorMath.Dot(current.AsSpan(i * cols, cols), poly.AsSpan(j * cols, cols))
                        : VectorMath.Dot(poly.AsSpan(i * rows, rows), columnsOfX.AsSpan(j * rows, rows));
                    next[i * cols + j] = R(a * current[i * cols + j] + sum);
                }
            });
            x = next;
        }
        return x;
    }

    private static double[] Transpose(double[] x, int rows, int cols)
    {
        var t = new double[x.Length];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
                t[j * rows + i] = x[i * cols + j];
        }
        return t;
    }

    private double Round(double v) => RoundLikeGpu ? Bf16.Round((float)v) : v;
}

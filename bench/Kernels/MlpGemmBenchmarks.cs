using AutoResearch.Bench.Workbench;
using AutoResearch.Model;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/mlp_gemm.cu, the MLP's GEMMs with the activation in their epilogue, at N = B·T tokens, width C, hidden F, as the
/// model calls them, each beside the plain way of the same op (the baseline of its category):
/// <list type="bullet">
/// <item>fc: <see cref="Fc"/> = act(r ⊙ x·W_fcᵀ) in one kernel (r the MLP norm's rstd, which the kernel computes from x and
/// writes, as the model runs it; GELU also writes u) against
/// <see cref="FcCublas"/> = a cuBLASLt GEMM writing u, then the activation pass of kernels/mlp_activation.cu.</item>
/// <item>proj gradient: <see cref="ProjGradient"/> = r ⊙ (g·W_proj) ⊙ act'(kept) in one kernel (kept: s for relu², u for GELU)
/// against <see cref="ProjGradientCublas"/> = a cuBLASLt GEMM writing ds, then the activation's backward pass.</item>
/// <item>q rotary: <see cref="QRotary"/> = the q projection with the rotary embedding and QK-norm in the same GEMM's epilogue
/// against <see cref="QRotaryCublas"/> = a cuBLASLt GEMM writing q, then kernels/rotary.cu's pass.</item>
/// <item>q k rotary: <see cref="QkRotary"/> = the q and k projections with that epilogue in one launch, x read once (as the model
/// runs them), against <see cref="QkRotaryTwoLaunches"/> = the same kernel launched for q, then for k, and
/// <see cref="QkRotaryCublas"/> = two cuBLASLt GEMMs and two rotary passes.</item>
/// </list>
/// Each category also times the cuBLASLt product alone (<see cref="FcProduct"/>, <see cref="ProjGradientProduct"/>,
/// <see cref="QkProduct"/>): the same GEMM without the epilogue, the rate a fused kernel is held against. <see cref="Fc"/> also
/// computes the norm's rstd, which neither <see cref="FcCublas"/> nor <see cref="FcProduct"/> does (the model's separate pass
/// for it took about 96 µs a layer on an H100): its share of their rates understates it by that much.
/// Checked on a slice of the rows (1024 at width 512, down to 128 at width 2048: the fp64 products cost N·C·F) with the full
/// width and hidden size. Tensor-core work (2·N·C·F FLOPs, the same for both ways). Run: <c>bench --filter '*MlpGemmBenchmarks*'</c>.
/// </summary>
public class MlpGemmBenchmarks : TokenKernelBenchmark
{
    private MlpGemm _mlp = null!;
    private MlpActivation _activation = null!;
    private Linear _linear = null!;
    private Rotary _rotary = null!;
    private ulong _x, _wFc, _rowScale, _s, _u, _g, _wProj, _du, _ds, _wQ, _q, _rstdQ, _table, _wK, _k, _rstdK, _qk;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "gelu", "width1024", "width2048");

    private long N => (long)B * T;

    private int F => Shape.MlpHidden;

    private Activation Act => Shape.Activation;

    private bool Gelu => Act == Activation.Gelu;

    /// <summary>Rows of the check: about 2^30 / (C·F), a multiple of the 128-row tile, 128 to 2048.</summary>
    private int CheckRows => (int)Math.Clamp((1L << 30) / ((long)C * F) / MlpGemm.TileRows * MlpGemm.TileRows, MlpGemm.TileRows, 2048);

    protected override void Open()
    {
        _mlp = new MlpGemm(KernelFiles, Device.Properties);
        _activation = new MlpActivation(KernelFiles);
        _linear = new Linear(Blas);
        _rotary = new Rotary(KernelFiles, Shape.HeadDim);
        if (!MlpGemm.SupportsActivation(Act) || !MlpGemm.Supports(Device.Properties, N, C, F))
            throw new NotSupportedException($"the fused MLP GEMMs do not take {Config} ({Act.Name()}, {N} tokens, width {C}, hidden {F}) on this device");
    }

    // ---- fc ----

    [GlobalSetup(Target = nameof(Fc))]
    public void SetupFc() => Prepare(nameof(Fc), () => CheckFc(fused: true), SetUpFc);

    [Benchmark, BenchmarkCategory("fc")]
    public void Fc()
    {
        Begin();
        _mlp.Fc(Act, _x, _wFc, N, C, F, _s, Stream, _rowScale, Gelu ? _u : 0, normRows: true);
        End();
    }

    [GlobalSetup(Target = nameof(FcCublas))]
    public void SetupFcCublas() => Prepare(nameof(FcCublas), () => CheckFc(fused: false), SetUpFc);

    /// <summary>The plain way: the cuBLASLt GEMM into u, then the activation pass u → s.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("fc")]
    public void FcCublas()
    {
        Begin();
        _linear.Forward(_x, _wFc, (int)N, C, F, _u);
        _activation.Forward(Act, _u, N, F, _s, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(FcProduct))]
    public void SetupFcProduct() => Prepare(nameof(FcProduct), () => CheckProduct(ProductOf.Fc), SetUpFc);

    /// <summary>The cuBLASLt GEMM u = x·W_fcᵀ alone: the fused kernel's product without its epilogue.</summary>
    [Benchmark, BenchmarkCategory("fc")]
    public void FcProduct()
    {
        Begin();
        RunProduct(ProductOf.Fc, (int)N, _x, _wFc, _u);
        End();
    }

    private KernelWork SetUpFc()
    {
        _x = Buffers.RandomBf16(N * C, 41, 1, "x").Pointer;
        _wFc = Buffers.RandomBf16((long)F * C, 42, 0.2, "W_fc").Pointer;
        _rowScale = Buffers.Upload(HostRandom.Floats(new Random(43), N, 0.5, 2), "row scale (rstd)").Pointer;
        _s = Buffers.Allocate<ushort>(N * F, "s").Pointer;
        _u = Buffers.Allocate<ushort>(N * F, "u").Pointer;
        return KernelWork.Gemm(N, F, C);
    }

    // ---- proj gradient ----

    [GlobalSetup(Target = nameof(ProjGradient))]
    public void SetupProjGradient() => Prepare(nameof(ProjGradient), () => CheckProjGradient(fused: true), SetUpProjGradient);

    [Benchmark, BenchmarkCategory("proj gradient")]
    public void ProjGradient()
    {
        Begin();
        _mlp.ProjInputGradient(Act, _g, _wProj, Gelu ? _u : _s, N, C, F, _du, Stream, _rowScale);
        End();
    }

    [GlobalSetup(Target = nameof(ProjGradientCublas))]
    public void SetupProjGradientCublas() => Prepare(nameof(ProjGradientCublas), () => CheckProjGradient(fused: false), SetUpProjGradient);

    /// <summary>The plain way: the cuBLASLt GEMM ds = g·W_proj, then the activation's backward pass into du.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("proj gradient")]
    public void ProjGradientCublas()
    {
        Begin();
        _linear.BackwardInput(_g, _wProj, (int)N, F, C, _ds, ElementType.Bf16, accumulate: false);
        _activation.Backward(Act, Gelu ? _u : _s, _ds, N, F, _du, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(ProjGradientProduct))]
    public void SetupProjGradientProduct() => Prepare(nameof(ProjGradientProduct), () => CheckProduct(ProductOf.ProjGradient), SetUpProjGradient);

    /// <summary>The cuBLASLt GEMM ds = g·W_proj alone: the fused kernel's product without its epilogue.</summary>
    [Benchmark, BenchmarkCategory("proj gradient")]
    public void ProjGradientProduct()
    {
        Begin();
        RunProduct(ProductOf.ProjGradient, (int)N, _g, _wProj, _ds);
        End();
    }

    private KernelWork SetUpProjGradient()
    {
        _g = Buffers.RandomBf16(N * C, 44, 1, "g").Pointer;
        _wProj = Buffers.RandomBf16((long)C * F, 45, 0.2, "W_proj").Pointer;
        _rowScale = Buffers.Upload(HostRandom.Floats(new Random(43), N, 0.5, 2), "row scale (rstd)").Pointer;
        // What the forward kept: s = relu²(u) ≥ 0 (its square root is taken), or u for GELU.
        _s = Buffers.Allocate<ushort>(N * F, "s").Pointer;
        _u = Buffers.RandomBf16(N * F, 47, 2, "u").Pointer;
        Device.Synchronize();
        _activation.Forward(Activation.Relu2, _u, N, F, _s, Stream);
        _du = Buffers.Allocate<ushort>(N * F, "du").Pointer;
        _ds = Buffers.Allocate<ushort>(N * F, "ds").Pointer;
        return KernelWork.Gemm(N, C, F);
    }

    // ---- q with rotary + QK-norm ----

    [GlobalSetup(Target = nameof(QRotary))]
    public void SetupQRotary() => Prepare(nameof(QRotary), () => CheckQRotary(fused: true), SetUpQRotary);

    /// <summary>The q projection with the rotary embedding and QK-norm in the GEMM's epilogue (the k projection is the same
    /// kernel with fewer columns).</summary>
    [Benchmark, BenchmarkCategory("q rotary")]
    public void QRotary()
    {
        Begin();
        _mlp.QkRotaryNorm(_x, _wQ, N, C, C, Shape.HeadDim, _table, T, _q, _rstdQ, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(QRotaryCublas))]
    public void SetupQRotaryCublas() => Prepare(nameof(QRotaryCublas), () => CheckQRotary(fused: false), SetUpQRotary);

    /// <summary>The plain way: the cuBLASLt GEMM into q, then kernels/rotary.cu's pass over it.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("q rotary")]
    public void QRotaryCublas()
    {
        Begin();
        _linear.Forward(_x, _wQ, (int)N, C, C, _q);
        _rotary.Forward(_q, _table, (int)N * Shape.Heads, Shape.Heads, T, _rstdQ, Stream);
        End();
    }

    private KernelWork SetUpQRotary()
    {
        if (!MlpGemm.SupportsRotary(N, C, C, Shape.HeadDim))
            throw new NotSupportedException($"the rotary GEMM does not take {Config} (width {C}, heads of {Shape.HeadDim})");
        _x = Buffers.RandomBf16(N * C, 48, 1, "x").Pointer;
        _wQ = Buffers.RandomBf16((long)C * C, 49, 0.2, "W_q").Pointer;
        _table = Buffers.Upload(RotaryTable.Bf16Pairs(RotaryTable.CosSin(T, Shape.HeadDim, Shape.RotaryBase), T, Shape.HeadDim), "cos/sin pairs").Pointer;
        _q = Buffers.Allocate<ushort>(N * C, "q").Pointer;
        _rstdQ = Buffers.Allocate<float>(N * Shape.Heads, "rstd q").Pointer;
        return KernelWork.Gemm(N, C, C);
    }

    // ---- q and k with rotary + QK-norm ----

    private int KvFeatures => Shape.KvDim;

    [GlobalSetup(Target = nameof(QkRotary))]
    public void SetupQkRotary() => Prepare(nameof(QkRotary), () => CheckQkRotary(QkWay.OneLaunch), SetUpQkRotary);

    /// <summary>q and k in one launch of the rotary GEMM (<see cref="MlpGemm.QkvRotaryNorm"/>, v left out), as the model runs them.</summary>
    [Benchmark, BenchmarkCategory("q k rotary")]
    public void QkRotary()
    {
        Begin();
        RunQk(QkWay.OneLaunch, _x, _wQ, _wK, _table, N, T, _q, _k, _rstdQ, _rstdK);
        End();
    }

    [GlobalSetup(Target = nameof(QkRotaryTwoLaunches))]
    public void SetupQkRotaryTwoLaunches() => Prepare(nameof(QkRotaryTwoLaunches), () => CheckQkRotary(QkWay.TwoLaunches), SetUpQkRotary);

    /// <summary>The same kernel launched once for q and once for k: x read twice.</summary>
    [Benchmark, BenchmarkCategory("q k rotary")]
    public void QkRotaryTwoLaunches()
    {
        Begin();
        RunQk(QkWay.TwoLaunches, _x, _wQ, _wK, _table, N, T, _q, _k, _rstdQ, _rstdK);
        End();
    }

    [GlobalSetup(Target = nameof(QkRotaryCublas))]
    public void SetupQkRotaryCublas() => Prepare(nameof(QkRotaryCublas), () => CheckQkRotary(QkWay.Cublas), SetUpQkRotary);

    /// <summary>The plain way: a cuBLASLt GEMM and kernels/rotary.cu's pass for q, then for k.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("q k rotary")]
    public void QkRotaryCublas()
    {
        Begin();
        RunQk(QkWay.Cublas, _x, _wQ, _wK, _table, N, T, _q, _k, _rstdQ, _rstdK);
        End();
    }

    [GlobalSetup(Target = nameof(QkProduct))]
    public void SetupQkProduct() => Prepare(nameof(QkProduct), () => CheckProduct(ProductOf.Qk), SetUpQkRotary);

    /// <summary>q and k's products alone, as one cuBLASLt GEMM over the stacked weights [W_q; W_k] (adjacent, as the model keeps
    /// c_q and c_k): the fused launch's products without the rotary epilogue, the fastest way cuBLAS has to them.</summary>
    [Benchmark, BenchmarkCategory("q k rotary")]
    public void QkProduct()
    {
        Begin();
        RunProduct(ProductOf.Qk, (int)N, _x, _wQ, _qk);
        End();
    }

    // One way's launches of q and k over n rows of x at positions mod t: what each benchmark times and its check runs.
    private void RunQk(QkWay way, ulong x, ulong wq, ulong wk, ulong table, long n, int t, ulong q, ulong k, ulong rstdQ, ulong rstdK)
    {
        int c = C, kv = KvFeatures, d = Shape.HeadDim, heads = Shape.Heads, kvHeads = Shape.KvHeads;
        switch (way)
        {
            case QkWay.OneLaunch:
                _mlp.QkvRotaryNorm(x, wq, wk, 0, n, c, c, kv, d, table, t, q, k, 0, rstdQ, rstdK, Stream);
                break;
            case QkWay.TwoLaunches:
                _mlp.QkRotaryNorm(x, wq, n, c, c, d, table, t, q, rstdQ, Stream);
                _mlp.QkRotaryNorm(x, wk, n, c, kv, d, table, t, k, rstdK, Stream);
                break;
            default:
                _linear.Forward(x, wq, (int)n, c, c, q);
                _rotary.Forward(q, table, (int)n * heads, heads, t, rstdQ, Stream);
                _linear.Forward(x, wk, (int)n, c, kv, k);
                _rotary.Forward(k, table, (int)n * kvHeads, kvHeads, t, rstdK, Stream);
                break;
        }
    }

    private KernelWork SetUpQkRotary()
    {
        if (!MlpGemm.SupportsRotary(N, C, C, Shape.HeadDim) || !MlpGemm.SupportsRotary(N, C, KvFeatures, Shape.HeadDim))
            throw new NotSupportedException($"the rotary GEMM does not take {Config}'s q and k (width {C}, {Shape.KvHeads} kv heads of {Shape.HeadDim})");
        _x = Buffers.RandomBf16(N * C, 48, 1, "x").Pointer;
        // W_q and W_k adjacent, as the model keeps them: QkProduct reads them as one [C + KV·D, C] matrix.
        _wQ = Buffers.RandomBf16((long)(C + KvFeatures) * C, 49, 0.2, "W_q | W_k").Pointer;
        _wK = _wQ + 2UL * (ulong)C * (ulong)C;
        _table = Buffers.Upload(RotaryTable.Bf16Pairs(RotaryTable.CosSin(T, Shape.HeadDim, Shape.RotaryBase), T, Shape.HeadDim), "cos/sin pairs").Pointer;
        _q = Buffers.Allocate<ushort>(N * C, "q").Pointer;
        _k = Buffers.Allocate<ushort>(N * KvFeatures, "k").Pointer;
        _qk = Buffers.Allocate<ushort>(N * (C + KvFeatures), "q | k (the product alone)").Pointer;
        _rstdQ = Buffers.Allocate<float>(N * Shape.Heads, "rstd q").Pointer;
        _rstdK = Buffers.Allocate<float>(N * Shape.KvHeads, "rstd k").Pointer;
        return KernelWork.Gemm(N, C + KvFeatures, C);
    }

    // ---- checks ----

    private KernelCheck CheckFc(bool fused)
    {
        int n = CheckRows, c = C, f = F;
        var check = new KernelCheck(fused ? $"mlp_fc_{(Gelu ? "gelu" : "relu_square")}" : $"cuBLASLt GEMM + {Act.Name()}_forward",
            401, $"{n} rows of {c} → {f}{(fused ? ", rows scaled by the rstd it computes" : "")}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c);
        var (wBits, w) = HostRandom.Bf16Values(r, (long)f * c, 0.2);
        var scale = CpuOps.RmsNorm(x, n, c).Rstd;
        var u = CpuOps.Linear(x, w, n, c, f);
        if (fused)
        {
            for (long i = 0; i < u.Length; i++)
                u[i] *= scale[i / f];
        }
        var sRef = CpuOps.Activate(Act, u, n, f);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dW = s.Upload(wBits, "W_fc");
        var dRstd = s.Poisoned<float>(n, "rstd");
        var dS = s.Poisoned<ushort>((long)n * f, "s");
        var dU = s.Poisoned<ushort>((long)n * f, "u");
        RunForCheck(() =>
        {
            if (fused)
            {
                _mlp.Fc(Act, dX.Pointer, dW.Pointer, n, c, f, dS.Pointer, Stream, dRstd.Pointer, Gelu ? dU.Pointer : 0, normRows: true);
            }
            else
            {
                _linear.Forward(dX.Pointer, dW.Pointer, n, c, f, dU.Pointer);
                _activation.Forward(Act, dU.Pointer, n, f, dS.Pointer, Stream);
            }
        });
        check.CompareBf16("s", dS.ToArray(), sRef, 1e-2);
        if (Gelu || !fused)
            check.CompareBf16("u", dU.ToArray(), u, 1e-2);
        if (fused)
            check.Compare("rstd", dRstd.ToArray(), scale, 1e-5);
        return check;
    }

    private KernelCheck CheckProjGradient(bool fused)
    {
        int n = CheckRows, c = C, f = F;
        var check = new KernelCheck(fused ? $"mlp_proj_input_gradient{(Gelu ? "_gelu" : "")}" : $"cuBLASLt GEMM + {Act.Name()}_backward",
            402, $"{n} rows of {c} → {f}{(fused ? ", rows scaled" : "")}");
        var r = new Random(check.Seed);
        var (gBits, g) = HostRandom.Bf16Values(r, (long)n * c);
        var (wBits, w) = HostRandom.Bf16Values(r, (long)c * f, 0.2); // c_proj: out (c) × in (f)
        var (uBits, u) = HostRandom.Bf16Values(r, (long)n * f, 2);
        var scale = HostRandom.Floats(r, n, 0.5, 2);
        // relu² keeps s = relu(u)²: the reference's u is the one whose bf16 square s the kernel sees, u = sqrt(s).
        ushort[] keptBits = uBits;
        if (!Gelu)
        {
            keptBits = new ushort[u.Length];
            for (long i = 0; i < u.Length; i++)
            {
                keptBits[i] = Bf16.FromFloat((float)(u[i] > 0 ? u[i] * u[i] : 0));
                u[i] = Math.Sqrt(Bf16.ToFloat(keptBits[i]));
            }
        }
        var ds = CpuOps.LinearBackwardInput(g, w, n, f, c);
        var duRef = CpuOps.ActivateBackward(Act, u, ds, n, f);
        if (fused)
        {
            for (long i = 0; i < duRef.Length; i++)
                duRef[i] *= scale[i / f];
        }
        using var s = new DeviceScratch(Device);
        var dG = s.Upload(gBits, "g");
        var dW = s.Upload(wBits, "W_proj");
        var dKept = s.Upload(keptBits, Gelu ? "u" : "s");
        var dScale = s.Upload(scale, "row scale");
        var dDs = s.Poisoned<ushort>((long)n * f, "ds");
        var dDu = s.Poisoned<ushort>((long)n * f, "du");
        RunForCheck(() =>
        {
            if (fused)
            {
                _mlp.ProjInputGradient(Act, dG.Pointer, dW.Pointer, dKept.Pointer, n, c, f, dDu.Pointer, Stream, dScale.Pointer);
            }
            else
            {
                _linear.BackwardInput(dG.Pointer, dW.Pointer, n, f, c, dDs.Pointer, ElementType.Bf16, accumulate: false);
                _activation.Backward(Act, dKept.Pointer, dDs.Pointer, n, f, dDu.Pointer, Stream);
            }
        });
        check.CompareBf16("du", dDu.ToArray(), duRef, 2e-2);
        return check;
    }

    private KernelCheck CheckQRotary(bool fused)
    {
        int n = CheckRows, c = C, d = Shape.HeadDim, heads = Shape.Heads, t = Math.Min(T, n);
        var check = new KernelCheck(fused ? $"qk_gemm_rotary_norm_{d}" : "cuBLASLt GEMM + rotary_qknorm_forward", 403,
            $"{n} rows of {c} → {heads} heads of {d}, positions mod {t}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c);
        var (wBits, w) = HostRandom.Bf16Values(r, (long)c * c, 0.2);
        var table = RotaryTable.CosSin(t, d, Shape.RotaryBase);
        // Both ways round the product to bf16 before the rotation, as the GEMM's output is bf16.
        var u = CpuOps.Linear(x, w, n, c, c).Select(v => (double)Bf16.Round((float)v)).ToArray();
        var (yRef, rstdRef) = CpuOps.RotaryQkNorm(u, table, n * heads, heads, t, d);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dW = s.Upload(wBits, "W_q");
        var dTable = s.Upload(RotaryTable.Bf16Pairs(table, t, d), "cos/sin pairs");
        var dQ = s.Poisoned<ushort>((long)n * c, "q");
        var dRstd = s.Poisoned<float>((long)n * heads, "rstd q");
        RunForCheck(() =>
        {
            if (fused)
            {
                _mlp.QkRotaryNorm(dX.Pointer, dW.Pointer, n, c, c, d, dTable.Pointer, t, dQ.Pointer, dRstd.Pointer, Stream);
            }
            else
            {
                _linear.Forward(dX.Pointer, dW.Pointer, n, c, c, dQ.Pointer);
                _rotary.Forward(dQ.Pointer, dTable.Pointer, n * heads, heads, t, dRstd.Pointer, Stream);
            }
        });
        check.CompareBf16("q", dQ.ToArray(), yRef, 1e-2);
        check.Compare("rstd q", dRstd.ToArray(), rstdRef, 1e-3);
        return check;
    }

    private enum ProductOf { Fc, ProjGradient, Qk }

    // The columns of one category's product: F (fc, the gradient) or C + KV·D (q and k stacked).
    private int ProductColumns(ProductOf which) => which == ProductOf.Qk ? C + KvFeatures : F;

    // One category's cuBLASLt product alone over n rows into y: a is x (fc, q k) or g (the gradient); w is W_fc [F, C], the
    // stacked [W_q; W_k] [C + KV·D, C], or W_proj [C, F] (c_proj: out × in, read transposed).
    private void RunProduct(ProductOf which, int n, ulong a, ulong w, ulong y)
    {
        if (which == ProductOf.ProjGradient)
            _linear.BackwardInput(a, w, n, F, C, y, ElementType.Bf16, accumulate: false);
        else
            _linear.Forward(a, w, n, C, ProductColumns(which), y);
    }

    private KernelCheck CheckProduct(ProductOf which)
    {
        int n = CheckRows, c = C, f = ProductColumns(which);
        var (kernel, output) = which switch
        {
            ProductOf.Fc => ("cuBLASLt GEMM u = x·W_fcᵀ", "u"),
            ProductOf.ProjGradient => ("cuBLASLt GEMM ds = g·W_proj", "ds"),
            _ => ("cuBLASLt GEMM q | k = x·[W_q; W_k]ᵀ", "q | k"),
        };
        var check = new KernelCheck(kernel, 405 + (int)which, $"{n} rows of {c} → {f}");
        var r = new Random(check.Seed);
        var (aBits, a) = HostRandom.Bf16Values(r, (long)n * c);
        var (wBits, w) = HostRandom.Bf16Values(r, (long)f * c, 0.2); // W_proj is [c, f]: the same count
        var reference = which == ProductOf.ProjGradient ? CpuOps.LinearBackwardInput(a, w, n, f, c) : CpuOps.Linear(a, w, n, c, f);
        using var s = new DeviceScratch(Device);
        var dA = s.Upload(aBits, which == ProductOf.ProjGradient ? "g" : "x");
        var dW = s.Upload(wBits, "W");
        var dY = s.Poisoned<ushort>((long)n * f, output);
        RunForCheck(() => RunProduct(which, n, dA.Pointer, dW.Pointer, dY.Pointer));
        check.CompareBf16(output, dY.ToArray(), reference, 1e-2);
        return check;
    }

    private enum QkWay { OneLaunch, TwoLaunches, Cublas }

    private KernelCheck CheckQkRotary(QkWay way)
    {
        int n = CheckRows, c = C, kv = KvFeatures, d = Shape.HeadDim, heads = Shape.Heads, kvHeads = Shape.KvHeads, t = Math.Min(T, n);
        string kernel = way switch
        {
            QkWay.OneLaunch => $"qk_gemm_rotary_norm_{d} (q and k in one launch)",
            QkWay.TwoLaunches => $"qk_gemm_rotary_norm_{d} (q, then k)",
            _ => "cuBLASLt GEMM + rotary_qknorm_forward (q, then k)",
        };
        var check = new KernelCheck(kernel, 404, $"{n} rows of {c} → {heads} q and {kvHeads} k heads of {d}, positions mod {t}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c);
        var (wqBits, wq) = HostRandom.Bf16Values(r, (long)c * c, 0.2);
        var (wkBits, wk) = HostRandom.Bf16Values(r, (long)kv * c, 0.2);
        var table = RotaryTable.CosSin(t, d, Shape.RotaryBase);
        // Every way rounds the products to bf16 before the rotation, as the GEMM's output is bf16.
        double[] Rounded(double[] w, int features) => CpuOps.Linear(x, w, n, c, features).Select(v => (double)Bf16.Round((float)v)).ToArray();
        var (qRef, rstdQRef) = CpuOps.RotaryQkNorm(Rounded(wq, c), table, n * heads, heads, t, d);
        var (kRef, rstdKRef) = CpuOps.RotaryQkNorm(Rounded(wk, kv), table, n * kvHeads, kvHeads, t, d);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dWq = s.Upload(wqBits, "W_q");
        var dWk = s.Upload(wkBits, "W_k");
        var dTable = s.Upload(RotaryTable.Bf16Pairs(table, t, d), "cos/sin pairs");
        var dQ = s.Poisoned<ushort>((long)n * c, "q");
        var dK = s.Poisoned<ushort>((long)n * kv, "k");
        var dRstdQ = s.Poisoned<float>((long)n * heads, "rstd q");
        var dRstdK = s.Poisoned<float>((long)n * kvHeads, "rstd k");
        RunForCheck(() => RunQk(way, dX.Pointer, dWq.Pointer, dWk.Pointer, dTable.Pointer, n, t, dQ.Pointer, dK.Pointer, dRstdQ.Pointer, dRstdK.Pointer));
        check.CompareBf16("q", dQ.ToArray(), qRef, 1e-2);
        check.CompareBf16("k", dK.ToArray(), kRef, 1e-2);
        check.Compare("rstd q", dRstdQ.ToArray(), rstdQRef, 1e-3);
        check.Compare("rstd k", dRstdK.ToArray(), rstdKRef, 1e-3);
        return check;
    }
}

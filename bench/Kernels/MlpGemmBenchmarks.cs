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
/// <item>fc: <see cref="Fc"/> = act(r ⊙ x·W_fcᵀ) in one kernel (r the MLP norm's rstd; GELU also writes u) against
/// <see cref="FcCublas"/> = a cuBLASLt GEMM writing u, then the activation pass of kernels/mlp_activation.cu.</item>
/// <item>proj gradient: <see cref="ProjGradient"/> = r ⊙ (g·W_proj) ⊙ act'(kept) in one kernel (kept: s for relu², u for GELU)
/// against <see cref="ProjGradientCublas"/> = a cuBLASLt GEMM writing ds, then the activation's backward pass.</item>
/// </list>
/// Checked on a slice of the rows (1024 at width 512, down to 128 at width 2048: the fp64 products cost N·C·F) with the full
/// width and hidden size. Tensor-core work (2·N·C·F FLOPs, the same for both ways). Run: <c>bench --filter '*MlpGemmBenchmarks*'</c>.
/// </summary>
public class MlpGemmBenchmarks : TokenKernelBenchmark
{
    private MlpGemm _mlp = null!;
    private MlpActivation _activation = null!;
    private Linear _linear = null!;
    private ulong _x, _wFc, _rowScale, _s, _u, _g, _wProj, _du, _ds;

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
        _mlp.Fc(Act, _x, _wFc, N, C, F, _s, Stream, _rowScale, Gelu ? _u : 0);
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

    // ---- checks ----

    private KernelCheck CheckFc(bool fused)
    {
        int n = CheckRows, c = C, f = F;
        var check = new KernelCheck(fused ? $"mlp_fc_{(Gelu ? "gelu" : "relu_square")}" : $"cuBLASLt GEMM + {Act.Name()}_forward",
            401, $"{n} rows of {c} → {f}{(fused ? ", rows scaled" : "")}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c);
        var (wBits, w) = HostRandom.Bf16Values(r, (long)f * c, 0.2);
        var scale = HostRandom.Floats(r, n, 0.5, 2);
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
        var dScale = s.Upload(scale, "row scale");
        var dS = s.Poisoned<ushort>((long)n * f, "s");
        var dU = s.Poisoned<ushort>((long)n * f, "u");
        RunForCheck(() =>
        {
            if (fused)
            {
                _mlp.Fc(Act, dX.Pointer, dW.Pointer, n, c, f, dS.Pointer, Stream, dScale.Pointer, Gelu ? dU.Pointer : 0);
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
}

using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/rmsnorm.cu over N = B·T rows of the model width C, each call as the model makes it: the norm alone (with y, or rstd
/// only before the fused MLP GEMM), the residual mix fused with the norm, the norm applied from a kept rstd, the backward in its
/// three uses (the final norm: bf16 dy, the bf16 residual gradient written; the MLP norm: bf16 dy pre-scaled by rstd,
/// accumulated into the residual gradient; the embedding norm: bf16, in place over the x0 gradient), the residual mix backward
/// alone (rows wider than 1024), and the fused norm + mix backward (m recomputed from x and x0; with m kept on rows wider than
/// 1024, where it takes the two kernels). Checked on 9001 rows
/// (more than the fused backward's bounded grid has warps) of the same width. Memory-bound: TB/s against the copy.
/// Run: <c>bench --filter '*RmsNormBenchmarks*'</c>.
/// </summary>
public class RmsNormBenchmarks : TokenKernelBenchmark
{
    private const int CheckRows = 9001, Layer = 1, Depth = 2;
    private static readonly float[] ResidLambdas = [1.0f, 0.93f], X0Lambdas = [0.1f, -0.27f];

    private RmsNorm _norm = null!;
    private ulong _x, _x0, _y, _m, _rstd, _dy, _g, _dx0, _rl, _xl, _drl, _dxl;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "width1024", "width2048");

    private int N => B * T;

    protected override void Open() => _norm = new RmsNorm(KernelFiles);

    // ---- forward ----

    [GlobalSetup(Target = nameof(Forward))]
    public void SetupForward() => Prepare(nameof(Forward), () => CheckForward(writeY: true), () =>
    {
        AllocateForward();
        return KernelWork.RmsNormForward(N, C, writesY: true);
    });

    [Benchmark, BenchmarkCategory("forward")]
    public void Forward()
    {
        Begin();
        _norm.Forward(_x, N, C, _y, _rstd, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(ForwardRstdOnly))]
    public void SetupForwardRstdOnly() => Prepare(nameof(ForwardRstdOnly), () => CheckForward(writeY: false), () =>
    {
        AllocateForward();
        return KernelWork.RmsNormForward(N, C, writesY: false);
    });

    /// <summary>rstd alone: the MLP norm, which the fused fc GEMM applies as a row scale.</summary>
    [Benchmark, BenchmarkCategory("forward")]
    public void ForwardRstdOnly()
    {
        Begin();
        _norm.Forward(_x, N, C, 0, _rstd, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(MixForward))]
    public void SetupMixForward() => Prepare(nameof(MixForward), CheckMixForward, () =>
    {
        AllocateForward();
        AllocateLambdas();
        _x0 = Buffers.RandomBf16((long)N * C, 12, 2, "x0").Pointer;
        _m = Buffers.Allocate<ushort>((long)N * C, "m").Pointer;
        return KernelWork.ResidualMixRmsNormForward(N, C);
    });

    [Benchmark, BenchmarkCategory("forward")]
    public void MixForward()
    {
        Begin();
        _norm.MixForward(_x, _x0, _rl, _xl, Layer, N, C, _m, _y, _rstd, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(Apply))]
    public void SetupApply() => Prepare(nameof(Apply), CheckApply, () =>
    {
        AllocateForward();
        return KernelWork.RmsNormApply(N, C);
    });

    /// <summary>A norm's output recomputed from its kept rstd.</summary>
    [Benchmark, BenchmarkCategory("forward")]
    public void Apply()
    {
        Begin();
        _norm.Apply(_x, _rstd, N, C, _y, Stream);
        End();
    }

    // ---- backward ----

    [GlobalSetup(Target = nameof(Backward))]
    public void SetupBackward() => Prepare(nameof(Backward), CheckBackward, () =>
    {
        AllocateBackward(ElementType.Bf16);
        return KernelWork.RmsNormBackward(N, C, dyBf16: true, dxBf16: true, accumulate: false);
    });

    /// <summary>The final norm's backward: bf16 dy (from the lm_head GEMM), the bf16 residual gradient written.</summary>
    [Benchmark, BenchmarkCategory("backward")]
    public void Backward()
    {
        Begin();
        _norm.Backward(_x, _rstd, _dy, N, C, _g, accumulate: false, Stream, ElementType.Bf16, ElementType.Bf16);
        End();
    }

    [GlobalSetup(Target = nameof(BackwardScaledBf16))]
    public void SetupBackwardScaledBf16() => Prepare(nameof(BackwardScaledBf16), CheckBackwardScaledBf16, () =>
    {
        AllocateBackward(ElementType.Bf16);
        return KernelWork.RmsNormBackward(N, C, dyBf16: true, dxBf16: true, accumulate: true);
    });

    /// <summary>The MLP norm's backward: a bf16 dy pre-scaled by rstd (from the fused proj-gradient GEMM), accumulated into the
    /// bf16 residual gradient.</summary>
    [Benchmark, BenchmarkCategory("backward")]
    public void BackwardScaledBf16()
    {
        Begin();
        _norm.Backward(_x, _rstd, _dy, N, C, _g, accumulate: true, Stream, ElementType.Bf16, ElementType.Bf16, dyScaledByRstd: true);
        End();
    }

    [GlobalSetup(Target = nameof(BackwardInPlace))]
    public void SetupBackwardInPlace() => Prepare(nameof(BackwardInPlace), CheckBackwardInPlace, () =>
    {
        AllocateBackward(ElementType.Bf16);
        return KernelWork.RmsNormBackward(N, C, dyBf16: true, dxBf16: true, accumulate: false);
    });

    /// <summary>The embedding norm's backward: bf16, dx written over dy (the x0 gradient).</summary>
    [Benchmark, BenchmarkCategory("backward")]
    public void BackwardInPlace()
    {
        Begin();
        _norm.Backward(_x, _rstd, _dx0, N, C, _dx0, accumulate: false, Stream, ElementType.Bf16, ElementType.Bf16);
        End();
    }

    [GlobalSetup(Target = nameof(MixBackward))]
    public void SetupMixBackward() => Prepare(nameof(MixBackward), CheckMixBackward, () =>
    {
        AllocateBackward(ElementType.F32);
        AllocateMixBackward();
        return KernelWork.ResidualMixBackward(N, C, fold: false);
    });

    /// <summary>The residual mix's backward alone (the model's path for rows wider than 1024); dx over g.</summary>
    [Benchmark, BenchmarkCategory("backward")]
    public void MixBackward()
    {
        Begin();
        _norm.MixBackward(_g, _x, _x0, _rl, _xl, Layer, (long)N * C, _g, _dx0, _drl, _dxl, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(NormMixBackward))]
    public void SetupNormMixBackward() => Prepare(nameof(NormMixBackward), CheckNormMixBackward, () =>
    {
        AllocateBackward(ElementType.Bf16);
        AllocateMixBackward();
        _m = KeepsMix(C) ? Buffers.RandomBf16((long)N * C, 16, 2, "m").Pointer : 0;
        return C <= RmsNorm.FusedBackwardMaxWidth
            ? KernelWork.RmsNormMixBackward(N, C, keptMix: false, fold: false)
            : new KernelWork(0, KernelWork.RmsNormBackward(N, C, dyBf16: true, dxBf16: true, accumulate: true).Bytes
                + KernelWork.ResidualMixBackward(N, C, fold: false).Bytes);
    });

    /// <summary>A layer's first norm and residual mix backward in one pass (m recomputed), as the model runs it.</summary>
    [Benchmark, BenchmarkCategory("backward")]
    public void NormMixBackward()
    {
        Begin();
        _norm.NormMixBackward(_m, _rstd, _dy, _g, _x, _x0, _rl, _xl, Layer, N, C, _dx0, _drl, _dxl, Stream);
        End();
    }

    // ---- timing buffers ----

    private void AllocateForward()
    {
        _x = Buffers.RandomBf16((long)N * C, 11, 3, "x").Pointer;
        _y = Buffers.Allocate<ushort>((long)N * C, "y").Pointer;
        _rstd = Buffers.RandomF32(N, 13, 1, "rstd").Pointer;
    }

    private void AllocateBackward(ElementType dyType)
    {
        AllocateForward();
        _dy = dyType == ElementType.Bf16 ? Buffers.RandomBf16((long)N * C, 14, 1, "dy (bf16)").Pointer : Buffers.RandomF32((long)N * C, 14, 1, "dy").Pointer;
        _g = Buffers.RandomBf16((long)N * C, 15, 1, "residual gradient (bf16)").Pointer;
        _dx0 = Buffers.RandomBf16((long)N * C, 17, 1, "dx0 (bf16)").Pointer;
    }

    private void AllocateMixBackward()
    {
        AllocateLambdas();
        _x0 = Buffers.RandomBf16((long)N * C, 12, 2, "x0").Pointer;
    }

    private void AllocateLambdas()
    {
        _rl = Buffers.Upload(ResidLambdas, "resid_lambdas").Pointer;
        _xl = Buffers.Upload(X0Lambdas, "x0_lambdas").Pointer;
        _drl = Buffers.Upload(new float[Depth], "d resid_lambdas").Pointer;
        _dxl = Buffers.Upload(new float[Depth], "d x0_lambdas").Pointer;
    }

    /// <summary>The model keeps m only where the fused backward cannot recompute it.</summary>
    private static bool KeepsMix(int c) => c > RmsNorm.FusedBackwardMaxWidth;

    // ---- checks: 9001 rows of C against CpuOps ----

    private KernelCheck CheckForward(bool writeY)
    {
        int n = CheckRows, c = C;
        var check = new KernelCheck(writeY ? "rmsnorm_forward" : "rmsnorm_forward (rstd only)", 201, $"{n} rows of {c}");
        var (xBits, x) = HostRandom.Bf16Values(new Random(check.Seed), (long)n * c, 3);
        var (yRef, rstdRef) = CpuOps.RmsNorm(x, n, c);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dY = s.Poisoned<ushort>((long)n * c, "y");
        var dRstd = s.Poisoned<float>(n, "rstd");
        RunForCheck(() => _norm.Forward(dX.Pointer, n, c, writeY ? dY.Pointer : 0, dRstd.Pointer, Stream));
        if (writeY)
            check.CompareBf16("y", dY.ToArray(), yRef, 1e-2);
        check.Compare("rstd", dRstd.ToArray(), rstdRef, 1e-5);
        return check;
    }

    private KernelCheck CheckMixForward()
    {
        int n = CheckRows, c = C;
        var check = new KernelCheck("residual_mix_rmsnorm_forward", 202, $"{n} rows of {c}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c, 2);
        var (x0Bits, x0) = HostRandom.Bf16Values(r, (long)n * c, 2);
        var m = Mix(x, x0);
        var (hRef, rstdRef) = CpuOps.RmsNorm(m, n, c);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dX0 = s.Upload(x0Bits, "x0");
        var dRl = s.Upload(ResidLambdas, "resid_lambdas");
        var dXl = s.Upload(X0Lambdas, "x0_lambdas");
        var dM = s.Poisoned<ushort>((long)n * c, "m");
        var dH = s.Poisoned<ushort>((long)n * c, "h");
        var dRstd = s.Poisoned<float>(n, "rstd");
        RunForCheck(() => _norm.MixForward(dX.Pointer, dX0.Pointer, dRl.Pointer, dXl.Pointer, Layer, n, c, dM.Pointer, dH.Pointer, dRstd.Pointer, Stream));
        check.CompareBf16("m", dM.ToArray(), m, 1e-2);
        check.CompareBf16("h", dH.ToArray(), hRef, 1e-2);
        check.Compare("rstd", dRstd.ToArray(), rstdRef, 1e-4);
        return check;
    }

    private KernelCheck CheckApply()
    {
        int n = CheckRows, c = C;
        var check = new KernelCheck("rmsnorm_apply", 203, $"{n} rows of {c}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c, 3);
        var (yRef, rstdRef) = CpuOps.RmsNorm(x, n, c);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dRstd = s.Upload(Array.ConvertAll(rstdRef, v => (float)v), "rstd");
        var dY = s.Poisoned<ushort>((long)n * c, "y");
        RunForCheck(() => _norm.Apply(dX.Pointer, dRstd.Pointer, n, c, dY.Pointer, Stream));
        check.CompareBf16("y", dY.ToArray(), yRef, 1e-2);
        return check;
    }

    private KernelCheck CheckBackward()
    {
        int n = CheckRows, c = C;
        var check = new KernelCheck("rmsnorm_backward", 204, $"{n} rows of {c}, bf16 dy, bf16 dx");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c, 3);
        var (dyBits, dy) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var (_, rstdRef) = CpuOps.RmsNorm(x, n, c);
        var dxRef = CpuOps.RmsNormBackward(x, dy, n, c);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dRstd = s.Upload(Array.ConvertAll(rstdRef, v => (float)v), "rstd");
        var dDy = s.Upload(dyBits, "dy (bf16)");
        var dDx = s.Poisoned<ushort>((long)n * c, "dx (bf16)");
        RunForCheck(() => _norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDx.Pointer, accumulate: false, Stream, ElementType.Bf16,
            ElementType.Bf16));
        check.CompareBf16("dx", dDx.ToArray(), dxRef, 1e-2);
        return check;
    }

    private KernelCheck CheckBackwardScaledBf16()
    {
        int n = CheckRows, c = C;
        var check = new KernelCheck("rmsnorm_backward", 205, $"{n} rows of {c}, bf16 dy pre-scaled by rstd, accumulated into bf16 dx");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c, 3);
        var raw = HostRandom.Floats(r, (long)n * c);
        var (startBits, start) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var (_, rstdRef) = CpuOps.RmsNorm(x, n, c);
        // What the fused proj-gradient GEMM hands over: bf16(rstd·dy); the reference's dy is that value over rstd.
        var scaledBits = new ushort[(long)n * c];
        var dy = new double[(long)n * c];
        for (long i = 0; i < scaledBits.Length; i++)
        {
            scaledBits[i] = Bf16.FromFloat((float)(raw[i] * rstdRef[i / c]));
            dy[i] = Bf16.ToFloat(scaledBits[i]) / rstdRef[i / c];
        }
        var dxRef = CpuOps.RmsNormBackward(x, dy, n, c);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dRstd = s.Upload(Array.ConvertAll(rstdRef, v => (float)v), "rstd");
        var dDy = s.Upload(scaledBits, "rstd·dy (bf16)");
        var dDx = s.Upload(startBits, "dx (bf16, accumulated into)");
        RunForCheck(() => _norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDx.Pointer, accumulate: true, Stream, ElementType.Bf16,
            ElementType.Bf16, dyScaledByRstd: true));
        var expected = new double[dxRef.Length];
        for (long i = 0; i < expected.Length; i++)
            expected[i] = start[i] + dxRef[i];
        check.CompareBf16("dx", dDx.ToArray(), expected, 1e-2);
        return check;
    }

    private KernelCheck CheckBackwardInPlace()
    {
        int n = CheckRows, c = C;
        var check = new KernelCheck("rmsnorm_backward", 206, $"{n} rows of {c}, bf16, dx written over dy");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c, 3);
        var (dyBits, dy) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var (_, rstdRef) = CpuOps.RmsNorm(x, n, c);
        var dxRef = CpuOps.RmsNormBackward(x, dy, n, c);
        using var s = new DeviceScratch(Device);
        var dX = s.Upload(xBits, "x");
        var dRstd = s.Upload(Array.ConvertAll(rstdRef, v => (float)v), "rstd");
        var dDy = s.Upload(dyBits, "dy, then dx (bf16)");
        RunForCheck(() => _norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDy.Pointer, accumulate: false, Stream, ElementType.Bf16,
            ElementType.Bf16));
        check.CompareBf16("dx", dDy.ToArray(), dxRef, 1e-2);
        return check;
    }

    private KernelCheck CheckMixBackward()
    {
        int n = CheckRows, c = C;
        var check = new KernelCheck("residual_mix_backward", 207, $"{n} rows of {c}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c, 2);
        var (x0Bits, x0) = HostRandom.Bf16Values(r, (long)n * c, 2);
        var (gBits, g) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var (dx0StartBits, dx0Start) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var dxRef = new double[(long)n * c];
        var dx0Ref = new double[(long)n * c];
        double sumRl = 0, sumXl = 0;
        for (long i = 0; i < dxRef.Length; i++)
        {
            sumRl += g[i] * x[i];
            sumXl += g[i] * x0[i];
            dxRef[i] = ResidLambdas[Layer] * g[i];
            dx0Ref[i] = dx0Start[i] + X0Lambdas[Layer] * g[i];
        }
        using var s = new DeviceScratch(Device);
        var dG = s.Upload(gBits, "g (bf16; dx over it)");
        var dX = s.Upload(xBits, "x");
        var dX0 = s.Upload(x0Bits, "x0");
        var dRl = s.Upload(ResidLambdas, "resid_lambdas");
        var dXl = s.Upload(X0Lambdas, "x0_lambdas");
        var dDx0 = s.Upload(dx0StartBits, "dx0 (bf16)");
        var dDrl = s.Upload(new float[Depth], "d resid_lambdas");
        var dDxl = s.Upload(new float[Depth], "d x0_lambdas");
        RunForCheck(() => _norm.MixBackward(dG.Pointer, dX.Pointer, dX0.Pointer, dRl.Pointer, dXl.Pointer, Layer, (long)n * c, dG.Pointer, dDx0.Pointer,
            dDrl.Pointer, dDxl.Pointer, Stream));
        check.CompareBf16("dx", dG.ToArray(), dxRef, 1e-2);
        check.CompareIncrement("dx0 (bf16)", Bf16.ToFloat(dDx0.ToArray()), Array.ConvertAll(dx0Start, v => (float)v), Increment(dx0Ref, dx0Start), 2e-2);
        check.Compare("d resid_lambda", [dDrl.ToArray()[Layer]], [sumRl], 1e-4);
        check.Compare("d x0_lambda", [dDxl.ToArray()[Layer]], [sumXl], 1e-4);
        return check;
    }

    private KernelCheck CheckNormMixBackward()
    {
        int n = CheckRows, c = C;
        bool keepMix = KeepsMix(c);
        var check = new KernelCheck(keepMix ? "rmsnorm_backward + residual_mix_backward (rows wider than 1024)" : "rmsnorm_mix_backward",
            208, $"{n} rows of {c}, m {(keepMix ? "kept" : "recomputed")}");
        var r = new Random(check.Seed);
        var (xBits, x) = HostRandom.Bf16Values(r, (long)n * c, 2);
        var (x0Bits, x0) = HostRandom.Bf16Values(r, (long)n * c, 2);
        var (dyBits, dy) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var (gStartBits, gStart) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var (dx0StartBits, dx0Start) = HostRandom.Bf16Values(r, (long)n * c, 1);
        var m = Mix(x, x0);
        var (_, rstdRef) = CpuOps.RmsNorm(m, n, c);
        var dm = CpuOps.RmsNormBackward(m, dy, n, c);
        var gRef = new double[(long)n * c];
        var dx0Ref = new double[(long)n * c];
        double sumRl = 0, sumXl = 0;
        for (long i = 0; i < gRef.Length; i++)
        {
            double gt = gStart[i] + dm[i];
            sumRl += gt * x[i];
            sumXl += gt * x0[i];
            gRef[i] = ResidLambdas[Layer] * gt;
            dx0Ref[i] = dx0Start[i] + X0Lambdas[Layer] * gt;
        }
        using var s = new DeviceScratch(Device);
        var dM = s.Upload(Array.ConvertAll(m, v => Bf16.FromFloat((float)v)), "m");
        var dRstd = s.Upload(Array.ConvertAll(rstdRef, v => (float)v), "rstd");
        var dDy = s.Upload(dyBits, "dy (bf16)");
        var dG = s.Upload(gStartBits, "g (bf16)");
        var dX = s.Upload(xBits, "x");
        var dX0 = s.Upload(x0Bits, "x0");
        var dRl = s.Upload(ResidLambdas, "resid_lambdas");
        var dXl = s.Upload(X0Lambdas, "x0_lambdas");
        var dDx0 = s.Upload(dx0StartBits, "dx0 (bf16)");
        var dDrl = s.Upload(new float[Depth], "d resid_lambdas");
        var dDxl = s.Upload(new float[Depth], "d x0_lambdas");
        RunForCheck(() => _norm.NormMixBackward(keepMix ? dM.Pointer : 0, dRstd.Pointer, dDy.Pointer, dG.Pointer, dX.Pointer, dX0.Pointer, dRl.Pointer,
            dXl.Pointer, Layer, n, c, dDx0.Pointer, dDrl.Pointer, dDxl.Pointer, Stream));
        check.CompareBf16("g", dG.ToArray(), gRef, 1e-2);
        // Rows wider than 1024 take two kernels, which round gt to bf16 between them.
        double fromGt = keepMix ? 1e-2 : 1e-4;
        check.CompareIncrement("dx0 (bf16)", Bf16.ToFloat(dDx0.ToArray()), Array.ConvertAll(dx0Start, v => (float)v), Increment(dx0Ref, dx0Start), 2e-2);
        check.Compare("d resid_lambda", [dDrl.ToArray()[Layer]], [sumRl], fromGt);
        check.Compare("d x0_lambda", [dDxl.ToArray()[Layer]], [sumXl], fromGt);
        return check;
    }

    /// <summary>expected − start, element by element: what a kernel that adds to a bf16 start should have added.</summary>
    private static double[] Increment(double[] expected, double[] start)
    {
        var increment = new double[expected.Length];
        for (long i = 0; i < increment.Length; i++)
            increment[i] = expected[i] - start[i];
        return increment;
    }

    /// <summary>m = bf16(rl·x + xl·x0) of the layer (the residual stream is bf16).</summary>
    private static double[] Mix(double[] x, double[] x0)
    {
        var m = new double[x.Length];
        for (long i = 0; i < m.Length; i++)
            m[i] = Bf16.Round(MathF.FusedMultiplyAdd(ResidLambdas[Layer], (float)x[i], X0Lambdas[Layer] * (float)x0[i]));
        return m;
    }
}

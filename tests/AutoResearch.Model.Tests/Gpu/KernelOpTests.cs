using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// Each row-wise/element-wise kernel against its fp64 reference on fresh random inputs (bf16-rounded where the kernel reads
/// bf16), outputs poisoned with NaN first. Tolerances: ~1e-2 relative for bf16 outputs, 1e-4 for fp32 outputs of fp32 math.
/// </summary>
[Trait("Category", "GPU")]
public class KernelOpTests
{
    private static CudaDevice Device => TestGpu.Device;

    private static CudaStream Stream => TestGpu.Stream;

    private static DeviceBuffer<T> Upload<T>(T[] data, string owner) where T : unmanaged
    {
        var buffer = Device.Allocate<T>(data.Length, owner);
        buffer.CopyFrom(data);
        return buffer;
    }

    private static DeviceBuffer<T> Poisoned<T>(long count, string owner) where T : unmanaged
    {
        var buffer = Device.Allocate<T>(count, owner);
        buffer.FillBytes(0xFF);
        return buffer;
    }

    private static float[] AsFloat(DeviceBuffer<ushort> b) => Bf16.ToFloat(b.ToArray());

    /// <summary>A bf16 sum of a bf16 start and a kernel's share: the share it added, (result − start), against (expected − start),
    /// to 2e-2 (two bf16 roundings of a value larger than the share), so that an error in the share is not hidden by the start.</summary>
    private static void AssertIncrement(string what, float[] actual, double[] start, double[] expected, int seed)
        => Numerics.AssertClose(what + " (what the kernel added)", actual.Select((v, i) => (float)(v - start[i])).ToArray(),
            expected.Select((v, i) => v - start[i]).ToArray(), 2e-2, seed);

    [GpuTheory]
    [InlineData(4096, 512)]    // the narrow backward kernel, both chunks full
    [InlineData(33, 264)]      // the narrow kernel, its second chunk in one lane only
    [InlineData(1001, 2048)]   // the general kernel's two-pass loop
    [InlineData(37, 64)]
    [InlineData(9, 1000)]      // the general kernel, rows in registers
    [InlineData(11, 520)]      // just past the narrow kernel's width
    public void RmsNorm_forward_and_backward_match_reference(int n, int c)
    {
        int seed = n * 31 + c;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, (long)n * c, 3);
        var dy = Numerics.RandomUniform(r, (long)n * c);
        var dyD = dy.Select(v => (double)v).ToArray();
        var (yRef, rstdRef) = CpuOps.RmsNorm(x, n, c);
        var dxRef = CpuOps.RmsNormBackward(x, dyD, n, c);

        var norm = new RmsNorm(TestGpu.Kernels);
        using var dX = Upload(xBits, "x");
        using var dY = Poisoned<ushort>((long)n * c, "y");
        using var dRstd = Poisoned<float>(n, "rstd");
        using var dDy = Upload(dy, "dy");
        using var dDx = Poisoned<float>((long)n * c, "dx");
        norm.Forward(dX.Pointer, n, c, dY.Pointer, dRstd.Pointer, Stream);
        using var dDxBf16 = Poisoned<ushort>((long)n * c, "dx bf16");
        using var dYAgain = Poisoned<ushort>((long)n * c, "y recomputed");
        norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDx.Pointer, accumulate: false, Stream);
        norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDxBf16.Pointer, accumulate: false, Stream, dxType: ElementType.Bf16);
        norm.Apply(dX.Pointer, dRstd.Pointer, n, c, dYAgain.Pointer, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("y", AsFloat(dY), yRef, 1e-2, seed);
        Numerics.AssertClose("rstd", dRstd.ToArray(), rstdRef, 1e-5, seed);
        Numerics.AssertClose("dx", dDx.ToArray(), dxRef, 1e-4, seed);
        Numerics.AssertClose("dx bf16", AsFloat(dDxBf16), dxRef, 1e-2, seed);
        Assert.Equal(dY.ToArray(), dYAgain.ToArray());

        // accumulate = true adds onto what is there.
        norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDx.Pointer, accumulate: true, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("dx accumulated", dDx.ToArray(), dxRef.Select(v => 2 * v).ToArray(), 1e-4, seed);
    }

    [GpuTheory]
    [InlineData(1001, 512)]
    [InlineData(9, 1032)]
    public void RmsNorm_backward_reads_a_bf16_gradient_and_accumulates_into_fp32_or_bf16(int n, int c)
    {
        int seed = n * 7 + c;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, (long)n * c, 3);
        var (dyBits, dy) = Numerics.RandomBf16(r, (long)n * c, 1);
        var (_, rstdRef) = CpuOps.RmsNorm(x, n, c);
        var dxRef = CpuOps.RmsNormBackward(x, dy, n, c);
        var start = Numerics.RandomUniform(r, (long)n * c);
        var (startBf16Bits, startBf16) = Numerics.RandomBf16(r, (long)n * c, 1);

        var norm = new RmsNorm(TestGpu.Kernels);
        using var dX = Upload(xBits, "x");
        using var dRstd = Upload(rstdRef.Select(v => (float)v).ToArray(), "rstd");
        using var dDy = Upload(dyBits, "dy bf16");
        using var dDx = Upload(start, "dx");
        using var dDxBf16 = Upload(startBf16Bits, "dx bf16");
        norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDx.Pointer, accumulate: true, Stream, ElementType.Bf16);
        // The residual gradient of the model: bf16 in and out, the sum in fp32.
        norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDxBf16.Pointer, accumulate: true, Stream, ElementType.Bf16, ElementType.Bf16);
        Stream.Synchronize();
        Numerics.AssertClose("dx", dDx.ToArray(), dxRef.Select((v, i) => v + start[i]).ToArray(), 1e-4, seed);
        Numerics.AssertClose("dx bf16", AsFloat(dDxBf16), dxRef.Select((v, i) => v + startBf16[i]).ToArray(), 1e-2, seed);
    }

    [GpuTheory]
    [InlineData(1001, 512)]
    [InlineData(7, 1040)]
    public void RmsNorm_takes_a_gradient_prescaled_by_rstd_and_writes_rstd_alone(int n, int c)
    {
        int seed = n * 11 + c;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, (long)n * c, 3);
        var dy = Numerics.RandomUniform(r, (long)n * c);
        var (_, rstdRef) = CpuOps.RmsNorm(x, n, c);
        var dxRef = CpuOps.RmsNormBackward(x, dy.Select(v => (double)v).ToArray(), n, c);
        // What a GEMM that applied the norm as a row scale hands back: rstd·dy.
        var scaled = dy.Select((v, i) => (float)(v * rstdRef[i / c])).ToArray();

        var norm = new RmsNorm(TestGpu.Kernels);
        using var dX = Upload(xBits, "x");
        using var dRstd = Poisoned<float>(n, "rstd");
        using var dDy = Upload(scaled, "rstd·dy");
        using var dDx = Poisoned<float>((long)n * c, "dx");
        norm.Forward(dX.Pointer, n, c, 0, dRstd.Pointer, Stream);
        norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDx.Pointer, accumulate: false, Stream, dyScaledByRstd: true);
        Stream.Synchronize();
        Numerics.AssertClose("rstd", dRstd.ToArray(), rstdRef, 1e-5, seed);
        Numerics.AssertClose("dx", dDx.ToArray(), dxRef, 1e-4, seed);
    }

    [GpuTheory]
    [InlineData(777, 512)]
    [InlineData(5, 1040)]
    public void RmsNorm_backward_runs_in_place_on_its_gradient(int n, int c)
    {
        int seed = n * 13 + c;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, (long)n * c, 3);
        var dy = Numerics.RandomUniform(r, (long)n * c);
        var (dyBits, dyBf16) = Numerics.RandomBf16(r, (long)n * c, 1);
        var (_, rstdRef) = CpuOps.RmsNorm(x, n, c);
        var dxRef = CpuOps.RmsNormBackward(x, dy.Select(v => (double)v).ToArray(), n, c);
        var dxRefBf16 = CpuOps.RmsNormBackward(x, dyBf16, n, c);

        var norm = new RmsNorm(TestGpu.Kernels);
        using var dX = Upload(xBits, "x");
        using var dRstd = Upload(rstdRef.Select(v => (float)v).ToArray(), "rstd");
        using var dDy = Upload(dy, "dy, then dx");
        using var dDyBf16 = Upload(dyBits, "dy, then dx (bf16)");
        norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDy.Pointer, accumulate: false, Stream);
        // The embedding's norm backward in the model: dy is the bf16 x0 gradient, replaced by dx.
        norm.Backward(dX.Pointer, dRstd.Pointer, dDyBf16.Pointer, n, c, dDyBf16.Pointer, accumulate: false, Stream, ElementType.Bf16, ElementType.Bf16);
        Stream.Synchronize();
        Numerics.AssertClose("dx", dDy.ToArray(), dxRef, 1e-4, seed);
        Numerics.AssertClose("dx (bf16)", AsFloat(dDyBf16), dxRefBf16, 1e-2, seed);
        Assert.Throws<ArgumentException>(() => norm.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDy.Pointer, accumulate: false, Stream,
            dxType: ElementType.Bf16));
    }

    [GpuTheory]
    [InlineData(false)]
    [InlineData(true)] // layer 0: the whole gradient joins x0's
    public void Residual_mix_rmsnorm_forward_and_mix_backward_match_reference(bool fold)
    {
        const int n = 2048, c = 512, depth = 3, layer = 1, seed = 77;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, n * c, 2);
        var (x0Bits, x0) = Numerics.RandomBf16(r, n * c, 2);
        float[] rl = [1.0f, 0.9f, 1.1f], xl = [0.1f, 0.25f, -0.05f];
        var m = new double[n * c];
        for (int i = 0; i < m.Length; i++)
            m[i] = Bf16.Round((float)(rl[layer] * x[i] + xl[layer] * x0[i])); // the residual stream is bf16
        var (hRef, rstdRef) = CpuOps.RmsNorm(m, n, c);

        var norm = new RmsNorm(TestGpu.Kernels);
        using var dX = Upload(xBits, "x");
        using var dX0 = Upload(x0Bits, "x0");
        using var dRl = Upload(rl, "resid_lambdas");
        using var dXl = Upload(xl, "x0_lambdas");
        using var dM = Poisoned<ushort>(n * c, "m");
        using var dH = Poisoned<ushort>(n * c, "h");
        using var dRstd = Poisoned<float>(n, "rstd");
        norm.MixForward(dX.Pointer, dX0.Pointer, dRl.Pointer, dXl.Pointer, layer, n, c, dM.Pointer, dH.Pointer, dRstd.Pointer, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("m", AsFloat(dM), m, 1e-2, seed);
        Numerics.AssertClose("h", AsFloat(dH), hRef, 1e-2, seed);
        Numerics.AssertClose("rstd", dRstd.ToArray(), rstdRef, 1e-3, seed);

        var (gBits, g) = Numerics.RandomBf16(r, n * c, 1);
        var (dx0StartBits, dx0Start) = Numerics.RandomBf16(r, n * c, 1);
        using var dG = Upload(gBits, "g");
        using var dDx0 = Upload(dx0StartBits, "dx0 (bf16)");
        using var dDrl = Upload(new float[depth], "d resid_lambdas");
        using var dDxl = Upload(new float[depth], "d x0_lambdas");
        // dx aliases g, as in the model; none with fold.
        norm.MixBackward(dG.Pointer, dX.Pointer, dX0.Pointer, dRl.Pointer, dXl.Pointer, layer, (long)n * c, fold ? 0 : dG.Pointer, dDx0.Pointer,
            dDrl.Pointer, dDxl.Pointer, Stream);
        Stream.Synchronize();
        double sumRl = 0, sumXl = 0;
        var dxRef = new double[n * c];
        var dx0Ref = new double[n * c];
        for (int i = 0; i < n * c; i++)
        {
            sumRl += g[i] * x[i];
            sumXl += g[i] * x0[i];
            dxRef[i] = rl[layer] * g[i];
            dx0Ref[i] = dx0Start[i] + xl[layer] * g[i] + (fold ? dxRef[i] : 0);
        }
        if (fold)
            Assert.Equal(gBits, dG.ToArray()); // g left as it was
        else
            Numerics.AssertClose("dx", AsFloat(dG), dxRef, 1e-2, seed);
        AssertIncrement("dx0", AsFloat(dDx0), dx0Start, dx0Ref, seed);
        var drl = dDrl.ToArray();
        var dxl = dDxl.ToArray();
        Numerics.AssertClose("d resid_lambda", [drl[layer]], [sumRl], 1e-4, seed);
        Numerics.AssertClose("d x0_lambda", [dxl[layer]], [sumXl], 1e-4, seed);
        Assert.Equal(0f, drl[0]);
        Assert.Equal(0f, dxl[2]);
    }

    [GpuTheory]
    [InlineData(2049, 512, false)]
    [InlineData(2049, 512, true)]
    [InlineData(333, 1024, false)]
    [InlineData(40, 136, true)]
    [InlineData(7, 1032, false)] // wider than the fused kernel takes: the two-kernel path
    [InlineData(7, 1032, true)]
    public void Fused_norm_and_mix_backward_matches_reference(int n, int c, bool fold)
    {
        const int layer = 2;
        int seed = 900 + n + c;
        var r = new Random(seed);
        var (mBits, m) = Numerics.RandomBf16(r, (long)n * c, 2);
        var (xBits, x) = Numerics.RandomBf16(r, (long)n * c, 2);
        var (x0Bits, x0) = Numerics.RandomBf16(r, (long)n * c, 2);
        var (dyBits, dy) = Numerics.RandomBf16(r, (long)n * c, 1);
        var (gStartBits, gStart) = Numerics.RandomBf16(r, (long)n * c, 1);
        var (dx0StartBits, dx0Start) = Numerics.RandomBf16(r, n * c, 1);
        float[] rl = [1.0f, 0.9f, 1.15f], xl = [0.1f, 0.25f, -0.3f];
        var (_, rstdRef) = CpuOps.RmsNorm(m, n, c);
        var dm = CpuOps.RmsNormBackward(m, dy, n, c);
        double sumRl = 0, sumXl = 0;
        var gRef = new double[n * c];
        var dx0Ref = new double[n * c];
        for (int i = 0; i < n * c; i++)
        {
            double gt = gStart[i] + dm[i];
            sumRl += gt * x[i];
            sumXl += gt * x0[i];
            gRef[i] = rl[layer] * gt;
            dx0Ref[i] = dx0Start[i] + xl[layer] * gt + (fold ? gRef[i] : 0);
        }

        var norm = new RmsNorm(TestGpu.Kernels);
        using var dM = Upload(mBits, "m");
        using var dRstd = Upload(rstdRef.Select(v => (float)v).ToArray(), "rstd");
        using var dDy = Upload(dyBits, "dy (bf16)");
        using var dG = Upload(gStartBits, "g");
        using var dX = Upload(xBits, "x");
        using var dX0 = Upload(x0Bits, "x0");
        using var dRl = Upload(rl, "resid_lambdas");
        using var dXl = Upload(xl, "x0_lambdas");
        using var dDx0 = Upload(dx0StartBits, "dx0 (bf16)");
        float[] lambdaStart = [0.5f, -0.25f, 0.125f];
        using var dDrl = Upload(lambdaStart, "d resid_lambdas");
        using var dDxl = Upload(lambdaStart, "d x0_lambdas");
        norm.NormMixBackward(dM.Pointer, dRstd.Pointer, dDy.Pointer, dG.Pointer, dX.Pointer, dX0.Pointer, dRl.Pointer, dXl.Pointer, layer, n, c,
            dDx0.Pointer, dDrl.Pointer, dDxl.Pointer, Stream, foldIntoX0: fold);
        Stream.Synchronize();
        // The two-kernel path rounds gt to bf16 between its kernels: what it sums from gt is then within bf16's precision.
        double fromGt = c > RmsNorm.FusedBackwardMaxWidth ? 1e-2 : 1e-4;
        AssertIncrement("dx0", AsFloat(dDx0), dx0Start, dx0Ref, seed);
        if (fold)
        {
            if (c <= RmsNorm.FusedBackwardMaxWidth)
                Assert.Equal(gStartBits, dG.ToArray()); // the fused kernel leaves g as it was (the two kernels use it for gt)
        }
        else
            Numerics.AssertClose("g", AsFloat(dG), gRef, 1e-2, seed);
        var drl = dDrl.ToArray();
        var dxl = dDxl.ToArray();
        Numerics.AssertClose("d resid_lambda", [drl[layer]], [lambdaStart[layer] + sumRl], fromGt, seed);
        Numerics.AssertClose("d x0_lambda", [dxl[layer]], [lambdaStart[layer] + sumXl], fromGt, seed);
        Assert.Equal(lambdaStart[0], drl[0]);
        Assert.Equal(lambdaStart[1], dxl[1]);
    }

    [GpuTheory]
    [InlineData(2049, 512, false)]
    [InlineData(2049, 512, true)] // layer 0 as the model runs it: m recomputed, the gradient folded into x0's
    [InlineData(40, 136, false)]
    public void Fused_norm_and_mix_backward_recomputes_the_mix_bit_for_bit(int n, int c, bool fold)
    {
        const int layer = 1;
        int seed = 1300 + n + c;
        var r = new Random(seed);
        var (xBits, _) = Numerics.RandomBf16(r, (long)n * c, 2);
        var (x0Bits, _) = Numerics.RandomBf16(r, (long)n * c, 2);
        float[] rl = [1.0f, 0.93f], xl = [0.1f, -0.27f];
        var (dy, _) = Numerics.RandomBf16(r, (long)n * c, 1);
        var (gStart, _) = Numerics.RandomBf16(r, (long)n * c, 1);
        var (dx0Start, _) = Numerics.RandomBf16(r, (long)n * c, 1);

        var norm = new RmsNorm(TestGpu.Kernels);
        using var dX = Upload(xBits, "x");
        using var dX0 = Upload(x0Bits, "x0");
        using var dDy = Upload(dy, "dy");
        using var dRl = Upload(rl, "resid_lambdas");
        using var dXl = Upload(xl, "x0_lambdas");
        // m, h and rstd from the forward kernel itself: the backward's recomputed m must be this m.
        using var dM = Poisoned<ushort>((long)n * c, "m");
        using var dH = Poisoned<ushort>((long)n * c, "h");
        using var dRstd = Poisoned<float>(n, "rstd");
        norm.MixForward(dX.Pointer, dX0.Pointer, dRl.Pointer, dXl.Pointer, layer, n, c, dM.Pointer, dH.Pointer, dRstd.Pointer, Stream);
        (float[] G, float[] Dx0, float[] Drl, float[] Dxl) Run(ulong mPointer)
        {
            using var dG = Upload(gStart, "g");
            using var dDx0 = Upload(dx0Start, "dx0");
            using var dDrl = Upload(new float[2], "d resid_lambdas");
            using var dDxl = Upload(new float[2], "d x0_lambdas");
            norm.NormMixBackward(mPointer, dRstd.Pointer, dDy.Pointer, dG.Pointer, dX.Pointer, dX0.Pointer, dRl.Pointer, dXl.Pointer, layer, n, c,
                dDx0.Pointer, dDrl.Pointer, dDxl.Pointer, Stream, foldIntoX0: fold);
            Stream.Synchronize();
            return (AsFloat(dG), AsFloat(dDx0), dDrl.ToArray(), dDxl.ToArray());
        }
        var kept = Run(dM.Pointer);
        var recomputed = Run(0);
        Assert.All(kept.G, v => Assert.True(float.IsFinite(v), "g must be finite (equal NaNs would pass the comparison below)"));
        Assert.All(kept.Dx0, v => Assert.True(float.IsFinite(v), "dx0 must be finite"));
        Assert.Equal(kept.G, recomputed.G);
        Assert.Equal(kept.Dx0, recomputed.Dx0);
        // The lambdas' sums are atomics from many blocks: equal up to the order of the additions.
        Numerics.AssertClose("d resid_lambda", recomputed.Drl, kept.Drl.Select(v => (double)v).ToArray(), 1e-5, seed);
        Numerics.AssertClose("d x0_lambda", recomputed.Dxl, kept.Dxl.Select(v => (double)v).ToArray(), 1e-5, seed);
    }

    [GpuFact]
    public void Norm_and_mix_backward_needs_the_kept_mix_on_wide_rows()
    {
        var norm = new RmsNorm(TestGpu.Kernels);
        var e = Assert.Throws<ArgumentException>(() => norm.NormMixBackward(0, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0, 4, 1032,
            0x1000, 0x1000, 0x1000, Stream));
        Assert.Contains("kept mix m", e.Message);
    }

    [GpuTheory]
    [InlineData(2, 256, 2, 128, 10000.0)]
    [InlineData(1, 2048, 4, 128, 10000.0)]
    [InlineData(2, 256, 3, 64, 10000.0)]
    [InlineData(1, 2048, 8, 64, 500000.0)]
    [InlineData(1, 300, 2, 128, 100.0)]
    [InlineData(1, 301, 3, 64, 10000.0)]   // rows (903) that end inside a warp: the lanes past the end still join the shuffles
    public void Rotary_qknorm_forward_and_backward_match_reference(int batch, int seqLen, int heads, int headDim, double rotaryBase)
    {
        int rows = batch * seqLen * heads, seed = rows + heads + headDim;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, (long)rows * headDim, 2);
        var cosSin = RotaryTable.CosSin(seqLen, headDim, rotaryBase);
        var (yRef, rstdRef) = CpuOps.RotaryQkNorm(x, cosSin, rows, heads, seqLen, headDim);

        var rotary = new Rotary(TestGpu.Kernels, headDim);
        using var table = Upload(RotaryTable.Bf16Pairs(cosSin, seqLen, headDim), "cos/sin pairs");
        using var dX = Upload(xBits, "x");
        using var dRstd = Poisoned<float>(rows, "rstd");
        rotary.Forward(dX.Pointer, table.Pointer, rows, heads, seqLen, dRstd.Pointer, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("y", AsFloat(dX), yRef, 1e-2, seed);
        Numerics.AssertClose("rstd", dRstd.ToArray(), rstdRef, 1e-4, seed);

        // Backward from the kernel's own y and rstd (as the model uses them) against the reference at the same x.
        var (dyBits, dy) = Numerics.RandomBf16(r, (long)rows * headDim);
        var dxRef = CpuOps.RotaryQkNormBackward(x, dy, cosSin, rows, heads, seqLen, headDim);
        using var dDy = Upload(dyBits, "dy");
        rotary.Backward(dX.Pointer, dRstd.Pointer, dDy.Pointer, table.Pointer, rows, heads, seqLen, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("dx", AsFloat(dDy), dxRef, 2e-2, seed);

        // The same gradient read from the flash backward's fp32 dq accumulator: [B, H, T, D], column c of query t at
        // c XOR 8·(t mod 8); the result goes to a poisoned dy.
        var accumulator = new float[(long)rows * headDim];
        for (int row = 0; row < rows; row++)
        {
            int t = row / heads % seqLen, b = row / heads / seqLen, h = row % heads;
            long baseIndex = (((long)b * heads + h) * seqLen + t) * headDim;
            for (int col = 0; col < headDim; col++)
                accumulator[baseIndex + (col ^ ((t & 7) << 3))] = (float)dy[(long)row * headDim + col];
        }
        using var dAccumulator = Upload(accumulator, "dq accumulator");
        using var dOut = Poisoned<ushort>((long)rows * headDim, "dx from the accumulator");
        rotary.Backward(dX.Pointer, dRstd.Pointer, dOut.Pointer, table.Pointer, rows, heads, seqLen, Stream, dyAccumulator: dAccumulator.Pointer);
        Stream.Synchronize();
        Numerics.AssertClose("dx from the accumulator", AsFloat(dOut), dxRef, 2e-2, seed);
    }

    [GpuTheory]
    [InlineData(3000, 4, 128, 512)]
    [InlineData(2000, 16, 128, 2048)]   // more than the old limit of 8 heads
    [InlineData(2500, 8, 64, 512)]
    [InlineData(1500, 32, 64, 2048)]    // width 2048 in heads of 64
    [InlineData(1000, 1, 64, 256)]      // grouped-query attention down to one kv head
    [InlineData(2000, 8, 128, 1024)]    // the widest kv row the grouped backward takes (32 floats a lane)
    [InlineData(1200, 6, 64, 384)]      // 48 16-byte chunks a row: the forward's lanes take one or two
    [InlineData(1100, 3, 128, 384)]     // the same at head size 128
    [InlineData(600, 32, 128, 4096)]    // the widest kv row the model allows: 16 chunks a lane in the forward
    [InlineData(600, 64, 64, 4096)]     // the same in 64 heads of 64: each lane stores the gates of two heads
    public void Value_gate_forward_and_backward_match_reference(int n, int kvHeads, int headDim, int c)
    {
        const int vocab = 300;
        int seed = 88 + kvHeads * 7 + headDim;
        var r = new Random(seed);
        int kvDim = kvHeads * headDim;
        var (xBits, x) = Numerics.RandomBf16(r, (long)n * c);
        var (wgBits, wg) = Numerics.RandomBf16(r, kvHeads * 32, 0.5);
        var ids = Enumerable.Range(0, n).Select(_ => r.Next(vocab)).ToArray();
        var (veBits, ve) = Numerics.RandomBf16(r, (long)vocab * kvDim);
        var (vBits, v) = Numerics.RandomBf16(r, (long)n * kvDim);
        var (vRef, gateRef) = CpuOps.ValueGate(x, wg, ids, ve, v, n, kvHeads, headDim, c);

        var gate = new ValueGate(TestGpu.Kernels, headDim, kvHeads);
        using var dX = Upload(xBits, "x");
        using var dWg = Upload(wgBits, "wg");
        using var dIds = Upload(ids, "ids");
        using var dVe = Upload(veBits, "ve");
        using var dV = Upload(vBits, "v");
        using var dGate = Poisoned<float>((long)n * kvHeads, "gate");
        gate.Forward(dX.Pointer, dWg.Pointer, dIds.Pointer, dVe.Pointer, n, c, dV.Pointer, dGate.Pointer, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("v", AsFloat(dV), vRef, 1e-2, seed);
        Numerics.AssertClose("gate", dGate.ToArray(), gateRef, 1e-4, seed);

        // Backward with dv as the last part of a dq | dk | dv row (stride 2·kvDim + c), as the model passes it.
        int stride = c + 2 * kvDim;
        var (dvBits, dv) = Numerics.RandomBf16(r, (long)n * kvDim);
        var rows = new ushort[(long)n * stride];
        for (int i = 0; i < n; i++)
            Array.Copy(dvBits, (long)i * kvDim, rows, (long)i * stride + c + kvDim, kvDim);
        var (dveRef, dwgRef, dxRef) = CpuOps.ValueGateBackward(x, wg, ids, ve, dv, n, kvHeads, headDim, c, vocab);
        using var dRows = Upload(rows, "dq | dk | dv");
        using var dDve = Upload(new float[(long)vocab * kvDim], "dve");
        using var dDwg = Upload(new float[kvHeads * 32], "dwg");
        // dx: the bf16 gradient at the norm's output, which the gate's share is added to (the gate reads x's first 32 features).
        var (dxStartBits, dxStart) = Numerics.RandomBf16(r, (long)n * c, 0.05);
        using var dDx = Upload(dxStartBits, "dx (bf16)");
        gate.Backward(dGate.Pointer, dRows.At(c + kvDim), dIds.Pointer, dVe.Pointer, dX.Pointer, dWg.Pointer, n, c, dDve.Pointer, dDwg.Pointer,
            dDx.Pointer, Stream, stride);
        Stream.Synchronize();
        Numerics.AssertClose("dve", dDve.ToArray(), dveRef, 1e-4, seed);
        Numerics.AssertClose("dwg", dDwg.ToArray(), dwgRef, 1e-4, seed);
        var dxBits = dDx.ToArray();
        var gateColumns = new List<float>();
        var gateColumnsRef = new List<double>();
        for (long e = 0; e < dxBits.Length; e++)
        {
            if (e % c < 32)
            {
                gateColumns.Add(Bf16.ToFloat(dxBits[e]));
                gateColumnsRef.Add(dxStart[e] + dxRef[e]);
            }
            else if (dxBits[e] != dxStartBits[e])
                Assert.Fail($"dx element {e} (feature {e % c}) changed; only the first 32 features take the gate's share (seed {seed})");
        }
        Numerics.AssertClose("dx", gateColumns.ToArray(), gateColumnsRef.ToArray(), 1e-2, seed);

        // The same backward in grouped token order (kv rows of up to ValueGate.MaxGroupedWidth; wider ones take the path above).
        var embedding = new Embedding(TestGpu.Kernels);
        using var dOrder = Poisoned<int>(n, "order");
        using var dCursor = Poisoned<int>(vocab, "cursor");
        embedding.GroupTokens(dIds.Pointer, n, vocab, dOrder.Pointer, dCursor.Pointer, Stream);
        using var dDveGrouped = Upload(new float[(long)vocab * kvDim], "dve (grouped)");
        using var dDwgGrouped = Upload(new float[kvHeads * 32], "dwg (grouped)");
        using var dDxGrouped = Upload(dxStartBits, "dx (bf16, grouped)");
        gate.Backward(dGate.Pointer, dRows.At(c + kvDim), dIds.Pointer, dVe.Pointer, dX.Pointer, dWg.Pointer, n, c, dDveGrouped.Pointer, dDwgGrouped.Pointer,
            dDxGrouped.Pointer, Stream, stride, dOrder.Pointer);
        Stream.Synchronize();
        Numerics.AssertClose("dve (grouped)", dDveGrouped.ToArray(), dveRef, 1e-4, seed);
        Numerics.AssertClose("dwg (grouped)", dDwgGrouped.ToArray(), dwgRef, 1e-4, seed);
        // dx takes the same values in the same order of heads either way: bit for bit.
        Assert.Equal(dxBits, dDxGrouped.ToArray());

        // On 3 blocks, so that each warp strides over several spans of the order.
        using var dDveFew = Upload(new float[(long)vocab * kvDim], "dve (grouped, 3 blocks)");
        using var dDwgFew = Upload(new float[kvHeads * 32], "dwg (grouped, 3 blocks)");
        using var dDxFew = Upload(dxStartBits, "dx (bf16, grouped, 3 blocks)");
        gate.Backward(dGate.Pointer, dRows.At(c + kvDim), dIds.Pointer, dVe.Pointer, dX.Pointer, dWg.Pointer, n, c, dDveFew.Pointer, dDwgFew.Pointer,
            dDxFew.Pointer, Stream, stride, dOrder.Pointer, maxBlocks: 3);
        Stream.Synchronize();
        Numerics.AssertClose("dve (grouped, 3 blocks)", dDveFew.ToArray(), dveRef, 1e-4, seed);
        Numerics.AssertClose("dwg (grouped, 3 blocks)", dDwgFew.ToArray(), dwgRef, 1e-4, seed);
        Assert.Equal(dxBits, dDxFew.ToArray());
    }

    /// <summary>
    /// <see cref="Embedding.GroupTokens"/>: the positions as a permutation of 0 .. n−1 (the order poisoned first, so a position
    /// never written fails), with the ids ascending along it, on ids drawn uniformly, from a skewed (Zipf) law, all one id, and
    /// over a vocabulary wider than the offsets kernel's 1024 threads.
    /// </summary>
    [GpuTheory]
    [InlineData(100_000, 8192, false)]
    [InlineData(100_000, 8192, true)]     // one id in ten: long runs, many lanes of a warp on one id
    [InlineData(4097, 3, false)]          // a few ids, every warp's lanes mostly equal
    [InlineData(777, 1, false)]           // every token the same id
    [InlineData(1000, 50_000, false)]     // most ids absent; 49 ids a thread in the offsets kernel
    [InlineData(1, 5, false)]
    public void Token_grouping_orders_positions_by_id(int n, int vocab, bool zipf)
    {
        int seed = 2100 + n % 1000 + vocab % 1000 + (zipf ? 1 : 0);
        var r = new Random(seed);
        var weights = Enumerable.Range(0, vocab).Select(v => zipf ? 1.0 / (v + 1) : 1.0).ToArray();
        var cumulative = new double[vocab];
        double total = 0;
        for (int v = 0; v < vocab; v++)
            cumulative[v] = total += weights[v];
        var ids = Enumerable.Range(0, n).Select(_ =>
        {
            int k = Array.BinarySearch(cumulative, r.NextDouble() * total);
            return Math.Min(k < 0 ? ~k : k, vocab - 1);
        }).ToArray();

        var embedding = new Embedding(TestGpu.Kernels);
        using var dIds = Upload(ids, "ids");
        using var dOrder = Poisoned<int>(n, "order");
        using var dCursor = Poisoned<int>(vocab, "cursor");
        embedding.GroupTokens(dIds.Pointer, n, vocab, dOrder.Pointer, dCursor.Pointer, Stream);
        Stream.Synchronize();
        var order = dOrder.ToArray();
        var seen = new bool[n];
        for (int p = 0; p < n; p++)
        {
            int i = order[p];
            Assert.True(i >= 0 && i < n, $"order[{p}] = {i} is not a position of the {n} tokens (seed {seed})");
            Assert.False(seen[i], $"position {i} appears twice in the order (seed {seed})");
            seen[i] = true;
            if (p > 0)
                Assert.True(ids[order[p - 1]] <= ids[i], $"ids fall from {ids[order[p - 1]]} to {ids[i]} at order position {p} (seed {seed})");
        }
        // The same input again gives the same grouping of ids (the cursor is zeroed by the call, not left from the last).
        embedding.GroupTokens(dIds.Pointer, n, vocab, dOrder.Pointer, dCursor.Pointer, Stream);
        Stream.Synchronize();
        Assert.Equal(order.Select(i => ids[i]), dOrder.ToArray().Select(i => ids[i]));
    }

    [GpuFact]
    public void Embedding_gather_and_scatter_match_reference()
    {
        const int n = 5000, c = 512, vocab = 97, seed = 99;
        var r = new Random(seed);
        var (tableBits, table) = Numerics.RandomBf16(r, vocab * c);
        var ids = Enumerable.Range(0, n).Select(_ => r.Next(vocab)).ToArray();
        var (doutBits, dout) = Numerics.RandomBf16(r, n * c, 1);
        var outRef = new double[n * c];
        var dtableRef = new double[vocab * c];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
            {
                outRef[i * c + j] = table[ids[i] * c + j];
                dtableRef[ids[i] * c + j] += dout[i * c + j];
            }
        }
        var embedding = new Embedding(TestGpu.Kernels);
        using var dTable = Upload(tableBits, "table");
        using var dIds = Upload(ids, "ids");
        using var dOut = Poisoned<ushort>(n * c, "out");
        using var dDout = Upload(doutBits, "dout (bf16)");
        using var dDtable = Upload(new float[vocab * c], "dtable");
        embedding.Forward(dIds.Pointer, dTable.Pointer, n, c, dOut.Pointer, Stream);
        embedding.Backward(dIds.Pointer, dDout.Pointer, n, c, dDtable.Pointer, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("gather", AsFloat(dOut), outRef, 0, seed);
        Numerics.AssertClose("scatter", dDtable.ToArray(), dtableRef, 1e-5, seed);
    }

    /// <summary>
    /// The model's first step, x0 = norm(wte[ids]), and its backward in one pass each (<see cref="Embedding.NormForward"/>,
    /// <see cref="Embedding.NormBackward"/>), against the fp64 reference and bit for bit against the two-kernel path they
    /// replace (the gather, then the norm; the norm's backward in place on the bf16 x0 gradient, then the scatter). With
    /// <paramref name="distinct"/> every token has its own id, so each table row takes one atomic and the two paths must agree
    /// to the bit; with repeated ids the atomics' order varies and they agree to fp32 rounding.
    /// </summary>
    [GpuTheory]
    [InlineData(4000, 512, true)]    // the model's width: the narrow backward kernel, the forward's rows in registers
    [InlineData(3000, 512, false)]   // repeated ids: many atomics a row
    [InlineData(777, 64, true)]      // one chunk, in the first lanes only
    [InlineData(1500, 520, true)]    // just past the narrow kernel: four chunks a lane
    [InlineData(300, 1024, false)]
    [InlineData(20_000, 512, false)] // runs across many warps' spans of the grouped kernel
    [InlineData(200, 2048, true)]    // the two-pass paths of both kernels (the grouped call falls back to them)
    public void Embedding_norm_matches_the_gather_then_the_norm_and_its_backward(int n, int c, bool distinct)
    {
        int seed = 1700 + n + c + (distinct ? 1 : 0);
        var r = new Random(seed);
        int vocab = distinct ? n + 37 : 97;
        var (tableBits, table) = Numerics.RandomBf16(r, (long)vocab * c, 2);
        var ids = distinct
            ? Enumerable.Range(0, vocab).OrderBy(_ => r.Next()).Take(n).ToArray()
            : Enumerable.Range(0, n).Select(_ => r.Next(vocab)).ToArray();
        var (dyBits, dy) = Numerics.RandomBf16(r, (long)n * c, 1);
        var start = Numerics.RandomUniform(r, (long)vocab * c);
        var gathered = new double[(long)n * c];
        for (int i = 0; i < n; i++)
            Array.Copy(table, (long)ids[i] * c, gathered, (long)i * c, c);
        var (x0Ref, rstdRef) = CpuOps.RmsNorm(gathered, n, c);
        var dRows = CpuOps.RmsNormBackward(gathered, dy, n, c);
        var dtableRef = start.Select(v => (double)v).ToArray();
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
                dtableRef[(long)ids[i] * c + j] += dRows[(long)i * c + j];
        }

        var embedding = new Embedding(TestGpu.Kernels);
        var norm = new RmsNorm(TestGpu.Kernels);
        using var dTable = Upload(tableBits, "table");
        using var dIds = Upload(ids, "ids");
        using var dX0 = Poisoned<ushort>((long)n * c, "x0");
        using var dRstd = Poisoned<float>(n, "rstd");
        using var dDtable = Upload(start, "dtable");
        using var dDy = Upload(dyBits, "dy (the x0 gradient, bf16)");
        embedding.NormForward(dIds.Pointer, dTable.Pointer, n, c, dX0.Pointer, dRstd.Pointer, Stream);
        embedding.NormBackward(dIds.Pointer, dTable.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDtable.Pointer, Stream);

        // The two-kernel path on the same inputs.
        using var dGathered = Poisoned<ushort>((long)n * c, "gathered rows");
        using var dX0Two = Poisoned<ushort>((long)n * c, "x0 (two kernels)");
        using var dRstdTwo = Poisoned<float>(n, "rstd (two kernels)");
        using var dDtableTwo = Upload(start, "dtable (two kernels)");
        using var dDyTwo = Upload(dyBits, "dy (two kernels, overwritten in place)");
        // And the backward in grouped token order, from the same start.
        using var dOrder = Poisoned<int>(n, "order");
        using var dCursor = Poisoned<int>(vocab, "cursor");
        using var dDtableGrouped = Upload(start, "dtable (grouped)");
        embedding.GroupTokens(dIds.Pointer, n, vocab, dOrder.Pointer, dCursor.Pointer, Stream);
        embedding.NormBackward(dIds.Pointer, dTable.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDtableGrouped.Pointer, Stream, dOrder.Pointer);
        // And on 2 blocks, so that each warp strides over several spans of the order.
        using var dDtableFew = Upload(start, "dtable (grouped, 2 blocks)");
        embedding.NormBackward(dIds.Pointer, dTable.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDtableFew.Pointer, Stream, dOrder.Pointer, maxBlocks: 2);
        embedding.Forward(dIds.Pointer, dTable.Pointer, n, c, dGathered.Pointer, Stream);
        norm.Forward(dGathered.Pointer, n, c, dX0Two.Pointer, dRstdTwo.Pointer, Stream);
        norm.Backward(dGathered.Pointer, dRstdTwo.Pointer, dDyTwo.Pointer, n, c, dDyTwo.Pointer, accumulate: false, Stream, ElementType.Bf16, ElementType.Bf16);
        embedding.Backward(dIds.Pointer, dDyTwo.Pointer, n, c, dDtableTwo.Pointer, Stream);
        Stream.Synchronize();

        Numerics.AssertClose("x0", AsFloat(dX0), x0Ref, 1e-2, seed);
        Numerics.AssertClose("rstd", dRstd.ToArray(), rstdRef, 1e-5, seed);
        // The table's increment: the norm's gradient rounded to bf16 once per token, then summed in fp32.
        Numerics.AssertClose("dtable (what the kernel added)", dDtable.ToArray().Select((v, i) => v - start[i]).ToArray(),
            dtableRef.Select((v, i) => v - start[i]).ToArray(), 1e-2, seed);
        Assert.Equal(dX0Two.ToArray(), dX0.ToArray());
        Assert.Equal(dRstdTwo.ToArray(), dRstd.ToArray());
        var dtable = dDtable.ToArray();
        var dtableTwo = dDtableTwo.ToArray();
        Assert.All(dtable, v => Assert.True(float.IsFinite(v), "dtable must be finite"));
        var dtableGrouped = dDtableGrouped.ToArray();
        Assert.All(dtableGrouped, v => Assert.True(float.IsFinite(v), "dtable (grouped) must be finite"));
        var dtableFew = dDtableFew.ToArray();
        if (distinct)
        {
            Assert.Equal(dtableTwo, dtable);
            Assert.Equal(dtableTwo, dtableGrouped);
            Assert.Equal(dtableTwo, dtableFew);
        }
        else
        {
            Numerics.AssertClose("dtable against the two kernels", dtable, dtableTwo.Select(v => (double)v).ToArray(), 1e-6, seed);
            Numerics.AssertClose("dtable (grouped) against the two kernels", dtableGrouped, dtableTwo.Select(v => (double)v).ToArray(), 1e-6, seed);
            Numerics.AssertClose("dtable (grouped, 2 blocks) against the two kernels", dtableFew, dtableTwo.Select(v => (double)v).ToArray(), 1e-6, seed);
        }

        // Widths the kernels cannot take are refused before launch.
        Assert.Throws<ArgumentException>(() => embedding.NormForward(dIds.Pointer, dTable.Pointer, n, 12, dX0.Pointer, dRstd.Pointer, Stream));
        Assert.Throws<ArgumentOutOfRangeException>(() => embedding.NormBackward(dIds.Pointer, dTable.Pointer, dRstd.Pointer, dDy.Pointer, n, 4104,
            dDtable.Pointer, Stream));
    }

    /// <summary>How the fused MLP GEMMs' rows are scaled in a test: not at all, by given scales, or by the rstd the fc GEMM computes from x.</summary>
    public enum RowScaling { None, Given, FromX }

    [GpuTheory]
    [InlineData(Activation.Relu2, 256, 128, 512, RowScaling.None, 1)]       // one block takes all 4 tiles
    [InlineData(Activation.Relu2, 384, 64, 256, RowScaling.Given, 0)]
    [InlineData(Activation.Relu2, 1024, 512, 2048, RowScaling.None, 0)]
    [InlineData(Activation.Relu2, 1024, 512, 2048, RowScaling.Given, 7)]    // 64 tiles over 7 blocks: 9 or 10 each, the pipeline's phases carried across tiles
    [InlineData(Activation.Relu2, 4096, 128, 2048, RowScaling.Given, 0)]    // more tiles (256) than multiprocessors
    [InlineData(Activation.Relu2, 1024, 512, 2048, RowScaling.FromX, 7)]    // the norm's rstd from the k-blocks, 8 of them a row
    [InlineData(Activation.Relu2, 384, 64, 256, RowScaling.FromX, 1)]       // one k-block a row, one block for all 3 tiles
    [InlineData(Activation.Relu2, 4096, 768, 1024, RowScaling.FromX, 0)]    // 12 k-blocks; 4 column tiles, only the first writes rstd
    [InlineData(Activation.Gelu, 256, 128, 512, RowScaling.None, 1)]
    [InlineData(Activation.Gelu, 1024, 512, 2048, RowScaling.Given, 7)]
    [InlineData(Activation.Gelu, 4096, 128, 2048, RowScaling.Given, 0)]
    [InlineData(Activation.Gelu, 1024, 512, 2048, RowScaling.FromX, 5)]
    [InlineData(Activation.Gelu, 512, 320, 768, RowScaling.FromX, 2)]       // an odd number of k-blocks (5): the last has no pair
    public void Mlp_gemms_with_activation_epilogues_match_reference(Activation activation, int n, int width, int hidden, RowScaling rows, int maxBlocks)
    {
        Assert.SkipUnless(MlpGemm.Supports(Device.Properties, n, width, hidden), "the fused MLP GEMMs need an sm_90 GPU");
        int seed = n + 7 * width + 13 * hidden + (int)activation + 31 * (int)rows;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, (long)n * width);
        var (wFcBits, wFc) = Numerics.RandomBf16(r, (long)hidden * width, 0.2);
        var (gBits, g) = Numerics.RandomBf16(r, (long)n * width);
        var (wProjBits, wProj) = Numerics.RandomBf16(r, (long)width * hidden, 0.2); // c_proj: out (width) × in (hidden)
        // Row scales like an rstd (0.5 .. 2); or the rstd of x's rows (the MLP norm's, which the fc GEMM computes); or none.
        double[] scale = rows == RowScaling.FromX
            ? CpuOps.RmsNorm(x, n, width).Rstd
            : Enumerable.Range(0, n).Select(_ => (double)(float)(0.5 + 1.5 * r.NextDouble())).ToArray();
        bool rowScaled = rows != RowScaling.None;
        double Scale(long i) => rowScaled ? scale[i / hidden] : 1.0;
        var u = CpuOps.Linear(x, wFc, n, width, hidden).Select((v, i) => v * Scale(i)).ToArray();
        var ds = CpuOps.LinearBackwardInput(g, wProj, n, hidden, width);
        var duRef = CpuOps.ActivateBackward(activation, u, ds, n, hidden).Select((v, i) => v * Scale(i)).ToArray();
        bool gelu = activation == Activation.Gelu;

        var mlp = new MlpGemm(TestGpu.Kernels, Device.Properties) { MaxBlocks = maxBlocks };
        long count = (long)n * hidden, guard = 4096;
        using var dX = Upload(xBits, "x");
        using var dWFc = Upload(wFcBits, "W_fc");
        using var dG = Upload(gBits, "g");
        using var dWProj = Upload(wProjBits, "W_proj");
        // One guard tile past each output: the TMA stores must write exactly the matrix.
        using var dS = Poisoned<ushort>(count + guard, "s");
        using var dU = Poisoned<ushort>(count + guard, "u");
        using var dDu = Poisoned<ushort>(count + guard, "du");
        // Given scales are uploaded; the fc GEMM writes its own over NaNs (one guard float past them must stay NaN).
        using var dScale = rows == RowScaling.FromX ? Upload(Enumerable.Repeat(float.NaN, n + 1).ToArray(), "rstd (poisoned)") : Upload(scale.Select(v => (float)v).ToArray(), "row scale");
        ulong rowScale = rowScaled ? dScale.Pointer : 0;
        ulong kept = gelu ? dU.Pointer : dS.Pointer; // what the gradient's epilogue reads
        mlp.Fc(activation, dX.Pointer, dWFc.Pointer, n, width, hidden, dS.Pointer, Stream, rowScale, gelu ? dU.Pointer : 0, normRows: rows == RowScaling.FromX);
        mlp.ProjInputGradient(activation, dG.Pointer, dWProj.Pointer, kept, n, width, hidden, dDu.Pointer, Stream, rowScale);
        Stream.Synchronize();
        if (rows == RowScaling.FromX)
        {
            var rstd = dScale.ToArray();
            Numerics.AssertClose("rstd", rstd[..n], scale, 1e-5, seed);
            Assert.True(float.IsNaN(rstd[n]), "the fc GEMM wrote past its n rows' rstd");
        }
        var s = dS.ToArray();
        var du = dDu.ToArray();
        Numerics.AssertClose("s", Bf16.ToFloat(s[..(int)count]), CpuOps.Activate(activation, u, n, hidden), 1e-2, seed);
        Numerics.AssertClose("du", Bf16.ToFloat(du[..(int)count]), duRef, 1e-2, seed);
        Assert.All(s[(int)count..], v => Assert.Equal(0xFFFF, v));
        Assert.All(du[(int)count..], v => Assert.Equal(0xFFFF, v));
        var uOut = dU.ToArray();
        if (gelu)
        {
            Numerics.AssertClose("u", Bf16.ToFloat(uOut[..(int)count]), u, 1e-2, seed);
            Assert.All(uOut[(int)count..], v => Assert.Equal(0xFFFF, v));
        }
        else
        {
            Assert.All(uOut, v => Assert.Equal(0xFFFF, v)); // relu² writes no u
        }

        if (rows == RowScaling.FromX)
        {
            // Recompute=mlp runs the same call again in the backward, and its s must be the forward's, bit for bit.
            using var dS2 = Poisoned<ushort>(count, "s again");
            using var dU2 = Poisoned<ushort>(count, "u again");
            mlp.Fc(activation, dX.Pointer, dWFc.Pointer, n, width, hidden, dS2.Pointer, Stream, rowScale, gelu ? dU2.Pointer : 0, normRows: true);
            Stream.Synchronize();
            Assert.Equal(s[..(int)count], dS2.ToArray());
            if (gelu)
                Assert.Equal(uOut[..(int)count], dU2.ToArray());
        }

        // In place, as the model runs it: du replaces what the activation kept.
        mlp.ProjInputGradient(activation, dG.Pointer, dWProj.Pointer, kept, n, width, hidden, kept, Stream, rowScale);
        Stream.Synchronize();
        Assert.Equal(du[..(int)count], (gelu ? dU : dS).ToArray()[..(int)count]);
    }

    [GpuTheory]
    [InlineData(2, 256, 512, 512, 128, 0)]     // q of the baseline's heads: 4 heads of 128, two a tile
    [InlineData(3, 128, 256, 256, 64, 0)]      // heads of 64, four a tile
    [InlineData(2, 384, 512, 256, 128, 1)]     // k with 2 kv heads, 6 tiles in one block: the pipeline's phases across tiles
    [InlineData(1, 1024, 128, 768, 64, 5)]     // 12 heads of 64 over 3 column tiles, 24 tiles over 5 blocks
    [InlineData(2, 192, 256, 256, 128, 0)]     // T 192: the second sequence starts inside a 128-row tile (positions wrap there)
    public void Qk_gemm_with_rotary_and_qk_norm_matches_the_gemm_then_the_rotary_pass(int batch, int seqLen, int width, int outFeatures, int headDim,
        int maxBlocks)
    {
        long n = (long)batch * seqLen;
        Assert.SkipUnless(Device.Properties.ComputeMajor == 9 && MlpGemm.SupportsRotary(n, width, outFeatures, headDim), "the rotary GEMM needs an sm_90 GPU");
        int heads = outFeatures / headDim, seed = (int)n + width + outFeatures + headDim;
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, n * width);
        var (wBits, w) = Numerics.RandomBf16(r, (long)outFeatures * width, 0.2);
        var cosSin = RotaryTable.CosSin(seqLen, headDim, 10000.0);
        // What cuBLAS and rotary.cu compute: the product rounded to bf16, then rotated and normed per head.
        var u = CpuOps.Linear(x, w, (int)n, width, outFeatures).Select(v => (double)Bf16.Round((float)v)).ToArray();
        var (yRef, rstdRef) = CpuOps.RotaryQkNorm(u, cosSin, (int)n * heads, heads, seqLen, headDim);

        var mlp = new MlpGemm(TestGpu.Kernels, Device.Properties) { MaxBlocks = maxBlocks };
        long count = n * outFeatures, guard = 4096;
        using var dX = Upload(xBits, "x");
        using var dW = Upload(wBits, "W");
        using var table = Upload(RotaryTable.Bf16Pairs(cosSin, seqLen, headDim), "cos/sin pairs");
        using var dY = Poisoned<ushort>(count + guard, "y");
        using var dRstd = Poisoned<float>(n * heads + 64, "rstd");
        mlp.QkRotaryNorm(dX.Pointer, dW.Pointer, n, width, outFeatures, headDim, table.Pointer, seqLen, dY.Pointer, dRstd.Pointer, Stream);
        Stream.Synchronize();

        var y = dY.ToArray();
        var rstd = dRstd.ToArray();
        Numerics.AssertClose("y", Bf16.ToFloat(y[..(int)count]), yRef, 1e-2, seed);
        Numerics.AssertClose("rstd", rstd[..(int)(n * heads)], rstdRef, 1e-3, seed);
        Assert.All(y[(int)count..], v => Assert.Equal(0xFFFF, v));
        Assert.All(rstd[(int)(n * heads)..], v => Assert.True(float.IsNaN(v), "rstd written past its rows"));
        var e = Assert.Throws<ArgumentException>(() => mlp.QkRotaryNorm(dX.Pointer, dW.Pointer, n, width, 384, headDim, table.Pointer, seqLen, dY.Pointer,
            dRstd.Pointer, Stream));
        Assert.Contains("multiple of 256", e.Message, StringComparison.Ordinal); // 384 outputs: heads split across tiles
    }

    [GpuTheory]
    [InlineData(2, 256, 512, 512, 512, 128, true, 0)]   // the baseline's q, k and v: 4 heads of 128, 6 column tiles a row block
    [InlineData(2, 384, 512, 512, 256, 128, true, 1)]   // 2 kv heads (GQA): 2 + 1 + 1 tiles, every tile in one block
    [InlineData(3, 128, 256, 256, 256, 64, false, 5)]   // heads of 64, v left to cuBLAS: q and k alone
    [InlineData(1, 1024, 128, 768, 256, 64, true, 7)]   // 12 q heads of 64 over 3 tiles, 4 kv heads in one: parts of unequal width
    public void Qkv_gemm_in_one_launch_matches_the_three_products(int batch, int seqLen, int width, int qFeatures, int kvFeatures, int headDim,
        bool withV, int maxBlocks)
    {
        long n = (long)batch * seqLen;
        Assert.SkipUnless(Device.Properties.ComputeMajor == 9, "the rotary GEMM needs an sm_90 GPU");
        int seed = (int)n + width + qFeatures + 3 * kvFeatures + headDim + (withV ? 1 : 0);
        var r = new Random(seed);
        var (xBits, x) = Numerics.RandomBf16(r, n * width);
        var (wqBits, wq) = Numerics.RandomBf16(r, (long)qFeatures * width, 0.2);
        var (wkBits, wk) = Numerics.RandomBf16(r, (long)kvFeatures * width, 0.2);
        var (wvBits, wv) = Numerics.RandomBf16(r, (long)kvFeatures * width, 0.2);
        var cosSin = RotaryTable.CosSin(seqLen, headDim, 10000.0);
        double[] Rounded(double[] w, int features) => CpuOps.Linear(x, w, (int)n, width, features).Select(v => (double)Bf16.Round((float)v)).ToArray();
        var (qRef, rstdQRef) = CpuOps.RotaryQkNorm(Rounded(wq, qFeatures), cosSin, (int)n * (qFeatures / headDim), qFeatures / headDim, seqLen, headDim);
        var (kRef, rstdKRef) = CpuOps.RotaryQkNorm(Rounded(wk, kvFeatures), cosSin, (int)n * (kvFeatures / headDim), kvFeatures / headDim, seqLen, headDim);
        var vRef = CpuOps.Linear(x, wv, (int)n, width, kvFeatures);

        var mlp = new MlpGemm(TestGpu.Kernels, Device.Properties) { MaxBlocks = maxBlocks };
        long qCount = n * qFeatures, kvCount = n * kvFeatures, guard = 4096;
        long qRstd = n * (qFeatures / headDim), kRstd = n * (kvFeatures / headDim);
        using var dX = Upload(xBits, "x");
        using var dWq = Upload(wqBits, "W_q");
        using var dWk = Upload(wkBits, "W_k");
        using var dWv = Upload(wvBits, "W_v");
        using var table = Upload(RotaryTable.Bf16Pairs(cosSin, seqLen, headDim), "cos/sin pairs");
        using var dQ = Poisoned<ushort>(qCount + guard, "q");
        using var dK = Poisoned<ushort>(kvCount + guard, "k");
        using var dV = Poisoned<ushort>(kvCount + guard, "v");
        using var dRstdQ = Poisoned<float>(qRstd + 64, "rstd q");
        using var dRstdK = Poisoned<float>(kRstd + 64, "rstd k");
        mlp.QkvRotaryNorm(dX.Pointer, dWq.Pointer, dWk.Pointer, withV ? dWv.Pointer : 0, n, width, qFeatures, kvFeatures, headDim, table.Pointer, seqLen,
            dQ.Pointer, dK.Pointer, withV ? dV.Pointer : 0, dRstdQ.Pointer, dRstdK.Pointer, Stream);
        Stream.Synchronize();

        var q = dQ.ToArray();
        var k = dK.ToArray();
        var v = dV.ToArray();
        var rstdQ = dRstdQ.ToArray();
        var rstdK = dRstdK.ToArray();
        Numerics.AssertClose("q", Bf16.ToFloat(q[..(int)qCount]), qRef, 1e-2, seed);
        Numerics.AssertClose("k", Bf16.ToFloat(k[..(int)kvCount]), kRef, 1e-2, seed);
        Numerics.AssertClose("rstd q", rstdQ[..(int)qRstd], rstdQRef, 1e-3, seed);
        Numerics.AssertClose("rstd k", rstdK[..(int)kRstd], rstdKRef, 1e-3, seed);
        Assert.All(q[(int)qCount..], b => Assert.Equal(0xFFFF, b));
        Assert.All(k[(int)kvCount..], b => Assert.Equal(0xFFFF, b));
        Assert.All(rstdQ[(int)qRstd..], f => Assert.True(float.IsNaN(f), "rstd q written past its rows"));
        Assert.All(rstdK[(int)kRstd..], f => Assert.True(float.IsNaN(f), "rstd k written past its rows"));
        if (withV)
        {
            Numerics.AssertClose("v", Bf16.ToFloat(v[..(int)kvCount]), vRef, 1e-2, seed);
            Assert.All(v[(int)kvCount..], b => Assert.Equal(0xFFFF, b));
        }

        // Each part's tiles are the single launch's tiles: the same bits as q and k made one at a time.
        using var dQ1 = Poisoned<ushort>(qCount, "q alone");
        using var dK1 = Poisoned<ushort>(kvCount, "k alone");
        using var dRstdQ1 = Poisoned<float>(qRstd, "rstd q alone");
        using var dRstdK1 = Poisoned<float>(kRstd, "rstd k alone");
        mlp.QkRotaryNorm(dX.Pointer, dWq.Pointer, n, width, qFeatures, headDim, table.Pointer, seqLen, dQ1.Pointer, dRstdQ1.Pointer, Stream);
        mlp.QkRotaryNorm(dX.Pointer, dWk.Pointer, n, width, kvFeatures, headDim, table.Pointer, seqLen, dK1.Pointer, dRstdK1.Pointer, Stream);
        Stream.Synchronize();
        Assert.Equal(q[..(int)qCount], dQ1.ToArray());
        Assert.Equal(k[..(int)kvCount], dK1.ToArray());
        Assert.Equal(rstdQ[..(int)qRstd], dRstdQ1.ToArray());
        Assert.Equal(rstdK[..(int)kRstd], dRstdK1.ToArray());

        var e = Assert.Throws<ArgumentException>(() => mlp.QkvRotaryNorm(dX.Pointer, dWq.Pointer, dWk.Pointer, dWv.Pointer, n, width, qFeatures, 384, headDim,
            table.Pointer, seqLen, dQ.Pointer, dK.Pointer, dV.Pointer, dRstdQ.Pointer, dRstdK.Pointer, Stream));
        Assert.Contains("k and v", e.Message, StringComparison.Ordinal); // 384 kv outputs: heads split across tiles
        var half = Assert.Throws<ArgumentException>(() => mlp.QkvRotaryNorm(dX.Pointer, dWq.Pointer, dWk.Pointer, dWv.Pointer, n, width, qFeatures, kvFeatures,
            headDim, table.Pointer, seqLen, dQ.Pointer, dK.Pointer, 0, dRstdQ.Pointer, dRstdK.Pointer, Stream));
        Assert.Contains("wv", half.Message, StringComparison.Ordinal);
        var sameRstd = Assert.Throws<ArgumentException>(() => mlp.QkvRotaryNorm(dX.Pointer, dWq.Pointer, dWk.Pointer, 0, n, width, qFeatures, kvFeatures,
            headDim, table.Pointer, seqLen, dQ.Pointer, dK.Pointer, 0, dRstdQ.Pointer, dRstdQ.Pointer, Stream));
        Assert.Equal("rstdK", sameRstd.ParamName);
        var noRstd = Assert.Throws<ArgumentException>(() => mlp.QkvRotaryNorm(dX.Pointer, dWq.Pointer, dWk.Pointer, 0, n, width, qFeatures, kvFeatures,
            headDim, table.Pointer, seqLen, dQ.Pointer, dK.Pointer, 0, dRstdQ.Pointer, 0, Stream));
        Assert.Equal("rstdK", noRstd.ParamName);
        var xAsQ = Assert.Throws<ArgumentException>(() => mlp.QkvRotaryNorm(dX.Pointer, dWq.Pointer, dWk.Pointer, 0, n, width, qFeatures, kvFeatures,
            headDim, table.Pointer, seqLen, dX.Pointer, dK.Pointer, 0, dRstdQ.Pointer, dRstdK.Pointer, Stream));
        Assert.Equal("x", xAsQ.ParamName);
    }

    [GpuFact]
    public void Mlp_gemm_rejects_shapes_off_its_tiles()
    {
        Assert.SkipUnless(Device.Properties.ComputeMajor == 9, "the fused MLP GEMMs need an sm_90 GPU");
        var mlp = new MlpGemm(TestGpu.Kernels, Device.Properties);
        var e = Assert.Throws<ArgumentException>(() => mlp.Fc(Activation.Relu2, 0x1000, 0x1000, 200, 128, 512, 0x1000, Stream));
        Assert.Contains("multiple of 128", e.Message);
        var gated = Assert.Throws<ArgumentException>(() => mlp.Fc(Activation.SwiGlu, 0x1000, 0x1000, 256, 128, 512, 0x1000, Stream));
        Assert.Contains("swiglu", gated.Message);
        var noU = Assert.Throws<ArgumentException>(() => mlp.Fc(Activation.Gelu, 0x1000, 0x1000, 256, 128, 512, 0x1000, Stream));
        Assert.Contains("separate u", noU.Message);
        // With normRows the kernel writes the rows' rstd: it needs somewhere to put them.
        var noRstd = Assert.Throws<ArgumentException>(() => mlp.Fc(Activation.Relu2, 0x1000, 0x1000, 256, 128, 512, 0x1000, Stream, normRows: true));
        Assert.Equal("rowScale", noRstd.ParamName);
        Assert.False(MlpGemm.Supports(Device.Properties, 256, 128, 384));
        var aliased = Assert.Throws<ArgumentException>(() => mlp.ProjInputGradient(Activation.Relu2, 0x1000, 0x2000, 0x3000, 256, 128, 512, 0x1000, Stream));
        Assert.Contains("alias g", aliased.Message);
        // du is stored 16 bytes a lane from registers: an address off that alignment is refused before the launch.
        var misaligned = Assert.Throws<ArgumentException>(() => mlp.ProjInputGradient(Activation.Relu2, 0x1000, 0x2000, 0x3000, 256, 128, 512, 0x3008, Stream));
        Assert.Contains("16-byte aligned", misaligned.Message);
    }

    [GpuTheory]
    [InlineData(Activation.Relu2, 512, 2048)]
    [InlineData(Activation.Gelu, 512, 2048)]
    [InlineData(Activation.SwiGlu, 512, 1408)]
    [InlineData(Activation.SwiGlu, 77, 64)]
    public void Mlp_activation_passes_match_reference(Activation activation, int n, int hidden)
    {
        int seed = 111 + (int)activation * 31 + hidden;
        var r = new Random(seed);
        int inputWidth = activation.IsGated() ? 2 * hidden : hidden;
        var (uBits, u) = Numerics.RandomBf16(r, (long)n * inputWidth, 3);
        var (dsBits, ds) = Numerics.RandomBf16(r, (long)n * hidden);
        var sRef = CpuOps.Activate(activation, u, n, hidden);
        var duRef = CpuOps.ActivateBackward(activation, u, ds, n, hidden);
        var kernels = new MlpActivation(TestGpu.Kernels);
        using var dU = Upload(uBits, "u");
        using var dS = Poisoned<ushort>((long)n * hidden, "s");
        using var dDs = Upload(dsBits, "ds");
        kernels.Forward(activation, dU.Pointer, n, hidden, dS.Pointer, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("s", AsFloat(dS), sRef, 1e-2, seed);
        // In place as the model runs it: relu² from its output s into ds; the others from u into u.
        ulong kept = MlpActivation.KeepsPreActivation(activation) ? dU.Pointer : dS.Pointer;
        ulong du = MlpActivation.KeepsPreActivation(activation) ? dU.Pointer : dDs.Pointer;
        kernels.Backward(activation, kept, dDs.Pointer, n, hidden, du, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("du", AsFloat(MlpActivation.KeepsPreActivation(activation) ? dU : dDs), duRef, 2e-2, seed);
    }

    [GpuTheory]
    [InlineData(64, 8192, 15.0)]
    [InlineData(33, 1000, 15.0)]
    [InlineData(17, 1001, 15.0)]
    [InlineData(5, 12000, 15.0)]
    [InlineData(64, 8192, 30.0)]
    [InlineData(64, 8192, 0.0)]   // no soft cap: plain cross-entropy
    [InlineData(17, 1001, 0.0)]
    public void Softcap_cross_entropy_matches_reference_and_skips_ignored_rows(int rows, int vocab, double cap)
    {
        int seed = rows * 7 + vocab + (int)cap;
        var r = new Random(seed);
        var (logits, logitsD) = Numerics.RandomBf16(r, (long)rows * vocab, 25);
        var targets = Enumerable.Range(0, rows).Select(i => i % 5 == 3 ? -1 : r.Next(vocab)).ToArray();
        int scored = targets.Count(t => t >= 0);
        double scale = 1.0 / (scored * 2);
        var lossRef = CpuOps.SoftcapCrossEntropy(logitsD, targets, rows, vocab, cap);
        var gradRef = CpuOps.SoftcapCrossEntropyBackward(logitsD, targets, rows, vocab, cap, scale);

        var ce = new CrossEntropy(TestGpu.Kernels);
        using var dLogits = Upload(logits, "logits");
        using var dTargets = Upload(targets, "targets");
        using var dLosses = Poisoned<float>(rows, "losses");
        using var dGrad = Poisoned<ushort>((long)rows * vocab, "dlogits");
        using var dTotal = Upload(new float[1], "total");
        ce.Forward(dLogits.Pointer, dTargets.Pointer, rows, vocab, (float)scale, dLosses.Pointer, dGrad.Pointer, Stream, (float)cap);
        ce.Sum(dLosses.Pointer, rows, dTotal.Pointer, Stream);
        Stream.Synchronize();
        Numerics.AssertClose("losses", dLosses.ToArray(), lossRef, 1e-5, seed);
        Numerics.AssertClose("dlogits", AsFloat(dGrad), gradRef, 1e-2, seed);
        Numerics.AssertClose("sum", dTotal.ToArray(), [lossRef.Sum()], 1e-5, seed);

        // Evaluation: no gradient buffer, the losses alone.
        using var evalLosses = Poisoned<float>(rows, "eval losses");
        ce.Forward(dLogits.Pointer, dTargets.Pointer, rows, vocab, 0f, evalLosses.Pointer, 0, Stream, (float)cap);
        Stream.Synchronize();
        Numerics.AssertClose("eval losses", evalLosses.ToArray(), lossRef, 1e-5, seed);
    }
}

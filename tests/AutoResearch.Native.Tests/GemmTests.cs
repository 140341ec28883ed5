using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>Every GEMM path and transpose mode against an fp64 CPU reference on random data, outputs poisoned first.</summary>
[Trait("Category", "GPU")]
public class GemmTests
{
    private static CudaDevice Device => TestGpu.Device;

    public enum Path
    {
        GemmEx,
        Lt,
    }

    /// <summary>Row-major reference: C[m, n] = alpha · op(A) · op(B) + beta · C0, in fp64.</summary>
    internal static double[] Reference(bool transA, bool transB, int m, int n, int k, double alpha, float[] a, float[] b, double beta, float[]? c0)
    {
        var c = new double[m * n];
        Parallel.For(0, m, i =>
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[p * m + i] : a[i * k + p];
                    double bv = transB ? b[j * k + p] : b[p * n + j];
                    sum += av * bv;
                }
                c[i * n + j] = alpha * sum + (c0 is null ? 0 : beta * c0[i * n + j]);
            }
        });
        return c;
    }

    private static float[] RoundedBf16(Random random, int count, out ushort[] bits)
    {
        var values = Numerics.RandomUniform(random, count);
        bits = Bf16.FromFloat(values);
        return Bf16.ToFloat(bits);
    }

    public static TheoryData<Path, bool, bool, int, int, int> Cases()
    {
        var data = new TheoryData<Path, bool, bool, int, int, int>();
        foreach (var path in new[] { Path.GemmEx, Path.Lt })
        {
            foreach (var ta in new[] { false, true })
            {
                foreach (var tb in new[] { false, true })
                {
                    data.Add(path, ta, tb, 192, 256, 320);
                    data.Add(path, ta, tb, 72, 40, 136);
                }
            }
        }
        return data;
    }

    [GpuTheory]
    [MemberData(nameof(Cases))]
    public void Bf16_gemm_with_fp32_output_matches_reference(Path path, bool transA, bool transB, int m, int n, int k)
    {
        int seed = HashCode.Combine(path, transA, transB, m, n, k) & 0x7FFF_FFFF;
        var random = new Random(seed);
        var a = RoundedBf16(random, m * k, out var aBits);
        var b = RoundedBf16(random, k * n, out var bBits);
        var c0 = Numerics.RandomUniform(random, m * n);
        using var da = Device.Allocate<ushort>(aBits.Length, "A");
        using var db = Device.Allocate<ushort>(bBits.Length, "B");
        using var dc = Device.Allocate<float>(m * n, "C");
        da.CopyFrom(aBits);
        db.CopyFrom(bBits);
        dc.CopyFrom(c0);
        int lda = transA ? m : k, ldb = transB ? k : n;
        // beta = 0.5 reads C: accumulation into an existing output works.
        Run(path, transA, transB, m, n, k, 1.25f, da.Pointer, lda, db.Pointer, ldb, 0.5f, dc.Pointer, ElementType.F32);
        TestGpu.Stream.Synchronize();
        var expected = Reference(transA, transB, m, n, k, 1.25, a, b, 0.5, c0);
        Numerics.AssertClose($"{path} T{(transA ? 1 : 0)}{(transB ? 1 : 0)} {m}x{n}x{k} fp32 out", dc.ToArray(), expected, 1e-5, seed);
    }

    [GpuTheory]
    [MemberData(nameof(Cases))]
    public void Bf16_gemm_with_bf16_output_matches_reference(Path path, bool transA, bool transB, int m, int n, int k)
    {
        int seed = HashCode.Combine(path, transA, transB, m, n, k, 2) & 0x7FFF_FFFF;
        var random = new Random(seed);
        var a = RoundedBf16(random, m * k, out var aBits);
        var b = RoundedBf16(random, k * n, out var bBits);
        using var da = Device.Allocate<ushort>(aBits.Length, "A");
        using var db = Device.Allocate<ushort>(bBits.Length, "B");
        using var dc = Device.Allocate<ushort>(m * n, "C");
        da.CopyFrom(aBits);
        db.CopyFrom(bBits);
        dc.FillBytes(0xFF); // bf16 NaN poison; beta = 0 must not read it
        int lda = transA ? m : k, ldb = transB ? k : n;
        Run(path, transA, transB, m, n, k, 1f, da.Pointer, lda, db.Pointer, ldb, 0f, dc.Pointer, ElementType.Bf16);
        TestGpu.Stream.Synchronize();
        var expected = Reference(transA, transB, m, n, k, 1, a, b, 0, null);
        Numerics.AssertClose($"{path} T{(transA ? 1 : 0)}{(transB ? 1 : 0)} {m}x{n}x{k} bf16 out", Bf16.ToFloat(dc.ToArray()), expected, 1e-2, seed);
    }

    private static void Run(Path path, bool transA, bool transB, int m, int n, int k, float alpha, ulong a, int lda, ulong b, int ldb,
        float beta, ulong c, ElementType cType)
    {
        if (path == Path.GemmEx)
            TestGpu.Blas.Gemm(transA, transB, m, n, k, alpha, a, ElementType.Bf16, lda, b, ElementType.Bf16, ldb, beta, c, cType, n);
        else
            TestGpu.Blas.GemmLt(transA, transB, m, n, k, alpha, a, ElementType.Bf16, lda, b, ElementType.Bf16, ldb, beta, c, cType, n);
    }

    [GpuTheory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Fp32_gemm_matches_reference_to_fp32_precision(bool transA, bool transB)
    {
        int m = 129, n = 67, k = 211, seed = 31 + (transA ? 1 : 0) + (transB ? 2 : 0);
        var random = new Random(seed);
        var a = Numerics.RandomUniform(random, m * k);
        var b = Numerics.RandomUniform(random, k * n);
        using var da = Device.Allocate<float>(a.Length, "A");
        using var db = Device.Allocate<float>(b.Length, "B");
        using var dc = Device.Allocate<float>(m * n, "C");
        da.CopyFrom(a);
        db.CopyFrom(b);
        dc.FillBytes(0xFF);
        TestGpu.Blas.GemmF32(transA, transB, m, n, k, 1f, da.Pointer, transA ? m : k, db.Pointer, transB ? k : n, 0f, dc.Pointer, n);
        TestGpu.Stream.Synchronize();
        var expected = Reference(transA, transB, m, n, k, 1, a, b, 0, null);
        Numerics.AssertClose($"sgemm T{(transA ? 1 : 0)}{(transB ? 1 : 0)}", dc.ToArray(), expected, 1e-5, seed);
    }

    [GpuTheory]
    [InlineData(Path.GemmEx, false, true)]
    [InlineData(Path.GemmEx, true, false)]
    [InlineData(Path.Lt, false, true)]
    [InlineData(Path.Lt, true, false)]
    public void Strided_batched_gemm_matches_reference_for_every_matrix(Path path, bool transA, bool transB)
    {
        // The optimizer's shape: X·Xᵀ for a batch of 128 × 256 matrices.
        int batch = 3, m = 128, n = 128, k = 256, seed = 41 + (transA ? 1 : 0) + (path == Path.Lt ? 4 : 0);
        var random = new Random(seed);
        var a = RoundedBf16(random, batch * m * k, out var aBits);
        var b = RoundedBf16(random, batch * k * n, out var bBits);
        using var da = Device.Allocate<ushort>(aBits.Length, "A");
        using var db = Device.Allocate<ushort>(bBits.Length, "B");
        using var dc = Device.Allocate<float>(batch * m * n, "C");
        da.CopyFrom(aBits);
        db.CopyFrom(bBits);
        dc.FillBytes(0xFF);
        int lda = transA ? m : k, ldb = transB ? k : n;
        if (path == Path.GemmEx)
        {
            TestGpu.Blas.GemmStridedBatched(transA, transB, m, n, k, 1f, da.Pointer, ElementType.Bf16, lda, m * k,
                db.Pointer, ElementType.Bf16, ldb, k * n, 0f, dc.Pointer, ElementType.F32, n, m * n, batch);
        }
        else
        {
            TestGpu.Blas.GemmLt(transA, transB, m, n, k, 1f, da.Pointer, ElementType.Bf16, lda, db.Pointer, ElementType.Bf16, ldb,
                0f, dc.Pointer, ElementType.F32, n, batch, m * k, k * n, m * n);
        }
        TestGpu.Stream.Synchronize();
        var c = dc.ToArray();
        for (int i = 0; i < batch; i++)
        {
            var expected = Reference(transA, transB, m, n, k, 1, a[(i * m * k)..((i + 1) * m * k)], b[(i * k * n)..((i + 1) * k * n)], 0, null);
            Numerics.AssertClose($"{path} batch item {i}", c.AsSpan(i * m * n, m * n), expected, 1e-5, seed);
        }
    }

    public enum TunedOutput
    {
        /// <summary>beta = 0, bf16 C: the timing runs may overwrite C freely.</summary>
        Overwrite,
        /// <summary>beta = 1 into C itself (a weight gradient): the timing runs must write elsewhere, or C would gain A·B once per run.</summary>
        AccumulateInPlace,
        /// <summary>D = A·B + C with D apart (a residual add): C must come out unchanged.</summary>
        SeparateD,
    }

    [GpuTheory]
    [InlineData(TunedOutput.Overwrite)]
    [InlineData(TunedOutput.AccumulateInPlace)]
    [InlineData(TunedOutput.SeparateD)]
    public void Tuned_gemm_times_candidates_without_changing_its_result(TunedOutput output)
    {
        // A shape per case, so each is tuned afresh by this test's own Blas.
        int m = 256 + 64 * (int)output, n = 384, k = 512, seed = 61 + (int)output;
        var random = new Random(seed);
        var a = RoundedBf16(random, m * k, out var aBits);
        var b = RoundedBf16(random, n * k, out var bBits);
        var c0 = Numerics.RandomUniform(random, m * n);
        using var blas = new Blas(Device, TestGpu.Stream) { TuneCandidates = 8 };
        using var da = Device.Allocate<ushort>(aBits.Length, "A");
        using var db = Device.Allocate<ushort>(bBits.Length, "B");
        da.CopyFrom(aBits);
        db.CopyFrom(bBits);
        string name = $"tuned {output}";
        if (output == TunedOutput.Overwrite)
        {
            using var dc = Device.Allocate<ushort>(m * n, "C");
            dc.FillBytes(0xFF);
            blas.GemmLt(false, true, m, n, k, 1f, da.Pointer, ElementType.Bf16, k, db.Pointer, ElementType.Bf16, k, 0f, dc.Pointer, ElementType.Bf16, n);
            TestGpu.Stream.Synchronize();
            Numerics.AssertClose(name, Bf16.ToFloat(dc.ToArray()), Reference(false, true, m, n, k, 1, a, b, 0, null), 1e-2, seed);
        }
        else
        {
            using var dc = Device.Allocate<float>(m * n, "C");
            using var dd = Device.Allocate<float>(m * n, "D");
            dc.CopyFrom(c0);
            dd.FillBytes(0xFF);
            ulong d = output == TunedOutput.SeparateD ? dd.Pointer : 0;
            blas.GemmLt(false, true, m, n, k, 1f, da.Pointer, ElementType.Bf16, k, db.Pointer, ElementType.Bf16, k, 1f, dc.Pointer, ElementType.F32, n, d: d);
            TestGpu.Stream.Synchronize();
            var expected = Reference(false, true, m, n, k, 1, a, b, 1, c0);
            if (output == TunedOutput.SeparateD)
            {
                Numerics.AssertClose(name + " D", dd.ToArray(), expected, 1e-5, seed);
                Assert.Equal(c0, dc.ToArray());
            }
            else
                Numerics.AssertClose(name, dc.ToArray(), expected, 1e-5, seed);
        }
        var line = Assert.Single(blas.TuneLog);
        Assert.StartsWith($"{m}x{n}x{k} NT: candidates [", line, StringComparison.Ordinal);
    }

    [GpuFact]
    public void A_remembered_choice_is_taken_without_timing_and_gives_the_same_bits()
    {
        int m = 448, n = 384, k = 512, seed = 67;
        var random = new Random(seed);
        var a = RoundedBf16(random, m * k, out var aBits);
        var b = RoundedBf16(random, n * k, out var bBits);
        using var da = Device.Allocate<ushort>(aBits.Length, "A");
        using var db = Device.Allocate<ushort>(bBits.Length, "B");
        using var dc = Device.Allocate<float>(m * n, "C");
        da.CopyFrom(aBits);
        db.CopyFrom(bBits);
        var path = System.IO.Path.Combine(TestGpu.NewTempDirectory("gemm-choices"), "gemm-choices.json");
        string context = Blas.ChoicesContext(Device.Properties, 8);
        float[] Run(Blas blas)
        {
            dc.FillBytes(0xFF);
            blas.GemmLt(false, true, m, n, k, 1f, da.Pointer, ElementType.Bf16, k, db.Pointer, ElementType.Bf16, k, 0f, dc.Pointer, ElementType.F32, n);
            TestGpu.Stream.Synchronize();
            return dc.ToArray();
        }

        float[] timed;
        using (var blas = new Blas(Device, TestGpu.Stream) { TuneCandidates = 8, Choices = new GemmChoices(path, context) })
        {
            timed = Run(blas);
            Assert.StartsWith($"{m}x{n}x{k} NT: candidates [", Assert.Single(blas.TuneLog), StringComparison.Ordinal);
            Assert.Equal(1, blas.Choices!.Count);
            Assert.True(blas.Choices.Save());
        }
        Numerics.AssertClose("timed", timed, Reference(false, true, m, n, k, 1, a, b, 0, null), 1e-5, seed);

        // The next Blas reads the file: the same candidate, no timing, the same sums.
        using var next = new Blas(Device, TestGpu.Stream) { TuneCandidates = 8, Choices = new GemmChoices(path, context) };
        Assert.Equal(1, next.Choices!.Loaded);
        var remembered = Run(next);
        Assert.Matches($"^{m}x{n}x{k} NT: #\\d of \\d candidates, remembered$", Assert.Single(next.TuneLog));
        Assert.Equal(timed, remembered);
        // Planned ahead, before any product: the plan is made without operands, the first product takes it as it is.
        using var ahead = new Blas(Device, TestGpu.Stream) { TuneCandidates = 8, Choices = new GemmChoices(path, context) };
        Assert.Equal(0, ahead.PlanRemembered(new CancellationToken(canceled: true))); // stopped before the first shape
        Assert.Empty(ahead.TuneLog);
        Assert.Equal(1, ahead.PlanRemembered());
        Assert.Equal(TimeSpan.Zero, ahead.PlanningTime);
        Assert.Matches($"^{m}x{n}x{k} NT: #\\d of \\d candidates, remembered$", Assert.Single(ahead.TuneLog));
        Assert.Equal(timed, Run(ahead));
        Assert.Single(ahead.TuneLog); // not planned again
        Assert.Equal(TimeSpan.Zero, ahead.PlanningTime);
        Assert.Equal(0, ahead.PlanRemembered()); // nothing left to plan
    }

    [GpuFact]
    public void Bad_leading_dimension_is_rejected_before_calling_cublas()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            TestGpu.Blas.Gemm(false, false, 4, 4, 8, 1f, 0, ElementType.Bf16, 4, 0, ElementType.Bf16, 4, 0f, 0, ElementType.F32, 4));
        Assert.Contains("lda=4", e.Message, StringComparison.Ordinal);
    }
}

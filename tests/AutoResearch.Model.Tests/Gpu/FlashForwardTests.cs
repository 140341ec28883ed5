using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>The tensor-core flash forward against the fp64 reference (small shapes) and the naive GPU kernel (baseline shapes).</summary>
[Trait("Category", "GPU")]
public class FlashForwardTests
{
    private static CudaDevice Device => TestGpu.Device;

    private static (float[] O, float[] Lse) Run(Action<ulong, ulong, ulong, ulong, ulong> forward, ushort[] q, ushort[] k, ushort[] v, long lseCount)
    {
        using var dQ = Device.Allocate<ushort>(q.Length, "q");
        using var dK = Device.Allocate<ushort>(k.Length, "k");
        using var dV = Device.Allocate<ushort>(v.Length, "v");
        using var dO = Device.Allocate<ushort>(q.Length, "o");
        using var dLse = Device.Allocate<float>(lseCount, "lse");
        dQ.CopyFrom(q);
        dK.CopyFrom(k);
        dV.CopyFrom(v);
        dO.FillBytes(0xFF);
        dLse.FillBytes(0xFF);
        forward(dQ.Pointer, dK.Pointer, dV.Pointer, dO.Pointer, dLse.Pointer);
        TestGpu.Stream.Synchronize();
        return (Bf16.ToFloat(dO.ToArray()), dLse.ToArray());
    }

    [GpuTheory]
    [InlineData(2, 256, 2, 2, 128, 64)]
    [InlineData(1, 200, 3, 3, 128, 77)]
    [InlineData(1, 130, 1, 1, 128, 500)]
    [InlineData(1, 64, 2, 2, 128, 0)]
    [InlineData(2, 256, 4, 4, 64, 64)]
    [InlineData(1, 200, 6, 3, 64, 1000)]
    [InlineData(1, 300, 4, 1, 128, 150)]
    public void Flash_forward_matches_the_fp64_reference(int batch, int seqLen, int heads, int kvHeads, int headDim, int window)
        => AssertMatchesTheReference(new FlashForward(TestGpu.Kernels, headDim), 5000 + seqLen * 3 + window + heads + kvHeads + headDim, batch, seqLen,
            heads, kvHeads, window);

    // A persistent grid of a few CTAs, each running many items: the Q slots and the K/V stages are reused across items of
    // different lengths (one key tile and several), and each CTA's last item ends with stages still in flight.
    [GpuTheory]
    [InlineData(1, 2, 640, 4, 2, 128, 200)]
    [InlineData(3, 2, 640, 4, 2, 128, 200)]
    [InlineData(2, 1, 1000, 3, 3, 64, 300)]
    [InlineData(5, 2, 384, 2, 1, 128, 0)]
    [InlineData(7, 1, 900, 2, 2, 128, 5000)]
    public void Flash_forward_on_a_few_ctas_matches_the_fp64_reference(int ctas, int batch, int seqLen, int heads, int kvHeads, int headDim, int window)
        => AssertMatchesTheReference(new FlashForward(TestGpu.Kernels, headDim, maxCtas: ctas), 5500 + ctas * 31 + seqLen + window + heads + headDim, batch,
            seqLen, heads, kvHeads, window);

    /// <summary><paramref name="flash"/> on fresh random q, k, v (its head size) against <see cref="CpuOps.Attention"/>.</summary>
    private static void AssertMatchesTheReference(FlashForward flash, int seed, int batch, int seqLen, int heads, int kvHeads, int window)
    {
        int headDim = flash.HeadDim;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        var (qb, q) = Numerics.RandomBf16(r, countQ, Math.Sqrt(3));
        var (kb, k) = Numerics.RandomBf16(r, countKv, Math.Sqrt(3));
        var (vb, v) = Numerics.RandomBf16(r, countKv, 1);
        var (oRef, lseRef) = CpuOps.Attention(q, k, v, batch, seqLen, heads, kvHeads, headDim, window);
        var (o, lse) = Run((pq, pk, pv, po, pl) => flash.Forward(pq, pk, pv, batch, seqLen, heads, kvHeads, window, po, pl, TestGpu.Stream), qb, kb, vb,
            (long)batch * heads * seqLen);
        Numerics.AssertClose("o", o, oRef, 1e-2, seed);
        Numerics.AssertClose("lse", lse, lseRef, 1e-4, seed);
    }

    [GpuTheory]
    [InlineData(1024, 4, 4, 128)]
    [InlineData(2048, 4, 4, 128)]
    [InlineData(1024, 8, 2, 64)]
    [InlineData(2048, 8, 8, 128, 8)] // 1,024 items: about 8 a CTA on a 132-SM GPU
    public void Flash_forward_matches_the_naive_kernel_at_the_baseline_sequence_length(int window, int heads, int kvHeads, int headDim, int batch = 2)
    {
        const int seqLen = 2048;
        int seed = 6000 + window + heads + kvHeads + headDim;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        var (qb, _) = Numerics.RandomBf16(r, countQ, Math.Sqrt(3));
        var (kb, _) = Numerics.RandomBf16(r, countKv, Math.Sqrt(3));
        var (vb, _) = Numerics.RandomBf16(r, countKv, 1);
        var flash = new FlashForward(TestGpu.Kernels, headDim);
        var naive = new AttentionNaive(TestGpu.Kernels, headDim);
        var (o, lse) = Run((pq, pk, pv, po, pl) => flash.Forward(pq, pk, pv, batch, seqLen, heads, kvHeads, window, po, pl, TestGpu.Stream), qb, kb, vb,
            (long)batch * heads * seqLen);
        var (oNaive, lseNaive) = Run((pq, pk, pv, po, pl) => naive.Forward(pq, pk, pv, batch, seqLen, heads, kvHeads, window, po, pl, TestGpu.Stream), qb, kb, vb,
            (long)batch * heads * seqLen);
        Numerics.AssertClose("o vs naive", o, oNaive.Select(x => (double)x).ToArray(), 1e-2, seed);
        Numerics.AssertClose("lse vs naive", lse, lseNaive.Select(x => (double)x).ToArray(), 1e-4, seed);
    }
}

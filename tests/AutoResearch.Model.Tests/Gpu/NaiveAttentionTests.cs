using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>The one-warp-per-query attention kernels against the fp64 reference (the oracle for the flash kernels).</summary>
[Trait("Category", "GPU")]
public class NaiveAttentionTests
{
    private static CudaDevice Device => TestGpu.Device;

    [GpuTheory]
    [InlineData(2, 96, 2, 32)]
    [InlineData(1, 77, 3, 200)]
    [InlineData(1, 256, 4, 128)]
    public void Naive_attention_forward_and_backward_match_reference(int batch, int seqLen, int heads, int window)
    {
        int seed = batch * 1000 + seqLen * 10 + window;
        var r = new Random(seed);
        long count = (long)batch * seqLen * heads * 128;
        ushort[] Bits(double scale, out double[] values)
        {
            var bits = new ushort[count];
            values = new double[count];
            for (long i = 0; i < count; i++)
            {
                bits[i] = Bf16.FromFloat((float)((r.NextDouble() * 2 - 1) * scale));
                values[i] = Bf16.ToFloat(bits[i]);
            }
            return bits;
        }
        // QK-normed vectors have RMS 1 (uniform in ±sqrt(3)): realistic score magnitudes.
        var qBits = Bits(Math.Sqrt(3), out var q);
        var kBits = Bits(Math.Sqrt(3), out var k);
        var vBits = Bits(1, out var v);
        var doBits = Bits(1, out var dout);
        var (oRef, lseRef) = CpuOps.Attention(q, k, v, batch, seqLen, heads, window);
        var (dqRef, dkRef, dvRef) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, window);

        var attention = new AttentionNaive(TestGpu.Kernels);
        using var dQ = Device.Allocate<ushort>(count, "q");
        using var dK = Device.Allocate<ushort>(count, "k");
        using var dV = Device.Allocate<ushort>(count, "v");
        using var dDo = Device.Allocate<ushort>(count, "do");
        using var dO = Device.Allocate<ushort>(count, "o");
        using var dLse = Device.Allocate<float>((long)batch * heads * seqLen, "lse");
        using var dDq = Device.Allocate<ushort>(count, "dq");
        using var dDk = Device.Allocate<ushort>(count, "dk");
        using var dDv = Device.Allocate<ushort>(count, "dv");
        using var scratch = Device.Allocate<byte>(attention.BackwardScratchBytes(batch, seqLen, heads), "scratch");
        dQ.CopyFrom(qBits);
        dK.CopyFrom(kBits);
        dV.CopyFrom(vBits);
        dDo.CopyFrom(doBits);
        foreach (var b in new[] { dO, dDq, dDk, dDv })
            b.FillBytes(0xFF);
        dLse.FillBytes(0xFF);
        attention.Forward(dQ.Pointer, dK.Pointer, dV.Pointer, batch, seqLen, heads, window, dO.Pointer, dLse.Pointer, TestGpu.Stream);
        attention.Backward(dQ.Pointer, dK.Pointer, dV.Pointer, dO.Pointer, dDo.Pointer, dLse.Pointer, batch, seqLen, heads, window,
            dDq.Pointer, dDk.Pointer, dDv.Pointer, scratch.Pointer, TestGpu.Stream);
        TestGpu.Stream.Synchronize();
        Numerics.AssertClose("o", Bf16.ToFloat(dO.ToArray()), oRef, 1e-2, seed);
        Numerics.AssertClose("lse", dLse.ToArray(), lseRef, 1e-5, seed);
        Numerics.AssertClose("dq", Bf16.ToFloat(dDq.ToArray()), dqRef, 2e-2, seed);
        Numerics.AssertClose("dk", Bf16.ToFloat(dDk.ToArray()), dkRef, 2e-2, seed);
        Numerics.AssertClose("dv", Bf16.ToFloat(dDv.ToArray()), dvRef, 2e-2, seed);
    }
}

using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// Both attention implementations — the one-warp-per-query kernels (the GPU oracle) and the tensor-core flash kernels —
/// against the fp64 reference at small shapes, and flash against naive at the baseline shape, forward and backward.
/// </summary>
[Trait("Category", "GPU")]
public class AttentionTests
{
    private static CudaDevice Device => TestGpu.Device;

    [GpuTheory]
    [InlineData(false, 2, 96, 2, 32)]
    [InlineData(false, 1, 77, 3, 200)]
    [InlineData(false, 1, 256, 4, 128)]
    [InlineData(true, 2, 96, 2, 32)]
    [InlineData(true, 1, 77, 3, 200)]
    [InlineData(true, 1, 256, 4, 128)]
    [InlineData(true, 2, 200, 2, 0)]
    [InlineData(true, 1, 130, 1, 64)]
    public void Attention_forward_and_backward_match_reference(bool flash, int batch, int seqLen, int heads, int window)
    {
        int seed = batch * 1000 + seqLen * 10 + window;
        var r = new Random(seed);
        long count = (long)batch * seqLen * heads * 128;
        ushort[] Bits(double scale, out double[] values)
        {
            (var bits, values) = Numerics.RandomBf16(r, count, scale);
            return bits;
        }
        // QK-normed vectors have RMS 1 (uniform in ±sqrt(3)): realistic score magnitudes.
        var qBits = Bits(Math.Sqrt(3), out var q);
        var kBits = Bits(Math.Sqrt(3), out var k);
        var vBits = Bits(1, out var v);
        var doBits = Bits(1, out var dout);
        var (oRef, lseRef) = CpuOps.Attention(q, k, v, batch, seqLen, heads, heads, 128, window);
        var (dqRef, dkRef, dvRef) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, heads, 128, window);

        IAttentionKernels attention = flash ? new FlashAttention(TestGpu.Kernels) : new AttentionNaive(TestGpu.Kernels);
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
        if (window == 0)
        {
            // Each query sees only itself: P = 1, so dS = dO·v − dO·o = 0 exactly and dq, dk vanish (a relative error is undefined).
            Assert.All(Bf16.ToFloat(dDq.ToArray()), g => Assert.True(Math.Abs(g) < 1e-3, $"dq {g} should vanish (seed {seed})"));
            Assert.All(Bf16.ToFloat(dDk.ToArray()), g => Assert.True(Math.Abs(g) < 1e-3, $"dk {g} should vanish (seed {seed})"));
        }
        else
        {
            Numerics.AssertClose("dq", Bf16.ToFloat(dDq.ToArray()), dqRef, 2e-2, seed);
            Numerics.AssertClose("dk", Bf16.ToFloat(dDk.ToArray()), dkRef, 2e-2, seed);
        }
        Numerics.AssertClose("dv", Bf16.ToFloat(dDv.ToArray()), dvRef, 2e-2, seed);
    }

    [GpuTheory]
    [InlineData(1024)]
    [InlineData(2048)]
    public void Flash_backward_matches_the_naive_kernel_at_the_baseline_shape(int window)
    {
        const int batch = 2, seqLen = 2048, heads = 4;
        int seed = 7000 + window;
        var r = new Random(seed);
        long count = (long)batch * seqLen * heads * 128;
        ushort[] Bits(double scale) => Numerics.RandomBf16(r, count, scale).Bits;
        var inputs = new[] { Bits(Math.Sqrt(3)), Bits(Math.Sqrt(3)), Bits(1), Bits(1) };
        float[][] Run(IAttentionKernels attention)
        {
            var buffers = Enumerable.Range(0, 8).Select(i => Device.Allocate<ushort>(count, $"buffer {i}")).ToArray();
            using var lse = Device.Allocate<float>((long)batch * heads * seqLen, "lse");
            using var scratch = Device.Allocate<byte>(attention.BackwardScratchBytes(batch, seqLen, heads), "scratch");
            try
            {
                for (int i = 0; i < 4; i++)
                    buffers[i].CopyFrom(inputs[i]);
                for (int i = 4; i < 8; i++)
                    buffers[i].FillBytes(0xFF);
                attention.Forward(buffers[0].Pointer, buffers[1].Pointer, buffers[2].Pointer, batch, seqLen, heads, window, buffers[4].Pointer, lse.Pointer, TestGpu.Stream);
                attention.Backward(buffers[0].Pointer, buffers[1].Pointer, buffers[2].Pointer, buffers[4].Pointer, buffers[3].Pointer, lse.Pointer,
                    batch, seqLen, heads, window, buffers[5].Pointer, buffers[6].Pointer, buffers[7].Pointer, scratch.Pointer, TestGpu.Stream);
                TestGpu.Stream.Synchronize();
                return Enumerable.Range(4, 4).Select(i => Bf16.ToFloat(buffers[i].ToArray())).ToArray();
            }
            finally
            {
                foreach (var b in buffers)
                    b.Dispose();
            }
        }
        var flash = Run(new FlashAttention(TestGpu.Kernels));
        var naive = Run(new AttentionNaive(TestGpu.Kernels));
        string[] names = ["o", "dq", "dk", "dv"];
        for (int i = 0; i < 4; i++)
            Numerics.AssertClose($"{names[i]} flash vs naive", flash[i], naive[i].Select(x => (double)x).ToArray(), 2e-2, seed);
    }
    [GpuTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Backward_writes_gradient_rows_at_a_stride_and_nothing_between_them(bool flash)
    {
        const int batch = 2, seqLen = 150, heads = 2, window = 40;
        int seed = flash ? 9100 : 9200;
        var r = new Random(seed);
        long count = (long)batch * seqLen * heads * 128;
        int width = heads * 128, stride = 3 * width + 128; // dq | dk | dv and a padding column per token row
        var (qBits, q) = Numerics.RandomBf16(r, count, Math.Sqrt(3));
        var (kBits, k) = Numerics.RandomBf16(r, count, Math.Sqrt(3));
        var (vBits, v) = Numerics.RandomBf16(r, count, 1);
        var (doBits, dout) = Numerics.RandomBf16(r, count, 1);
        var (dqRef, dkRef, dvRef) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, heads, 128, window);

        IAttentionKernels attention = flash ? new FlashAttention(TestGpu.Kernels) : new AttentionNaive(TestGpu.Kernels);
        using var dQ = Device.Allocate<ushort>(count, "q");
        using var dK = Device.Allocate<ushort>(count, "k");
        using var dV = Device.Allocate<ushort>(count, "v");
        using var dDo = Device.Allocate<ushort>(count, "do");
        using var dO = Device.Allocate<ushort>(count, "o");
        using var dLse = Device.Allocate<float>((long)batch * heads * seqLen, "lse");
        using var grads = Device.Allocate<ushort>((long)batch * seqLen * stride, "dq | dk | dv | padding");
        using var scratch = Device.Allocate<byte>(attention.BackwardScratchBytes(batch, seqLen, heads), "scratch");
        dQ.CopyFrom(qBits);
        dK.CopyFrom(kBits);
        dV.CopyFrom(vBits);
        dDo.CopyFrom(doBits);
        grads.FillBytes(0xFF);
        attention.Forward(dQ.Pointer, dK.Pointer, dV.Pointer, batch, seqLen, heads, window, dO.Pointer, dLse.Pointer, TestGpu.Stream);
        attention.Backward(dQ.Pointer, dK.Pointer, dV.Pointer, dO.Pointer, dDo.Pointer, dLse.Pointer, batch, seqLen, heads, window,
            grads.Pointer, grads.At(width), grads.At(2 * width), scratch.Pointer, TestGpu.Stream, stride);
        TestGpu.Stream.Synchronize();
        var all = grads.ToArray();
        float[] Part(int part) => Enumerable.Range(0, batch * seqLen)
            .SelectMany(token => Bf16.ToFloat(all.AsSpan(token * stride + part * width, width).ToArray())).ToArray();
        Numerics.AssertClose("dq (strided)", Part(0), dqRef, 2e-2, seed);
        Numerics.AssertClose("dk (strided)", Part(1), dkRef, 2e-2, seed);
        Numerics.AssertClose("dv (strided)", Part(2), dvRef, 2e-2, seed);
        for (int token = 0; token < batch * seqLen; token++)
        {
            for (int j = 3 * width; j < stride; j++)
                Assert.True(all[token * stride + j] == 0xFFFF, $"padding element {j} of token {token} was written (seed {seed})");
        }
    }
}

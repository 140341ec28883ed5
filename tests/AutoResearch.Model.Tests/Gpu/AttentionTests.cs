using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Model.Tests.Gpu;

/// <summary>
/// Both attention implementations — the one-warp-per-query kernels (the GPU oracle) and the tensor-core flash kernels —
/// against the fp64 reference at small shapes, for head sizes 64 and 128 and grouped-query attention, and flash against naive
/// at the baseline's sequence length, forward and backward.
/// </summary>
[Trait("Category", "GPU")]
public class AttentionTests
{
    private static CudaDevice Device => TestGpu.Device;

    private static IAttentionKernels Kernels(bool flash, int headDim)
        => flash ? new FlashAttention(TestGpu.Kernels, headDim) : new AttentionNaive(TestGpu.Kernels, headDim);

    /// <summary>
    /// q, k, v and dO uploaded, o and lse allocated and poisoned: what the backward tests start from. <see cref="Forward"/> runs
    /// the forward into o and lse, which the backward reads.
    /// </summary>
    private sealed class AttentionIo : IDisposable
    {
        public required DeviceBuffer<ushort> Q { get; init; }
        public required DeviceBuffer<ushort> K { get; init; }
        public required DeviceBuffer<ushort> V { get; init; }
        public required DeviceBuffer<ushort> DOut { get; init; }
        public required DeviceBuffer<ushort> O { get; init; }
        public required DeviceBuffer<float> Lse { get; init; }

        public static AttentionIo Upload(ushort[] q, ushort[] k, ushort[] v, ushort[] dout, int batch, int seqLen, int heads)
        {
            var io = new AttentionIo
            {
                Q = Device.Allocate<ushort>(q.Length, "q"),
                K = Device.Allocate<ushort>(k.Length, "k"),
                V = Device.Allocate<ushort>(v.Length, "v"),
                DOut = Device.Allocate<ushort>(dout.Length, "do"),
                O = Device.Allocate<ushort>(q.Length, "o"),
                Lse = Device.Allocate<float>((long)batch * heads * seqLen, "lse"),
            };
            io.Q.CopyFrom(q);
            io.K.CopyFrom(k);
            io.V.CopyFrom(v);
            io.DOut.CopyFrom(dout);
            io.O.FillBytes(0xFF);
            io.Lse.FillBytes(0xFF);
            return io;
        }

        public void Forward(IAttentionKernels attention, int batch, int seqLen, int heads, int kvHeads, int window)
            => attention.Forward(Q.Pointer, K.Pointer, V.Pointer, batch, seqLen, heads, kvHeads, window, O.Pointer, Lse.Pointer,
                TestGpu.Stream);

        public void Dispose()
        {
            foreach (var b in new[] { Q, K, V, DOut, O })
                b.Dispose();
            Lse.Dispose();
        }
    }

    [GpuTheory]
    [InlineData(2, 96, 2, 128)]
    [InlineData(1, 130, 3, 64)]     // rows (390) that end inside a block
    public void Flash_backward_prepare_writes_d_and_zeroes_the_dq_accumulator(int batch, int seqLen, int heads, int headDim)
    {
        int seed = 9700 + batch * 100 + seqLen + heads + headDim;
        var r = new Random(seed);
        long rows = (long)batch * seqLen * heads;
        var (oBits, o) = Numerics.RandomBf16(r, rows * headDim);
        var (doBits, dout) = Numerics.RandomBf16(r, rows * headDim);
        // D [B, H, T] from rows in [B, T, H] order.
        var dRef = new double[rows];
        for (long row = 0; row < rows; row++)
        {
            long head = row % heads, t = row / heads % seqLen, b = row / heads / seqLen;
            dRef[(b * heads + head) * seqLen + t] = Enumerable.Range(0, headDim).Sum(c => o[row * headDim + c] * dout[row * headDim + c]);
        }
        var attention = new FlashAttention(TestGpu.Kernels, headDim);
        using var dO = Device.Allocate<ushort>(rows * headDim, "o");
        using var dDout = Device.Allocate<ushort>(rows * headDim, "do");
        using var scratch = Device.Allocate<float>(attention.BackwardScratchBytes(batch, seqLen, heads, heads) / sizeof(float), "scratch");
        dO.CopyFrom(oBits);
        dDout.CopyFrom(doBits);
        scratch.FillBytes(0xFF); // NaN: what the kernel leaves unwritten shows
        attention.PrepareBackward(dO.Pointer, dDout.Pointer, batch, seqLen, heads, scratch.Pointer, TestGpu.Stream);
        TestGpu.Stream.Synchronize();
        var all = scratch.ToArray();
        Numerics.AssertClose("D", all[..(int)rows], dRef, 1e-5, seed);
        long accumulator = FlashAttention.DqAccumulatorOffset(batch, seqLen, heads) / sizeof(float);
        Assert.All(all[(int)accumulator..(int)(accumulator + rows * headDim)], v => Assert.Equal(0f, v));
    }

    [GpuTheory]
    [InlineData(2, 96, 2, 2, 128, 32)]
    [InlineData(1, 200, 4, 1, 128, 77)]     // grouped-query attention
    [InlineData(1, 130, 4, 2, 64, 64)]      // head size 64, rows that end inside a block
    public void Flash_backward_zeroes_the_other_accumulator_so_the_next_backward_skips_the_zeros(int batch, int seqLen, int heads, int kvHeads,
        int headDim, int window)
    {
        int seed = 9800 + batch * 100 + seqLen + heads * 7 + kvHeads * 3 + headDim + window;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        var (qBits, q) = Numerics.RandomBf16(r, countQ, Math.Sqrt(3));
        var (kBits, k) = Numerics.RandomBf16(r, countKv, Math.Sqrt(3));
        var (vBits, v) = Numerics.RandomBf16(r, countKv, 1);
        var (doBits, dout) = Numerics.RandomBf16(r, countQ, 1);
        var (dqRef, dkRef, dvRef) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, kvHeads, headDim, window);

        var attention = new FlashAttention(TestGpu.Kernels, headDim);
        using var io = AttentionIo.Upload(qBits, kBits, vBits, doBits, batch, seqLen, heads);
        using var dDq = Device.Allocate<ushort>(countQ, "dq");
        using var dDk = Device.Allocate<ushort>(countKv, "dk");
        using var dDv = Device.Allocate<ushort>(countKv, "dv");
        long scratchBytes = attention.BackwardScratchBytes(batch, seqLen, heads, kvHeads);
        using var scratch = Device.Allocate<float>(scratchBytes / sizeof(float), "scratch");
        io.Forward(attention, batch, seqLen, heads, kvHeads, window);
        long first = FlashAttention.DqAccumulatorOffset(batch, seqLen, heads, headDim, 0) / sizeof(float);
        long second = FlashAttention.DqAccumulatorOffset(batch, seqLen, heads, headDim, 1) / sizeof(float);
        Assert.True(second >= first + countQ && (second + countQ) * sizeof(float) <= scratchBytes, "the accumulators overlap or leave the scratch");

        // A backward into accumulator 0 that zeroes accumulator 1: every element of 1, NaN before, is 0 after.
        scratch.FillBytes(0xFF);
        foreach (var b in new[] { dDq, dDk, dDv })
            b.FillBytes(0xFF);
        attention.Backward(io.Q.Pointer, io.K.Pointer, io.V.Pointer, io.O.Pointer, io.DOut.Pointer, io.Lse.Pointer,
            batch, seqLen, heads, kvHeads, window,
            dDq.Pointer, dDk.Pointer, dDv.Pointer, scratch.Pointer, TestGpu.Stream, accumulator: 0, zeroNextAccumulator: true);
        TestGpu.Stream.Synchronize();
        var after = scratch.ToArray();
        Assert.All(after[(int)second..(int)(second + countQ)], value => Assert.Equal(0f, value));
        Numerics.AssertClose("dq (accumulator 0)", Bf16.ToFloat(dDq.ToArray()), dqRef, 2e-2, seed);

        // The next backward, into accumulator 1, prepared without zeros (accumulator 0 poisoned to show it is not read): the
        // same gradients.
        Array.Fill(after, float.NaN, (int)first, (int)countQ);
        Array.Fill(after, float.NaN, 0, batch * heads * seqLen); // D too: the D-only prepare must write it
        scratch.CopyFrom(after);
        foreach (var b in new[] { dDq, dDk, dDv })
            b.FillBytes(0xFF);
        attention.PrepareBackward(io.O.Pointer, io.DOut.Pointer, batch, seqLen, heads, scratch.Pointer, TestGpu.Stream, accumulator: 1,
            accumulatorZeroed: true);
        attention.Backward(io.Q.Pointer, io.K.Pointer, io.V.Pointer, io.O.Pointer, io.DOut.Pointer, io.Lse.Pointer,
            batch, seqLen, heads, kvHeads, window,
            dDq.Pointer, dDk.Pointer, dDv.Pointer, scratch.Pointer, TestGpu.Stream, prepared: true, accumulator: 1, zeroNextAccumulator: true);
        TestGpu.Stream.Synchronize();
        Numerics.AssertClose("dq (accumulator 1)", Bf16.ToFloat(dDq.ToArray()), dqRef, 2e-2, seed);
        // That backward zeroed accumulator 0 again (the other direction, which ends against the tile counter).
        Assert.All(scratch.ToArray()[(int)first..(int)(first + countQ)], value => Assert.Equal(0f, value));
        Numerics.AssertClose("dk", Bf16.ToFloat(dDk.ToArray()), dkRef, 2e-2, seed);
        Numerics.AssertClose("dv", Bf16.ToFloat(dDv.ToArray()), dvRef, 2e-2, seed);
    }

    [GpuTheory]
    [InlineData(false, 2, 96, 2, 2, 128, 32)]
    [InlineData(false, 1, 77, 3, 3, 128, 200)]
    [InlineData(false, 1, 130, 4, 2, 64, 64)]
    [InlineData(true, 2, 96, 2, 2, 128, 32)]
    [InlineData(true, 1, 77, 3, 3, 128, 200)]
    [InlineData(true, 1, 256, 4, 4, 128, 128)]
    [InlineData(true, 2, 200, 2, 2, 128, 0)]
    [InlineData(true, 1, 130, 1, 1, 128, 64)]
    [InlineData(true, 2, 96, 2, 2, 64, 32)]       // head size 64
    [InlineData(true, 1, 256, 8, 8, 64, 128)]
    [InlineData(true, 1, 200, 4, 1, 128, 77)]     // grouped-query attention: 4 query heads on one kv head
    [InlineData(true, 2, 160, 6, 2, 128, 1000)]
    [InlineData(true, 1, 256, 8, 2, 64, 100)]     // both
    [InlineData(true, 1, 130, 4, 4, 64, 0)]
    public void Attention_forward_and_backward_match_reference(bool flash, int batch, int seqLen, int heads, int kvHeads, int headDim, int window)
    {
        int seed = batch * 1000 + seqLen * 10 + window + heads * 7 + kvHeads * 3 + headDim;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        // QK-normed vectors have RMS 1 (uniform in ±sqrt(3)): realistic score magnitudes.
        var (qBits, q) = Numerics.RandomBf16(r, countQ, Math.Sqrt(3));
        var (kBits, k) = Numerics.RandomBf16(r, countKv, Math.Sqrt(3));
        var (vBits, v) = Numerics.RandomBf16(r, countKv, 1);
        var (doBits, dout) = Numerics.RandomBf16(r, countQ, 1);
        var (oRef, lseRef) = CpuOps.Attention(q, k, v, batch, seqLen, heads, kvHeads, headDim, window);
        var (dqRef, dkRef, dvRef) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, kvHeads, headDim, window);

        var attention = Kernels(flash, headDim);
        using var io = AttentionIo.Upload(qBits, kBits, vBits, doBits, batch, seqLen, heads);
        using var dDq = Device.Allocate<ushort>(countQ, "dq");
        using var dDk = Device.Allocate<ushort>(countKv, "dk");
        using var dDv = Device.Allocate<ushort>(countKv, "dv");
        using var scratch = Device.Allocate<byte>(attention.BackwardScratchBytes(batch, seqLen, heads, kvHeads), "scratch");
        foreach (var b in new[] { dDq, dDk, dDv })
            b.FillBytes(0xFF);
        io.Forward(attention, batch, seqLen, heads, kvHeads, window);
        attention.Backward(io.Q.Pointer, io.K.Pointer, io.V.Pointer, io.O.Pointer, io.DOut.Pointer, io.Lse.Pointer,
            batch, seqLen, heads, kvHeads, window,
            dDq.Pointer, dDk.Pointer, dDv.Pointer, scratch.Pointer, TestGpu.Stream);
        TestGpu.Stream.Synchronize();
        Numerics.AssertClose("o", Bf16.ToFloat(io.O.ToArray()), oRef, 1e-2, seed);
        Numerics.AssertClose("lse", io.Lse.ToArray(), lseRef, 1e-5, seed);
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
    [InlineData(1024, 4, 4, 128)]
    [InlineData(2048, 4, 4, 128)]
    [InlineData(1024, 8, 8, 64)]
    [InlineData(2048, 8, 2, 64)]
    [InlineData(1024, 4, 1, 128)]
    public void Flash_backward_matches_the_naive_kernel_at_the_baseline_sequence_length(int window, int heads, int kvHeads, int headDim)
    {
        const int batch = 2, seqLen = 2048;
        int seed = 7000 + window + heads + kvHeads + headDim;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        // q, k, v, do; then o, dq, dk, dv.
        long[] counts = [countQ, countKv, countKv, countQ, countQ, countQ, countKv, countKv];
        var inputs = new[] { Math.Sqrt(3), Math.Sqrt(3), 1, 1 }.Select((scale, i) => Numerics.RandomBf16(r, counts[i], scale).Bits).ToArray();
        float[][] Run(IAttentionKernels attention)
            => [.. ForwardBackward(attention, batch, seqLen, heads, kvHeads, window, counts, inputs, seed).Select(bits => Bf16.ToFloat(bits))];
        var flash = Run(new FlashAttention(TestGpu.Kernels, headDim));
        var naive = Run(new AttentionNaive(TestGpu.Kernels, headDim));
        string[] names = ["o", "dq", "dk", "dv"];
        for (int i = 0; i < 4; i++)
            Numerics.AssertClose($"{names[i]} flash vs naive", flash[i], naive[i].Select(x => (double)x).ToArray(), 2e-2, seed);
    }

    /// <summary>
    /// The forward then the backward of <paramref name="attention"/> on the inputs q, k, v, dO (<paramref name="counts"/> gives
    /// the eight buffers' sizes: q, k, v, dO, then o, dq, dk, dv); the outputs are poisoned first, and the scratch too where
    /// <paramref name="scratchPoison"/> is given. Returns o, dq, dk, dv. A backward that deadlocks fails after 60 s rather than
    /// hanging the run.
    /// </summary>
    private static ushort[][] ForwardBackward(IAttentionKernels attention, int batch, int seqLen, int heads, int kvHeads, int window, long[] counts,
        ushort[][] inputs, int seed, byte? scratchPoison = null)
    {
        var buffers = counts.Select((count, i) => Device.Allocate<ushort>(count, $"buffer {i}")).ToArray();
        using var lse = Device.Allocate<float>((long)batch * heads * seqLen, "lse");
        using var scratch = Device.Allocate<byte>(attention.BackwardScratchBytes(batch, seqLen, heads, kvHeads), "scratch");
        try
        {
            for (int i = 0; i < 4; i++)
                buffers[i].CopyFrom(inputs[i]);
            for (int i = 4; i < 8; i++)
                buffers[i].FillBytes(0xFF);
            if (scratchPoison is { } poison)
                scratch.FillBytes(poison);
            attention.Forward(buffers[0].Pointer, buffers[1].Pointer, buffers[2].Pointer, batch, seqLen, heads, kvHeads, window, buffers[4].Pointer,
                lse.Pointer, TestGpu.Stream);
            attention.Backward(buffers[0].Pointer, buffers[1].Pointer, buffers[2].Pointer, buffers[4].Pointer, buffers[3].Pointer, lse.Pointer,
                batch, seqLen, heads, kvHeads, window, buffers[5].Pointer, buffers[6].Pointer, buffers[7].Pointer, scratch.Pointer, TestGpu.Stream);
            using var done = new CudaEvent(Device);
            done.Record(TestGpu.Stream);
            string ctas = attention is FlashAttention flash ? $" with {flash.BackwardGridLimit} CTAs" : "";
            Assert.True(done.Wait(TimeSpan.FromSeconds(60)), $"the backward{ctas} has not finished after 60 s (seed {seed})");
            return [.. Enumerable.Range(4, 4).Select(i => buffers[i].ToArray())];
        }
        finally
        {
            foreach (var b in buffers)
                b.Dispose();
        }
    }

    [GpuTheory]
    [InlineData(2, 600, 4, 2, 128, 200, 1)]     // one CTA takes all 20 tiles (5 key blocks × 4 pairs): every ring wraps many times
    [InlineData(3, 512, 2, 2, 64, 100, 3)]      // head size 64
    [InlineData(5, 256, 2, 2, 128, 64, 3)]      // 10 (batch, kv head) pairs: a group of 8, then one of 2
    [InlineData(2, 300, 6, 2, 128, 2000, 2)]    // grouped-query attention, the window past T
    [InlineData(1, 2048, 4, 4, 128, 1024, 5)]   // the baseline's T and short window
    [InlineData(2, 130, 1, 1, 64, 0, 1)]        // a tile of one query block past T's end
    public void Flash_backward_gives_the_same_gradients_with_fewer_CTAs_than_tiles(int batch, int seqLen, int heads, int kvHeads, int headDim,
        int window, int gridLimit)
    {
        int seed = 9400 + batch * 100 + seqLen + heads * 7 + kvHeads * 3 + headDim + window + gridLimit;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        // q, k, v, do; then o, dq, dk, dv.
        long[] counts = [countQ, countKv, countKv, countQ, countQ, countQ, countKv, countKv];
        var inputs = new[] { Math.Sqrt(3), Math.Sqrt(3), 1, 1 }.Select((scale, i) => Numerics.RandomBf16(r, counts[i], scale).Bits).ToArray();
        // A tile counter left over from another run must not matter: prepare zeroes it. dq, dk, dv.
        ushort[][] Run(FlashAttention attention)
            => ForwardBackward(attention, batch, seqLen, heads, kvHeads, window, counts, inputs, seed, scratchPoison: 0x7F)[1..];
        var full = Run(new FlashAttention(TestGpu.Kernels, headDim));
        var limited = Run(new FlashAttention(TestGpu.Kernels, headDim) { BackwardGridLimit = gridLimit });
        Assert.All(full.Concat(limited), g => Assert.DoesNotContain((ushort)0xFFFF, g));
        // A tile's dK and dV are its CTA's alone, in a fixed order: the same bits whichever CTA takes it. dq is summed over the
        // tiles in fp32 in whatever order they finish: only a rare bf16 rounding may differ, far below 1e-3 of its norm (one
        // 64-query item's contribution lost at a hand-over would be well above).
        Assert.True(full[1].AsSpan().SequenceEqual(limited[1]), $"dk differs with {gridLimit} CTAs (seed {seed})");
        Assert.True(full[2].AsSpan().SequenceEqual(limited[2]), $"dv differs with {gridLimit} CTAs (seed {seed})");
        if (window > 0)
            Numerics.AssertClose($"dq with {gridLimit} CTAs", Bf16.ToFloat(limited[0]), Bf16.ToFloat(full[0]).Select(x => (double)x).ToArray(), 1e-3, seed);
        else
            Assert.All(Bf16.ToFloat(limited[0]), g => Assert.True(Math.Abs(g) < 1e-3, $"dq {g} should vanish (seed {seed})"));
    }

    [GpuTheory]
    [InlineData(true, 2, 128)]
    [InlineData(false, 2, 128)]
    [InlineData(true, 1, 64)]    // dq | dk | dv of grouped-query attention, head size 64
    [InlineData(false, 1, 64)]
    public void Backward_writes_gradient_rows_at_a_stride_and_nothing_between_them(bool flash, int kvHeads, int headDim)
    {
        const int batch = 2, seqLen = 150, heads = 2, window = 40;
        int seed = (flash ? 9100 : 9200) + kvHeads + headDim;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        int width = heads * headDim, kvWidth = kvHeads * headDim, stride = width + 2 * kvWidth + 64; // dq | dk | dv and padding per token row
        var (qBits, q) = Numerics.RandomBf16(r, countQ, Math.Sqrt(3));
        var (kBits, k) = Numerics.RandomBf16(r, countKv, Math.Sqrt(3));
        var (vBits, v) = Numerics.RandomBf16(r, countKv, 1);
        var (doBits, dout) = Numerics.RandomBf16(r, countQ, 1);
        var (dqRef, dkRef, dvRef) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, kvHeads, headDim, window);

        var attention = Kernels(flash, headDim);
        using var io = AttentionIo.Upload(qBits, kBits, vBits, doBits, batch, seqLen, heads);
        using var grads = Device.Allocate<ushort>((long)batch * seqLen * stride, "dq | dk | dv | padding");
        using var scratch = Device.Allocate<byte>(attention.BackwardScratchBytes(batch, seqLen, heads, kvHeads), "scratch");
        grads.FillBytes(0xFF);
        io.Forward(attention, batch, seqLen, heads, kvHeads, window);
        attention.Backward(io.Q.Pointer, io.K.Pointer, io.V.Pointer, io.O.Pointer, io.DOut.Pointer, io.Lse.Pointer,
            batch, seqLen, heads, kvHeads, window,
            grads.Pointer, grads.At(width), grads.At(width + kvWidth), scratch.Pointer, TestGpu.Stream, stride);
        TestGpu.Stream.Synchronize();
        var all = grads.ToArray();
        float[] Part(int offset, int columns) => Enumerable.Range(0, batch * seqLen)
            .SelectMany(token => Bf16.ToFloat(all.AsSpan(token * stride + offset, columns).ToArray())).ToArray();
        Numerics.AssertClose("dq (strided)", Part(0, width), dqRef, 2e-2, seed);
        Numerics.AssertClose("dk (strided)", Part(width, kvWidth), dkRef, 2e-2, seed);
        Numerics.AssertClose("dv (strided)", Part(width + kvWidth, kvWidth), dvRef, 2e-2, seed);
        for (int token = 0; token < batch * seqLen; token++)
        {
            for (int j = width + 2 * kvWidth; j < stride; j++)
                Assert.True(all[token * stride + j] == 0xFFFF, $"padding element {j} of token {token} was written (seed {seed})");
        }
    }

    /// <summary>
    /// The flash backward given k's rstd and the rotary table writes dk through k's rotary + QK-norm backward, as the model
    /// calls it (strided dq | dk | dv rows, dq left accumulated): k is a real rotary output, and the reference is the fp64
    /// attention backward followed by <see cref="CpuOps.RotaryQkNormBackwardFromOutput"/> (checked by finite differences).
    /// dv is unchanged by it, and nothing between the rows is written. With a grid limit, CTAs take several tiles: the epilogue
    /// reads k from the tile's K in shared memory, and the next tile's K must not land there before those reads.
    /// </summary>
    [GpuTheory]
    [InlineData(2, 150, 2, 2, 128, 40, 0)]
    [InlineData(1, 300, 4, 1, 128, 77, 1)]     // grouped-query attention; the last key tile runs past T; one CTA takes all 3 tiles
    [InlineData(2, 200, 4, 2, 64, 64, 3)]      // head size 64; 8 tiles on 3 CTAs
    [InlineData(1, 2048, 4, 4, 128, 1024, 5)]  // the baseline's T and short window; 64 tiles on 5 CTAs
    [InlineData(1, 2048, 4, 4, 128, 1024, 0)]
    public void Flash_backward_applies_the_k_rotary_backward_to_dk(int batch, int seqLen, int heads, int kvHeads, int headDim, int window,
        int gridLimit)
    {
        int seed = 9300 + batch * 100 + seqLen + heads * 7 + kvHeads * 3 + headDim + window + gridLimit;
        var r = new Random(seed);
        long countQ = (long)batch * seqLen * heads * headDim, countKv = (long)batch * seqLen * kvHeads * headDim;
        int kvRows = batch * seqLen * kvHeads;
        int width = heads * headDim, kvWidth = kvHeads * headDim, stride = width + 2 * kvWidth + 64;
        var cosSin = RotaryTable.CosSin(seqLen, headDim, 10000.0);
        var (_, kPre) = Numerics.RandomBf16(r, countKv, 1);
        var (y, rstd) = CpuOps.RotaryQkNorm(kPre, cosSin, kvRows, kvHeads, seqLen, headDim);
        var kBits = Bf16.FromFloat(y.Select(value => (float)value).ToArray());
        var k = Bf16.ToFloat(kBits).Select(value => (double)value).ToArray();
        var rstdF = rstd.Select(value => (float)value).ToArray();
        var (qBits, q) = Numerics.RandomBf16(r, countQ, Math.Sqrt(3));
        var (vBits, v) = Numerics.RandomBf16(r, countKv, 1);
        var (doBits, dout) = Numerics.RandomBf16(r, countQ, 1);
        var (_, dkAttention, dvRef) = CpuOps.AttentionBackward(q, k, v, dout, batch, seqLen, heads, kvHeads, headDim, window);
        var dkRef = CpuOps.RotaryQkNormBackwardFromOutput(k, rstdF.Select(value => (double)value).ToArray(), dkAttention, cosSin,
            kvRows, kvHeads, seqLen, headDim);

        var attention = gridLimit > 0 ? new FlashAttention(TestGpu.Kernels, headDim) { BackwardGridLimit = gridLimit } : new FlashAttention(TestGpu.Kernels, headDim);
        Assert.True(attention.FusesKRotaryBackward);
        using var io = AttentionIo.Upload(qBits, kBits, vBits, doBits, batch, seqLen, heads);
        using var dRstd = Device.Allocate<float>(kvRows, "k rstd");
        var pairs = RotaryTable.Bf16Pairs(cosSin, seqLen, headDim);
        using var dPairs = Device.Allocate<uint>(pairs.Length, "cos/sin bf16 pairs");
        using var grads = Device.Allocate<ushort>((long)batch * seqLen * stride, "dq | dk | dv | padding");
        using var scratch = Device.Allocate<byte>(attention.BackwardScratchBytes(batch, seqLen, heads, kvHeads), "scratch");
        dRstd.CopyFrom(rstdF);
        dPairs.CopyFrom(pairs);
        grads.FillBytes(0xFF);
        io.Forward(attention, batch, seqLen, heads, kvHeads, window);
        attention.Backward(io.Q.Pointer, io.K.Pointer, io.V.Pointer, io.O.Pointer, io.DOut.Pointer, io.Lse.Pointer,
            batch, seqLen, heads, kvHeads, window,
            grads.Pointer, grads.At(width), grads.At(width + kvWidth), scratch.Pointer, TestGpu.Stream, stride, leaveDqAccumulated: true,
            kRotary: new KRotaryBackward(dRstd.Pointer, dPairs.Pointer));
        TestGpu.Stream.Synchronize();
        var all = grads.ToArray();
        float[] Part(int offset, int columns) => Enumerable.Range(0, batch * seqLen)
            .SelectMany(token => Bf16.ToFloat(all.AsSpan(token * stride + offset, columns).ToArray())).ToArray();
        Numerics.AssertClose("dk through the rotary backward", Part(width, kvWidth), dkRef, 2e-2, seed);
        Numerics.AssertClose("dv", Part(width + kvWidth, kvWidth), dvRef, 2e-2, seed);
        // Without the rotary backward, dk would be far off (the check above can tell the two apart).
        Assert.True(Numerics.RelativeError(Part(width, kvWidth), dkAttention) > 0.2, $"dk should differ from the attention's own dk (seed {seed})");
        for (int token = 0; token < batch * seqLen; token++)
        {
            for (int j = width + 2 * kvWidth; j < stride; j++)
                Assert.True(all[token * stride + j] == 0xFFFF, $"padding element {j} of token {token} was written (seed {seed})");
        }
    }

    [GpuFact]
    public void Naive_attention_refuses_the_k_rotary_backward()
    {
        var attention = new AttentionNaive(TestGpu.Kernels, 128);
        Assert.False(attention.FusesKRotaryBackward);
        var error = Assert.Throws<NotSupportedException>(() => attention.Backward(0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, TestGpu.Stream,
            kRotary: new KRotaryBackward(1, 1)));
        Assert.Contains("rotary", error.Message);
    }
}

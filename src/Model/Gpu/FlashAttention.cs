using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for the tensor-core flash attention: the forward of kernels/flash_forward.cu and the backward of
/// kernels/flash_backward.cu (prepare D and the fp32 dq accumulator, a persistent grid taking tiles of one key block and kv
/// head, then dq to bf16), both
/// compiled for one head size (-DHEAD_DIM = 64 or 128), any grouping of query heads onto kv heads. The attention the model uses.
/// </summary>
public sealed class FlashAttention : IAttentionKernels
{
    /// <summary>Keys per backward CTA (two warpgroups of 64); query blocks are 64 rows.</summary>
    private const int KeyBlock = 128;
    private const int QueryBlock = 64;
    /// <summary>Threads per backward CTA: two math warpgroups and one for the TMA producer and the dQ writer.</summary>
    private const int BackwardThreads = 384;

    private readonly FlashForward _forward;
    private readonly CudaKernel _prepare;
    private readonly int _prepareRowsPerBlock;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _finish;
    private readonly int _backwardSharedBytes;
    private readonly int _multiprocessors;

    /// <summary>The backward's kernel file and options.</summary>
    public static KernelSource BackwardSource(int headDim) => new("flash_backward.cu", [$"-DHEAD_DIM={headDim}"]);

    /// <summary>Every kernel file and options this launcher loads: the forward's and the backward's.</summary>
    public static IReadOnlyList<KernelSource> Sources(int headDim) => [FlashForward.Source(headDim), BackwardSource(headDim)];

    public FlashAttention(KernelCache kernels, int headDim = 128)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        CheckHeadDim(headDim);
        HeadDim = headDim;
        _forward = new FlashForward(kernels, headDim);
        var module = kernels.Load(BackwardSource(headDim));
        _prepare = module.GetKernel("flash_attention_backward_prepare");
        _backward = module.GetKernel("flash_attention_backward");
        _finish = module.GetKernel("flash_attention_backward_finish");
        // The (b, t, h) rows a 256-thread block of the prepare kernel covers; a kernel file from before that export (the kernel
        // benchmarks' --before) took one row a warp.
        _prepareRowsPerBlock = module.TryReadInt32("flash_backward_prepare_rows") ?? KernelLaunch.RowsPerBlock;
        // K, V, two stages of Q, dO, lse and D, two dSᵀ buffers, two dQ staging stages, the mbarriers (backward_layout in the kernel).
        _backwardSharedBytes = module.ReadInt32("flash_backward_shared_bytes");
        _backward.SetMaxDynamicSharedMemory(_backwardSharedBytes);
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    public int HeadDim { get; }

    /// <summary>
    /// The backward's CTAs at most (it is persistent: each CTA takes tiles of 128 keys of one kv head until none are left);
    /// by default one an SM. Fewer make each CTA take more tiles: tests use it to run the tile hand-over many times on a
    /// small problem.
    /// </summary>
    public int BackwardGridLimit
    {
        get => _backwardGridLimit ?? _multiprocessors;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _backwardGridLimit = value;
        }
    }

    private readonly int? _backwardGridLimit;

    /// <summary>The head sizes the kernels are built for, or an error naming the knob.</summary>
    internal static void CheckHeadDim(int headDim)
    {
        if (!ModelShape.SupportedHeadDims.Contains(headDim))
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"the flash attention kernels are built for head sizes {string.Join(", ", ModelShape.SupportedHeadDims)} (the HeadDim knob)");
    }

    internal static void CheckHeads(int heads, int kvHeads)
    {
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0)
            throw new ArgumentException($"attention needs kv heads dividing the query heads; got {heads} query and {kvHeads} kv heads (the KvHeads knob)");
    }

    /// <summary>D [B, H, T] and the dq accumulator [B, H, T, D] (each row's columns permuted: dq_column in kernels/common.cuh),
    /// both fp32, then the backward's tile counter (an int), then a second accumulator (accumulator 1: a backward can zero the
    /// other one for the next, see <see cref="Backward"/>); the accumulators start at 256-byte boundaries (the kernels access
    /// them 16 bytes at a time).</summary>
    public long BackwardScratchBytes(int batch, int seqLen, int heads, int kvHeads) => ScratchBytes(batch, seqLen, heads, HeadDim);

    /// <summary><see cref="BackwardScratchBytes"/> for head size <paramref name="headDim"/>, before any kernel is loaded (the
    /// memory estimate).</summary>
    public static long ScratchBytes(int batch, int seqLen, int heads, int headDim)
        => SecondAccumulatorOffset(batch, seqLen, heads, headDim) + 4L * batch * seqLen * heads * headDim;

    private static long SecondAccumulatorOffset(int batch, int seqLen, int heads, int headDim) => TileCounterOffset(batch, seqLen, heads, headDim) + 256;

    private static long TileCounterOffset(int batch, int seqLen, int heads, int headDim)
        => DqAccumOffset((long)batch * seqLen * heads) + 4L * batch * seqLen * heads * headDim;

    private static long DqAccumOffset(long rows) => (rows * sizeof(float) + 255) / 256 * 256;

    /// <summary>Where the dq accumulator starts in the backward's scratch, in bytes (D [B, H, T] fp32 comes first).</summary>
    public static long DqAccumulatorOffset(int batch, int seqLen, int heads) => DqAccumOffset((long)batch * seqLen * heads);

    /// <summary>Where dq accumulator 0 or 1 starts in the backward's scratch, in bytes, for head size <paramref name="headDim"/>.</summary>
    public static long DqAccumulatorOffset(int batch, int seqLen, int heads, int headDim, int accumulator) => accumulator switch
    {
        0 => DqAccumOffset((long)batch * seqLen * heads),
        1 => SecondAccumulatorOffset(batch, seqLen, heads, headDim),
        _ => throw new ArgumentOutOfRangeException(nameof(accumulator), accumulator, "the backward's scratch holds dq accumulators 0 and 1"),
    };

    /// <summary>
    /// The backward's first kernel, which <see cref="Backward"/> runs unless told it ran (prepared: true): D = Σ_d o·dout per
    /// (b, h, t) into the scratch's first [B, H, T] fp32, the chosen dq accumulator (<see
    /// cref="DqAccumulatorOffset(int, int, int, int, int)"/>) and the tile counter zeroed. The model runs it apart, so that
    /// `profile` times it apart: it moves ~(2 + 2 + 4)·D bytes a row, (2 + 2)·D when the accumulator is zero already.
    /// </summary>
    /// <param name="accumulator">Which dq accumulator the backward will add to (0 or 1).</param>
    /// <param name="accumulatorZeroed">It is zero already (the backward before this one zeroed it, zeroNextAccumulator): only
    /// D is written, which halves the bytes.</param>
    public void PrepareBackward(ulong o, ulong dout, int batch, int seqLen, int heads, ulong scratch, CudaStream stream, int accumulator = 0,
        bool accumulatorZeroed = false)
    {
        long rows = (long)batch * seqLen * heads;
        ulong dqAccum = scratch + (ulong)DqAccumulatorOffset(batch, seqLen, heads, HeadDim, accumulator); // checks accumulator is 0 or 1
        if (accumulatorZeroed)
            dqAccum = 0;
        ulong tileCounter = scratch + (ulong)TileCounterOffset(batch, seqLen, heads, HeadDim);
        _prepare.Launch(Dim3.Blocks(rows, _prepareRowsPerBlock), KernelLaunch.RowBlock, 0, stream, o, dout, scratch, dqAccum, tileCounter, batch, seqLen, heads);
    }

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int kvHeads, int window, ulong o, ulong lse, CudaStream stream)
        => _forward.Forward(q, k, v, batch, seqLen, heads, kvHeads, window, o, lse, stream);

    /// <summary>True: accumulators 0 and 1 (<see cref="Backward"/>).</summary>
    public bool AlternatesAccumulators => true;

    /// <summary>True: the backward's epilogue applies k's rotary + QK-norm backward to dk when given a <see cref="KRotaryBackward"/>.</summary>
    public bool FusesKRotaryBackward => true;

    /// <summary>The backward; with <paramref name="leaveDqAccumulated"/>, dq stays in the fp32 accumulator (whose address it
    /// returns) and dq is not written. It adds dq into accumulator <paramref name="accumulator"/> (0 or 1) of the scratch; with
    /// <paramref name="zeroNextAccumulator"/> its idle warps also zero the other one, so that the next backward on this scratch
    /// (taking that one, after its reader is done with it in stream order) can be prepared with accumulatorZeroed: true and
    /// move half the prepare's bytes under this one's products.</summary>
    public ulong Backward(ulong q, ulong k, ulong v, ulong o, ulong dout, ulong lse, int batch, int seqLen, int heads, int kvHeads, int window,
        ulong dq, ulong dk, ulong dv, ulong scratch, CudaStream stream, int gradRowStride = 0, bool leaveDqAccumulated = false,
        KRotaryBackward? kRotary = null, bool prepared = false, int accumulator = 0, bool zeroNextAccumulator = false)
    {
        CheckHeads(heads, kvHeads);
        if (kRotary is { } rotary && (rotary.Rstd == 0 || rotary.CosSinPairs == 0 || rotary.CosSinPairs % 8 != 0))
            throw new ArgumentException("the k rotary backward needs k's rstd and the rotary table's bf16 pairs (device pointers, not 0; the table 8-byte aligned)", nameof(kRotary));
        long qStride = gradRowStride == 0 ? (long)heads * HeadDim : gradRowStride;
        long kvStride = gradRowStride == 0 ? (long)kvHeads * HeadDim : gradRowStride;
        long rows = (long)batch * seqLen * heads;
        ulong d = scratch, dqAccum = scratch + (ulong)DqAccumulatorOffset(batch, seqLen, heads, HeadDim, accumulator);
        ulong tileCounter = scratch + (ulong)TileCounterOffset(batch, seqLen, heads, HeadDim);
        ulong zeroNext = zeroNextAccumulator ? scratch + (ulong)DqAccumulatorOffset(batch, seqLen, heads, HeadDim, 1 - accumulator) : 0UL;
        if (!prepared)
            PrepareBackward(o, dout, batch, seqLen, heads, scratch, stream, accumulator);
        ReadOnlySpan<TensorMap> maps =
        [
            TensorMap.Bf16SwizzledBatched(q, batch, seqLen, (long)heads * HeadDim, QueryBlock, 64),
            TensorMap.Bf16SwizzledBatched(k, batch, seqLen, (long)kvHeads * HeadDim, KeyBlock, 64),
            TensorMap.Bf16SwizzledBatched(v, batch, seqLen, (long)kvHeads * HeadDim, KeyBlock, 64),
            TensorMap.Bf16SwizzledBatched(dout, batch, seqLen, (long)heads * HeadDim, QueryBlock, 64),
        ];
        long tiles = (long)Dim3.Blocks(seqLen, KeyBlock) * batch * kvHeads;
        if (tiles > int.MaxValue)
            throw new ArgumentException($"the attention backward counts its tiles in an int: {tiles} tiles of {KeyBlock} keys (batch {batch}, T {seqLen}, {kvHeads} kv heads) are too many");
        _backward.Launch(new Dim3((uint)Math.Min(tiles, BackwardGridLimit)), BackwardThreads, _backwardSharedBytes, stream,
            maps, lse, d, dqAccum, dk, dv, tileCounter, batch, seqLen, heads, kvHeads, window, kvStride, (int)Dim3.Blocks(seqLen, KeyBlock),
            batch * kvHeads, (int)tiles, kRotary?.Rstd ?? 0UL, kRotary?.CosSinPairs ?? 0UL, zeroNext, rows * HeadDim / 4);
        if (leaveDqAccumulated)
            return dqAccum;
        long count = rows * HeadDim;
        _finish.Launch(KernelLaunch.ElementwiseBlocks(count, _multiprocessors), KernelLaunch.RowBlock, 0, stream, dqAccum, dq, count, seqLen, heads, qStride);
        return 0;
    }
}

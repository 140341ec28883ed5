using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/embedding.cu: token/value-embedding lookup and its gradient scatter-add, and the model's first step,
/// x0 = norm(wte[ids]), with its backward, each in one pass that never writes the gathered rows; and the token positions
/// grouped by id (<see cref="GroupTokens"/>), which the table gradients (this backward, <see cref="ValueGate.Backward"/>) take
/// to add each run of equal ids once.
/// </summary>
public sealed class Embedding
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _normForward;
    private readonly CudaKernel _normBackward;
    private readonly CudaKernel _normBackwardNarrow;
    private readonly CudaKernel _normBackwardGrouped;
    private readonly CudaKernel _normBackwardGroupedNarrow;
    private readonly CudaKernel _tokenCount;
    private readonly CudaKernel _tokenOffsets;
    private readonly CudaKernel _tokenScatter;
    private readonly int _multiprocessors;

    /// <summary>The widest row <see cref="NormForward"/> and <see cref="NormBackward"/> take (the norm kernels' limit).</summary>
    public const int MaxNormWidth = 4096;

    /// <summary>The widest row <see cref="NormBackward"/> takes in grouped order (a run's sum in registers); wider rows are added
    /// a token at a time.</summary>
    public const int MaxGroupedWidth = 1024;

    /// <summary>Whether <see cref="NormBackward"/> takes rows of <paramref name="width"/> features in grouped order when given one.</summary>
    public static bool TakesGroupedOrder(int width) => width <= MaxGroupedWidth;

    /// <summary>Positions of the grouped order a warp takes: GROUP_SPAN in kernels/common.cuh. The grid is sized for it; the
    /// kernels stride over the spans, so a span set otherwise there (a trial) is still correct.</summary>
    public const int GroupSpan = 32;

    /// <summary>Blocks of the grouped kernels: a span a warp, 16 blocks a multiprocessor at most (the warps stride over the rest),
    /// and at most <paramref name="maxBlocks"/> where that is positive (tests: several spans a warp).</summary>
    internal static uint GroupedBlocks(int n, int multiprocessors, int maxBlocks = 0)
    {
        long spansPerBlock = (long)GroupSpan * KernelLaunch.RowsPerBlock;
        long blocks = Math.Clamp((n + spansPerBlock - 1) / spansPerBlock, 1, 16L * multiprocessors);
        return (uint)(maxBlocks > 0 ? Math.Min(blocks, maxBlocks) : blocks);
    }

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source() => new("embedding.cu");

    public Embedding(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load(Source());
        _forward = module.GetKernel("embedding_forward");
        _backward = module.GetKernel("embedding_backward");
        _normForward = module.GetKernel("embedding_norm_forward");
        _normBackward = module.GetKernel("embedding_norm_backward");
        _normBackwardNarrow = module.GetKernel("embedding_norm_backward_512");
        _normBackwardGrouped = module.GetKernel("embedding_norm_backward_grouped");
        _normBackwardGroupedNarrow = module.GetKernel("embedding_norm_backward_grouped_512");
        _tokenCount = module.GetKernel("token_count");
        _tokenOffsets = module.GetKernel("token_offsets");
        _tokenScatter = module.GetKernel("token_scatter");
        _multiprocessors = KernelLaunch.Multiprocessors(kernels);
    }

    /// <summary>
    /// order = the positions 0 .. n−1 with equal ids adjacent, the ids ascending (the positions of one id in no set order):
    /// a counting sort in three launches, cursor zeroed first. Every id must lie in [0, vocab).
    /// </summary>
    public void GroupTokens(ulong ids /* [n] int32 */, int n, int vocab, ulong order /* [n] int32, written */,
        ulong cursor /* [vocab] int32 scratch */, CudaStream stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocab);
        Cuda.cuMemsetD32Async(cursor, 0, (nuint)vocab, stream.Handle).Check();
        uint blocks = Dim3.Blocks(n, KernelLaunch.RowBlock);
        _tokenCount.Launch(blocks, KernelLaunch.RowBlock, 0, stream, ids, cursor, n);
        _tokenOffsets.Launch(1, 1024, 0, stream, cursor, vocab);
        _tokenScatter.Launch(blocks, KernelLaunch.RowBlock, 0, stream, ids, cursor, order, n);
    }

    /// <summary>out[i, :] = table[ids[i], :].</summary>
    public void Forward(ulong ids /* [n] int32 */, ulong table /* [vocab, c] bf16 */, int n, int c, ulong output /* [n, c] bf16 */, CudaStream stream)
    {
        KernelLaunch.RequireMultipleOf8(c, nameof(c));
        _forward.Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, ids, table, output, n, c);
    }

    /// <summary>dtable[ids[i], :] += dout[i, :] (dout bf16, read 8 values at a time; fp32 vector atomics, 16 bytes each).</summary>
    public void Backward(ulong ids /* [n] int32 */, ulong dout /* [n, c] bf16 */, int n, int c, ulong dtable /* [vocab, c] fp32, accumulated */, CudaStream stream)
    {
        KernelLaunch.RequireMultipleOf8(c, nameof(c));
        KernelLaunch.RequireAligned(dout, 16, nameof(dout));
        KernelLaunch.RequireAligned(dtable, 16, nameof(dtable));
        _backward.Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, ids, dout, dtable, n, c);
    }

    /// <summary>x0[i, :] = norm(table[ids[i], :]), rstd[i] = 1/sqrt(mean(row²) + eps): the gather and <see cref="RmsNorm.Forward"/> in one
    /// pass, bit for bit, without writing the gathered rows.</summary>
    public void NormForward(ulong ids /* [n] int32 */, ulong table /* [vocab, c] bf16 */, int n, int c, ulong x0 /* [n, c] bf16 */,
        ulong rstd /* [n] fp32 */, CudaStream stream)
    {
        CheckNormWidth(c);
        _normForward.Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream, ids, table, x0, rstd, n, c);
    }

    /// <summary>
    /// dtable[ids[i], :] += bf16(the norm's backward of dy at row i), from the table's rows gathered again and the forward's rstd:
    /// <see cref="RmsNorm.Backward"/> (bf16 in, bf16 out) then <see cref="Backward"/>, in one pass, the same values (fp32 vector
    /// atomics: only their order varies).
    /// </summary>
    /// <remarks>With <paramref name="order"/> (<see cref="GroupTokens"/> of these ids) and rows of at most
    /// <see cref="MaxGroupedWidth"/> features, each run of equal ids is summed in registers and added once (on at most
    /// <paramref name="maxBlocks"/> blocks where that is positive).</remarks>
    public void NormBackward(ulong ids /* [n] int32 */, ulong table /* [vocab, c] bf16 */, ulong rstd /* [n] fp32 */, ulong dy /* [n, c] bf16 */,
        int n, int c, ulong dtable /* [vocab, c] fp32, accumulated */, CudaStream stream, ulong order = 0 /* [n] int32, or none */,
        int maxBlocks = 0)
    {
        CheckNormWidth(c);
        KernelLaunch.RequireAligned(dtable, 16, nameof(dtable));
        if (order != 0 && TakesGroupedOrder(c))
        {
            (RmsNorm.TakesNarrowBackward(c) ? _normBackwardGroupedNarrow : _normBackwardGrouped).Launch(GroupedBlocks(n, _multiprocessors, maxBlocks),
                KernelLaunch.RowBlock, 0, stream, order, ids, table, rstd, dy, dtable, n, c);
            return;
        }
        // Rows of up to 512 features take the kernel with two chunks a lane in registers, as RmsNorm.Backward does.
        (RmsNorm.TakesNarrowBackward(c) ? _normBackwardNarrow : _normBackward).Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream,
            ids, table, rstd, dy, dtable, n, c);
    }

    private static void CheckNormWidth(int c)
    {
        KernelLaunch.RequireMultipleOf8(c, nameof(c));
        if (c > MaxNormWidth)
            throw new ArgumentOutOfRangeException(nameof(c), c, $"the embedding norm kernels take rows of at most {MaxNormWidth} features");
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/embedding.cu: token/value-embedding lookup and its gradient scatter-add, and the model's first step,
/// x0 = norm(wte[ids]), with its backward, each in one pass that never writes the gathered rows.
/// </summary>
public sealed class Embedding
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;
    private readonly CudaKernel _normForward;
    private readonly CudaKernel _normBackward;
    private readonly CudaKernel _normBackwardNarrow;

    /// <summary>The widest row <see cref="NormForward"/> and <see cref="NormBackward"/> take (the norm kernels' limit).</summary>
    public const int MaxNormWidth = 4096;

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
    public void NormBackward(ulong ids /* [n] int32 */, ulong table /* [vocab, c] bf16 */, ulong rstd /* [n] fp32 */, ulong dy /* [n, c] bf16 */,
        int n, int c, ulong dtable /* [vocab, c] fp32, accumulated */, CudaStream stream)
    {
        CheckNormWidth(c);
        KernelLaunch.RequireAligned(dtable, 16, nameof(dtable));
        // Rows of up to 512 features take the kernel with two chunks a lane in registers, as RmsNorm.Backward does.
        (c <= RmsNorm.NarrowBackwardWidth ? _normBackwardNarrow : _normBackward).Launch(KernelLaunch.RowBlocks(n), KernelLaunch.RowBlock, 0, stream,
            ids, table, rstd, dy, dtable, n, c);
    }

    private static void CheckNormWidth(int c)
    {
        KernelLaunch.RequireMultipleOf8(c, nameof(c));
        if (c > MaxNormWidth)
            throw new ArgumentOutOfRangeException(nameof(c), c, $"the embedding norm kernels take rows of at most {MaxNormWidth} features");
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/embedding.cu: token/value-embedding lookup and its gradient scatter-add.</summary>
public sealed class Embedding
{
    private readonly CudaKernel _forward;
    private readonly CudaKernel _backward;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source() => new("embedding.cu");

    public Embedding(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        var module = kernels.Load(Source());
        _forward = module.GetKernel("embedding_forward");
        _backward = module.GetKernel("embedding_backward");
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
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/flash_forward.cu: the wgmma flash attention forward (sm_90a), for one head size (-DHEAD_DIM), on a
/// persistent grid of one CTA per SM.
/// </summary>
public sealed class FlashForward
{
    /// <summary>Query rows per CTA (two warpgroups of 64) and keys per tile.</summary>
    public const int Tile = 128;

    /// <summary>Threads per CTA: two math warpgroups and one whose first thread is the TMA producer.</summary>
    private const int Threads = 384;

    private readonly CudaKernel _forward;
    private readonly int _gridLimit;
    private readonly bool _persistent;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source(int headDim) => new("flash_forward.cu", [$"-DHEAD_DIM={headDim}"]);

    /// <param name="maxCtas">The persistent grid's size at most (default: the SM count). Tests set a few, so that each CTA
    /// runs many items of a small shape.</param>
    public FlashForward(KernelCache kernels, int headDim, int? maxCtas = null)
    {
        if (maxCtas is < 1)
            throw new ArgumentOutOfRangeException(nameof(maxCtas), maxCtas, "the persistent grid needs at least one CTA");
        ArgumentNullException.ThrowIfNull(kernels);
        FlashAttention.CheckHeadDim(headDim);
        HeadDim = headDim;
        var module = kernels.Load(Source(headDim));
        _forward = module.GetKernel("flash_attention_forward");
        SharedBytes = module.ReadInt32("flash_forward_shared_bytes");
        _forward.SetMaxDynamicSharedMemory(SharedBytes);
        _gridLimit = maxCtas ?? KernelLaunch.Multiprocessors(kernels);
        // A kernel file from before the persistent grid (the benchmarks' --before) exports no flag: one CTA per query block and head.
        _persistent = module.TryReadInt32("flash_forward_persistent") == 1;
    }

    public int HeadDim { get; }

    /// <summary>The two Q tiles, the stages of K and V tiles and the mbarriers (the kernel's forward_layout, read from the module).</summary>
    public int SharedBytes { get; }

    public void Forward(ulong q /* [B, T, H, D] bf16 */, ulong k /* [B, T, KV, D] bf16 */, ulong v /* [B, T, KV, D] bf16 */, int batch, int seqLen,
        int heads, int kvHeads, int window, ulong o /* [B, T, H, D] bf16 */, ulong lse /* [B, H, T] fp32 */, CudaStream stream)
    {
        FlashAttention.CheckHeads(heads, kvHeads);
        ReadOnlySpan<TensorMap> maps =
        [
            TensorMap.Bf16SwizzledBatched(q, batch, seqLen, (long)heads * HeadDim, Tile, 64),
            TensorMap.Bf16SwizzledBatched(k, batch, seqLen, (long)kvHeads * HeadDim, Tile, 64),
            TensorMap.Bf16SwizzledBatched(v, batch, seqLen, (long)kvHeads * HeadDim, Tile, 64),
        ];
        // Persistent: at most one CTA an SM (the shared memory allows no more), each looping over its share of the
        // (query block, b, h) items.
        // The kernel's item counter steps by the grid size in an int, so it must not pass int.MaxValue on the way.
        long items = (long)Dim3.Blocks(seqLen, Tile) * batch * heads;
        if (items > int.MaxValue - _gridLimit)
            throw new ArgumentException($"{items} attention work items (B {batch} × H {heads} × {Dim3.Blocks(seqLen, Tile)} query blocks) exceed the kernel's int range");
        var grid = _persistent ? new Dim3((uint)Math.Min(items, _gridLimit)) : new Dim3(Dim3.Blocks(seqLen, Tile), (uint)(batch * heads));
        _forward.Launch(grid, Threads, SharedBytes, stream, maps, o, lse, batch, seqLen, heads, kvHeads, window);
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/flash_forward.cu: the wgmma flash attention forward (sm_90a), for one head size (-DHEAD_DIM).</summary>
public sealed class FlashForward
{
    /// <summary>Query rows per CTA (two warpgroups of 64) and keys per tile.</summary>
    public const int Tile = 128;

    /// <summary>Threads per CTA: two math warpgroups and one whose first thread is the TMA producer.</summary>
    private const int Threads = 384;

    private readonly CudaKernel _forward;

    /// <summary>The kernel file and options this launcher loads (<see cref="KernelSource"/>).</summary>
    public static KernelSource Source(int headDim) => new("flash_forward.cu", [$"-DHEAD_DIM={headDim}"]);

    public FlashForward(KernelCache kernels, int headDim)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        FlashAttention.CheckHeadDim(headDim);
        HeadDim = headDim;
        var module = kernels.Load(Source(headDim));
        _forward = module.GetKernel("flash_attention_forward");
        SharedBytes = module.ReadInt32("flash_forward_shared_bytes");
        _forward.SetMaxDynamicSharedMemory(SharedBytes);
    }

    public int HeadDim { get; }

    /// <summary>The Q tile, the stages of K and V tiles and the mbarriers (the kernel's forward_layout, read from the module).</summary>
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
        _forward.Launch(new Dim3(Dim3.Blocks(seqLen, Tile), (uint)(batch * heads)), Threads, SharedBytes, stream, maps, o, lse, batch,
            seqLen, heads, kvHeads, window);
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/flash_forward.cu: the wgmma flash attention forward (head dim 128, sm_90a).</summary>
public sealed class FlashForward
{
    /// <summary>Query rows per CTA (two warpgroups of 64) and keys per tile.</summary>
    public const int Tile = 128;

    /// <summary>Threads per CTA: two math warpgroups and one whose first thread is the TMA producer.</summary>
    private const int Threads = 384;

    /// <summary>K and V tiles in flight (FWD_STAGES in the kernel).</summary>
    private const int Stages = 2;

    /// <summary>The Q tile and <see cref="Stages"/> each of the K and V tiles, 128 rows × 128 bf16 each (sw128 layout), the
    /// mbarriers, and 1 KB to align the tiles to 1024 bytes (FORWARD_SMEM in the kernel).</summary>
    public const int SharedBytes = (1 + 2 * Stages) * Tile * 128 * 2 + (1 + 4 * Stages) * 8 + 1024;

    private readonly CudaKernel _forward;

    public FlashForward(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        _forward = kernels.Load("flash_forward.cu").GetKernel("flash_attention_forward");
        _forward.SetMaxDynamicSharedMemory(SharedBytes);
    }

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o /* [B, T, H, 128] bf16 */,
        ulong lse /* [B, H, T] fp32 */, CudaStream stream)
    {
        long columns = (long)heads * 128;
        ReadOnlySpan<TensorMap> maps =
        [
            TensorMap.Bf16SwizzledBatched(q, batch, seqLen, columns, Tile, 64),
            TensorMap.Bf16SwizzledBatched(k, batch, seqLen, columns, Tile, 64),
            TensorMap.Bf16SwizzledBatched(v, batch, seqLen, columns, Tile, 64),
        ];
        _forward.Launch(new Dim3(Dim3.Blocks(seqLen, Tile), (uint)(batch * heads)), Threads, SharedBytes, stream, maps, o, lse, batch,
            seqLen, heads, window);
    }
}

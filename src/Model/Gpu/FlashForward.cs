using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/flash_forward.cu: the wgmma flash attention forward (head dim 128, sm_90a).</summary>
public sealed class FlashForward
{
    /// <summary>Query rows per CTA (two warpgroups of 64) and keys per tile.</summary>
    public const int Tile = 128;

    /// <summary>The Q tile and two stages each of the K and V tiles, 128 rows × 128 bf16 each (sw128 layout), plus 1 KB to align them
    /// to 1024 bytes (FORWARD_SMEM in the kernel).</summary>
    public const int SharedBytes = 5 * Tile * 128 * 2 + 1024;

    private readonly CudaKernel _forward;

    public FlashForward(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        _forward = kernels.Load("flash_forward.cu").GetKernel("flash_attention_forward");
        _forward.SetMaxDynamicSharedMemory(SharedBytes);
    }

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o /* [B, T, H, 128] bf16 */,
        ulong lse /* [B, H, T] fp32 */, CudaStream stream)
        => _forward.Launch(new Dim3(Dim3.Blocks(seqLen, Tile), (uint)(batch * heads)), 256, SharedBytes, stream, q, k, v, o, lse, batch, seqLen, heads, window);
}

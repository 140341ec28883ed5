using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>Launcher for kernels/flash_forward.cu: the tensor-core flash attention forward (head dim 128).</summary>
public sealed class FlashForward
{
    public const int Tile = 64;

    /// <summary>Two stages of (K tile, V tile), 64 rows × 128 bf16 each (swizzled, unpadded); the Q tile borrows stage 1 at the start.</summary>
    public const int SharedBytes = 4 * Tile * 128 * 2;

    private readonly CudaKernel _forward;

    public FlashForward(KernelCache kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        _forward = kernels.Load("flash_forward.cu").GetKernel("flash_attention_forward");
        _forward.SetMaxDynamicSharedMemory(SharedBytes);
    }

    public void Forward(ulong q, ulong k, ulong v, int batch, int seqLen, int heads, int window, ulong o /* [B, T, H, 128] bf16 */,
        ulong lse /* [B, H, T] fp32 */, CudaStream stream)
        => _forward.Launch(new Dim3(Dim3.Blocks(seqLen, Tile), (uint)(batch * heads)), 128, SharedBytes, stream, q, k, v, o, lse, batch, seqLen, heads, window);
}

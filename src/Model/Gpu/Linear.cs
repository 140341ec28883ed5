using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// The three matrix products of a bias-free linear layer y = x·Wᵀ (W stored out × in, bf16), row-major, fp32 accumulation:
/// forward, the input gradient dx = dy·W, and the weight gradient dW += dyᵀ·x (fp32, accumulated across micro-steps).
/// </summary>
public sealed class Linear(Blas blas)
{
    /// <summary>y[n, out] = x[n, in]·W[out, in]ᵀ (+ residual[n, out] when given: y = residual + x·Wᵀ, in one GEMM).</summary>
    public void Forward(ulong x, ulong w, int n, int inFeatures, int outFeatures, ulong y, ElementType yType = ElementType.Bf16, ulong residual = 0)
    {
        if (residual == 0)
            blas.GemmLt(false, true, n, outFeatures, inFeatures, 1f, x, ElementType.Bf16, inFeatures, w, ElementType.Bf16, inFeatures, 0f, y, yType, outFeatures);
        else
            blas.GemmLt(false, true, n, outFeatures, inFeatures, 1f, x, ElementType.Bf16, inFeatures, w, ElementType.Bf16, inFeatures, 1f, residual, yType, outFeatures, d: y);
    }

    /// <summary>dx[n, in] (+)= dy[n, out]·W[out, in]; accumulate adds onto dx (fp32 dx only).</summary>
    public void BackwardInput(ulong dy, ulong w, int n, int inFeatures, int outFeatures, ulong dx, ElementType dxType, bool accumulate)
        => blas.GemmLt(false, false, n, inFeatures, outFeatures, 1f, dy, ElementType.Bf16, outFeatures, w, ElementType.Bf16, inFeatures,
            accumulate ? 1f : 0f, dx, dxType, inFeatures);

    /// <summary>dW[out, in] += dy[n, out]ᵀ·x[n, in] (fp32).</summary>
    public void BackwardWeight(ulong dy, ulong x, int n, int inFeatures, int outFeatures, ulong dw)
        => blas.GemmLt(true, false, outFeatures, inFeatures, n, 1f, dy, ElementType.Bf16, outFeatures, x, ElementType.Bf16, inFeatures,
            1f, dw, ElementType.F32, inFeatures);
}

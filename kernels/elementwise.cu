// elementwise.cu: small element-wise kernels the model and the optimizer share.
//
// cast_f32_to_bf16: dst[i] = bf16(src[i]) (round to nearest even)     src [count] fp32, dst [count] bf16 (written)
// Launch: any 1-D grid of 256-thread blocks (grid-stride loops).
#include "common.cuh"

extern "C" __global__ void cast_f32_to_bf16(const float* __restrict__ src, bf16* __restrict__ dst, long count)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

// relu_square.cu: the MLP activation relu(u)² (SPEC §5) and its gradient.
//
// relu_square_forward:  s = relu(u)²            u, s [count] bf16 (s written; may not alias u)
// relu_square_backward: du = ds·2·sqrt(s)       from the forward's OUTPUT s = relu(u)² (relu(u) = sqrt(s)), so the input u
//                       need not be kept; s, ds, du [count] bf16 (du written; may alias ds)
// Launch: count a multiple of 8 (16-byte accesses: the MLP width is 4·model_dim); any 1-D grid of 256-thread blocks (grid-stride).
#include "common.cuh"

extern "C" __global__ void relu_square_forward(const bf16* __restrict__ u, bf16* __restrict__ s, long count)
{
    for (long i = (blockIdx.x * (long)blockDim.x + threadIdx.x) * 8; i < count; i += (long)gridDim.x * blockDim.x * 8)
    {
        float v[8];
        load8(u + i, v);
        #pragma unroll
        for (int k = 0; k < 8; k++)
        {
            const float r = fmaxf(v[k], 0.0f);
            v[k] = r * r;
        }
        store8(s + i, v);
    }
}

extern "C" __global__ void relu_square_backward(const bf16* __restrict__ s, const bf16* ds, bf16* du, long count)
{
    for (long i = (blockIdx.x * (long)blockDim.x + threadIdx.x) * 8; i < count; i += (long)gridDim.x * blockDim.x * 8)
    {
        float v[8], g[8];
        load8(s + i, v);
        load8(ds + i, g);
        #pragma unroll
        for (int k = 0; k < 8; k++)
            g[k] = g[k] * 2.0f * sqrtf(v[k]);
        store8(du + i, g);
    }
}

// value_gate.cu: the value-embedding gate of the ResFormer layers (SPEC §5), head dim 128, gate input width 32.
//
// value_gate_forward:  g[i, h] = 2·sigmoid(Σ_{j<32} x[i, j]·wg[h, j]);  v[i, h, :] += g[i, h]·ve[ids[i], h·128 : h·128 + 128]
//   x [n, c] bf16 (the normed attention input), wg [heads, 32] bf16, ids [n] int32, ve [vocab, heads·128] bf16,
//   v [n, heads·128] bf16 (updated in place), gate [n, heads] fp32 (written, kept for backward).
// value_gate_backward: from dv = dL/dv [n, heads·128] bf16, rows dv_stride elements apart (the same gradient flows on to the v
//   projection; dv may be the last third of a [n, 3·heads·128] dq | dk | dv matrix):
//   dve[ids[i], h, :] += g·dv (fp32 vector atomics, 16 bytes each: dve 16-byte aligned, dv_stride a multiple of 4);  dz = (Σ_d dv·ve)·g·(1 − g/2)   (dg/dz of 2·sigmoid(z));
//   dwg[h, j] += Σ_i dz[i, h]·x[i, j] (fp32, one atomic per block and weight); dx[i, j] += Σ_h dz[i, h]·wg[h, j] for j < 32 (fp32;
//   read-modify-write, one warp per token).
// Launch: forward one warp per (token, head), 8 warps per block; backward any 1-D grid of 256-thread blocks, one warp per token
// (grid-stride over tokens). Backward needs heads ≤ 8 (its per-lane partial sums; baseline: 4).
#include "common.cuh"

#define GATE_WIDTH 32
#define MAX_HEADS 8

extern "C" __global__ void value_gate_forward(const bf16* __restrict__ x, const bf16* __restrict__ wg, const int* __restrict__ ids,
    const bf16* __restrict__ ve, bf16* __restrict__ v, float* __restrict__ gate, int n, int heads, int c)
{
    const int item = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (item >= n * heads)
        return;
    const int i = item / heads, h = item % heads;
    const float z = warp_sum(__bfloat162float(x[(long)i * c + lane]) * __bfloat162float(wg[h * GATE_WIDTH + lane]));
    const float g = 2.0f / (1.0f + __expf(-z));
    const bf16* e = ve + (long)ids[i] * heads * 128 + h * 128;
    bf16* out = v + (long)i * heads * 128 + h * 128;
    #pragma unroll
    for (int p = 0; p < 4; p++)
    {
        const int d = lane + 32 * p;
        out[d] = __float2bfloat16_rn(__bfloat162float(out[d]) + g * __bfloat162float(e[d]));
    }
    if (lane == 0)
        gate[item] = g;
}

extern "C" __global__ void value_gate_backward(const float* __restrict__ gate, const bf16* __restrict__ dv, const int* __restrict__ ids,
    const bf16* __restrict__ ve, const bf16* __restrict__ x, const bf16* __restrict__ wg,
    float* __restrict__ dve, float* __restrict__ dwg, float* __restrict__ dx, int n, int heads, int c, long long dv_stride)
{
    __shared__ float partial[MAX_HEADS * GATE_WIDTH];
    for (int k = threadIdx.x; k < MAX_HEADS * GATE_WIDTH; k += blockDim.x)
        partial[k] = 0.0f;
    __syncthreads();
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    float w[MAX_HEADS], dwg_sum[MAX_HEADS];
    #pragma unroll
    for (int h = 0; h < MAX_HEADS; h++)
    {
        w[h] = h < heads ? __bfloat162float(wg[h * GATE_WIDTH + lane]) : 0.0f;
        dwg_sum[h] = 0.0f;
    }
    // One warp per token, all heads: the token's x[:32] is read once, dx[:32] gets one plain update (no other writer), and
    // the gate weights' gradient stays in registers until the block's end.
    for (int i = blockIdx.x * warps + (threadIdx.x >> 5); i < n; i += gridDim.x * warps)
    {
        const long ebase = (long)ids[i] * heads * 128;
        const float xj = __bfloat162float(x[(long)i * c + lane]);
        float dxj = 0.0f;
        #pragma unroll
        for (int h = 0; h < MAX_HEADS; h++)
        {
            if (h < heads)
            {
                const float g = gate[(long)i * heads + h];
                // Lane l takes features 4l .. 4l + 3 of the head: 8-byte reads, one 16-byte vector atomic (sm_90) into dve.
                const uint2 graw = *reinterpret_cast<const uint2*>(dv + (long)i * dv_stride + h * 128 + lane * 4);
                const uint2 eraw = *reinterpret_cast<const uint2*>(ve + ebase + h * 128 + lane * 4);
                const float2 g01 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&graw.x));
                const float2 g23 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&graw.y));
                const float2 e01 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&eraw.x));
                const float2 e23 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&eraw.y));
                const float dot = g01.x * e01.x + g01.y * e01.y + g23.x * e23.x + g23.y * e23.y;
                atomicAdd(reinterpret_cast<float4*>(dve + ebase + h * 128 + lane * 4), make_float4(g * g01.x, g * g01.y, g * g23.x, g * g23.y));
                const float dz = warp_sum(dot) * g * (1.0f - 0.5f * g);
                dwg_sum[h] += dz * xj;
                dxj += dz * w[h];
            }
        }
        dx[(long)i * c + lane] += dxj;
    }
    #pragma unroll
    for (int h = 0; h < MAX_HEADS; h++)
    {
        if (h < heads)
            atomicAdd(&partial[h * GATE_WIDTH + lane], dwg_sum[h]);
    }
    __syncthreads();
    for (int k = threadIdx.x; k < heads * GATE_WIDTH; k += blockDim.x)
        atomicAdd(dwg + k, partial[k]);
}

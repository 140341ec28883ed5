// value_gate.cu: the value-embedding gate of the ResFormer layers (SPEC §5), per kv head: head size D = HEAD_DIM and
// kv heads KV = GATE_HEADS are compile-time constants (the launcher builds one cubin per model with -DHEAD_DIM, -DGATE_HEADS),
// gate input width 32.
//
// value_gate_forward:  g[i, h] = 2·sigmoid(Σ_{j<32} x[i, j]·wg[h, j]);  v[i, h, :] += g[i, h]·ve[ids[i], h·D : h·D + D]
//   x [n, c] bf16 (the normed attention input), wg [KV, 32] bf16, ids [n] int32, ve [vocab, KV·D] bf16,
//   v [n, KV·D] bf16 (updated in place), gate [n, KV] fp32 (written, kept for backward).
// value_gate_backward: from dv = dL/dv [n, KV·D] bf16, rows dv_stride elements apart (the same gradient flows on to the v
//   projection; dv may be the last part of a [n, H·D + 2·KV·D] dq | dk | dv matrix):
//   dve[ids[i], h, :] += g·dv (fp32 vector atomics of D/32 floats: dve 16-byte aligned, dv_stride even);
//   dz = (Σ_d dv·ve)·g·(1 − g/2)   (dg/dz of 2·sigmoid(z));
//   dwg[h, j] += Σ_i dz[i, h]·x[i, j] (fp32, one atomic per block and weight); dx[i, j] += Σ_h dz[i, h]·wg[h, j] for j < 32 (bf16,
//   the sum in fp32 and rounded once; read-modify-write, one warp per token).
// Launch: forward one warp per (token, kv head), 8 warps per block, v and ve 2·D/32-byte aligned (vector accesses); backward any 1-D grid of 256-thread blocks, one warp per
// token (grid-stride over tokens; the host sizes the grid from the device's multiprocessor count).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef GATE_HEADS
#define GATE_HEADS 4
#endif
#define GATE_WIDTH 32
#define PER_LANE (HEAD_DIM / 32) // features of a head each lane handles: 4 or 2

// PER_LANE consecutive bf16 values as floats (one 8- or 4-byte load).
__device__ __forceinline__ void load_lane(const bf16* p, float out[PER_LANE])
{
    if constexpr (PER_LANE == 4)
    {
        const uint2 raw = *reinterpret_cast<const uint2*>(p);
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
        const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
        out[0] = a.x;
        out[1] = a.y;
        out[2] = b.x;
        out[3] = b.y;
    }
    else
    {
        const unsigned raw = *reinterpret_cast<const unsigned*>(p);
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw));
        out[0] = a.x;
        out[1] = a.y;
    }
}

// p[0 .. PER_LANE) += g·v, one vector atomic (sm_90).
__device__ __forceinline__ void add_lane(float* p, float g, const float v[PER_LANE])
{
    if constexpr (PER_LANE == 4)
        atomicAdd(reinterpret_cast<float4*>(p), make_float4(g * v[0], g * v[1], g * v[2], g * v[3]));
    else
        atomicAdd(reinterpret_cast<float2*>(p), make_float2(g * v[0], g * v[1]));
}

// PER_LANE consecutive floats as bf16 (one 8- or 4-byte store).
__device__ __forceinline__ void store_lane(bf16* p, const float in[PER_LANE])
{
    __nv_bfloat162 pairs[PER_LANE / 2];
    #pragma unroll
    for (int i = 0; i < PER_LANE / 2; i++)
        pairs[i] = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
    if constexpr (PER_LANE == 4)
        *reinterpret_cast<uint2*>(p) = *reinterpret_cast<const uint2*>(pairs);
    else
        *reinterpret_cast<unsigned*>(p) = *reinterpret_cast<const unsigned*>(pairs);
}

// Each lane takes PER_LANE consecutive features of the head (one vector load of ve and of v, one store), and every load is
// issued before the gate's reduction: a warp's ve row waits on ids[i] only, not on the shuffles.
extern "C" __global__ void value_gate_forward(const bf16* __restrict__ x, const bf16* __restrict__ wg, const int* __restrict__ ids,
    const bf16* __restrict__ ve, bf16* __restrict__ v, float* __restrict__ gate, int n, int c)
{
    const int item = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (item >= n * GATE_HEADS)
        return;
    const int i = item / GATE_HEADS, h = item % GATE_HEADS;
    bf16* out = v + (long)i * GATE_HEADS * HEAD_DIM + h * HEAD_DIM + lane * PER_LANE;
    float e[PER_LANE], o[PER_LANE];
    load_lane(ve + (long)ids[i] * GATE_HEADS * HEAD_DIM + h * HEAD_DIM + lane * PER_LANE, e);
    load_lane(out, o);
    const float z = warp_sum(__bfloat162float(x[(long)i * c + lane]) * __bfloat162float(wg[h * GATE_WIDTH + lane]));
    const float g = 2.0f / (1.0f + __expf(-z));
    #pragma unroll
    for (int p = 0; p < PER_LANE; p++)
        o[p] += g * e[p];
    store_lane(out, o);
    if (lane == 0)
        gate[item] = g;
}

extern "C" __global__ void value_gate_backward(const float* __restrict__ gate, const bf16* __restrict__ dv, const int* __restrict__ ids,
    const bf16* __restrict__ ve, const bf16* __restrict__ x, const bf16* __restrict__ wg,
    float* __restrict__ dve, float* __restrict__ dwg, bf16* __restrict__ dx, int n, int c, long long dv_stride)
{
    __shared__ float partial[GATE_HEADS * GATE_WIDTH];
    for (int k = threadIdx.x; k < GATE_HEADS * GATE_WIDTH; k += blockDim.x)
        partial[k] = 0.0f;
    __syncthreads();
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    float w[GATE_HEADS], dwg_sum[GATE_HEADS];
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
    {
        w[h] = __bfloat162float(wg[h * GATE_WIDTH + lane]);
        dwg_sum[h] = 0.0f;
    }
    // One warp per token, all kv heads: the token's x[:32] is read once, dx[:32] gets one plain update (no other writer), and
    // the gate weights' gradient stays in registers until the block's end.
    for (int i = blockIdx.x * warps + (threadIdx.x >> 5); i < n; i += gridDim.x * warps)
    {
        const long ebase = (long)ids[i] * GATE_HEADS * HEAD_DIM;
        const float xj = __bfloat162float(x[(long)i * c + lane]);
        float dxj = 0.0f;
        #pragma unroll
        for (int h = 0; h < GATE_HEADS; h++)
        {
            const float g = gate[(long)i * GATE_HEADS + h];
            // Lane l takes features PER_LANE·l .. of the head: one load each of dv and ve, one vector atomic into dve.
            float gv[PER_LANE], ev[PER_LANE];
            load_lane(dv + (long)i * dv_stride + h * HEAD_DIM + lane * PER_LANE, gv);
            load_lane(ve + ebase + h * HEAD_DIM + lane * PER_LANE, ev);
            float dot = 0.0f;
            #pragma unroll
            for (int e = 0; e < PER_LANE; e++)
                dot += gv[e] * ev[e];
            add_lane(dve + ebase + h * HEAD_DIM + lane * PER_LANE, g, gv);
            const float dz = warp_sum(dot) * g * (1.0f - 0.5f * g);
            dwg_sum[h] += dz * xj;
            dxj += dz * w[h];
        }
        bf16* dxi = dx + (long)i * c + lane;
        *dxi = __float2bfloat16_rn(__bfloat162float(*dxi) + dxj);
    }
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
        atomicAdd(&partial[h * GATE_WIDTH + lane], dwg_sum[h]);
    __syncthreads();
    for (int k = threadIdx.x; k < GATE_HEADS * GATE_WIDTH; k += blockDim.x)
        atomicAdd(dwg + k, partial[k]);
}

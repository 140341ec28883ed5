// common.cuh: small device helpers shared by the kernels (bf16 type, 16-byte vector access, warp and block sums, exp2 on the
// MUFU).
#pragma once
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define LOG2E 1.4426950408889634f
#define NEG_INF __int_as_float(0xff800000)

// 2^x in one MUFU instruction (flush-to-zero; 2^−∞ = 0, 2^∞ = ∞).
__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// Sum over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float v)
{
    #pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Max over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_max(float v)
{
    #pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Sum over a block (blockDim.x a multiple of 32, at most 1024); scratch holds 32 floats. Every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

// Max over a block (as block_sum); scratch holds 32 floats. Every thread gets the result.
__device__ __forceinline__ float block_max(float v, float* scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : NEG_INF;
    return warp_max(v);
}

// Eight bf16 values moved as one 16-byte access.
struct bf16x8
{
    uint4 raw;
};

// The eight bf16 values of a 16-byte word (a load8 in two steps: the word may be loaded early and widened when needed).
__device__ __forceinline__ void unpack8(uint4 raw, float out[8])
{
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
    #pragma unroll
    for (int i = 0; i < 4; i++)
    {
        float2 f = __bfloat1622float2(h[i]);
        out[2 * i] = f.x;
        out[2 * i + 1] = f.y;
    }
}

__device__ __forceinline__ void load8(const bf16* p, float out[8])
{
    unpack8(*reinterpret_cast<const uint4*>(p), out);
}

__device__ __forceinline__ void store8(bf16* p, const float in[8])
{
    uint4 raw;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
    #pragma unroll
    for (int i = 0; i < 4; i++)
        h[i] = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = raw;
}

// The two bf16 values of a 32-bit word, the low half first.
__device__ __forceinline__ float2 unpack_bf16(unsigned v)
{
    return __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&v));
}

// The rotary table as the kernels read it (RotaryTable.Bf16Pairs): [T, D/2] words, word j of row t holding cos θ_j (low half)
// and sin θ_j (high half) as bf16 (the values are bf16 already, so nothing is lost). rotary_pairs8 reads the 8 pairs from
// column j (32-byte aligned) into cos and sin.
__device__ __forceinline__ void rotary_pairs8(const unsigned* p, float c[8], float s[8])
{
    const uint4 lo = *reinterpret_cast<const uint4*>(p), hi = *reinterpret_cast<const uint4*>(p + 4);
    const unsigned w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    #pragma unroll
    for (int i = 0; i < 8; i++)
    {
        const float2 f = unpack_bf16(w[i]);
        c[i] = f.x;
        s[i] = f.y;
    }
}

// fp32 machine epsilon: the RMSNorm eps of SPEC §5.
#define RMS_EPS 1.1920929e-07f

// Token positions grouped by id (embedding.cu's token_count, token_offsets and token_scatter write `order`, the positions
// 0 .. n − 1 with equal ids adjacent and the ids ascending). The grouped backward kernels give each warp GROUP_SPAN (at most
// 32) consecutive positions of `order`, sum the gradient rows of each run of equal ids in registers and add a run to the
// table once: about (vocabulary + n / GROUP_SPAN) row atomics instead of n, and none of them piled on a frequent token's row.
#ifndef GROUP_SPAN
#define GROUP_SPAN 32
#endif
static_assert(GROUP_SPAN >= 1 && GROUP_SPAN <= 32, "a span is read by one warp, a position a lane");

// The warp's span of `order` from position `first`: lane l gets the row at first + l and its id (row 0, id −1 past the span's
// count positions), read once and handed to the other lanes by shuffles. Returns the span's count.
__device__ __forceinline__ int group_span(const int* __restrict__ order, const int* __restrict__ ids, long first, int n, int lane,
    int& row, int& id)
{
    const long left = (long)n - first;
    const int count = left < GROUP_SPAN ? (int)left : GROUP_SPAN;
    row = lane < count ? order[first + lane] : 0;
    id = lane < count ? ids[row] : -1;
    return count;
}

// The walk every grouped kernel makes: the grid's warps stride over spans of `order`; within its span a warp takes the
// positions one after the other (all lanes together), calls add(row, id) for each, and flush(id) when the id changes and at
// the span's end. add sums the row's gradient into the warp's run of equal ids (registers); flush adds the run of id to the
// table and zeroes it for the next run. The run starts at zero (the caller's).
template <typename Add, typename Flush>
__device__ __forceinline__ void for_each_grouped_run(const int* __restrict__ order, const int* __restrict__ ids, int n, Add add, Flush flush)
{
    const int lane = threadIdx.x & 31;
    const long warps = (long)gridDim.x * (blockDim.x >> 5);
    for (long first = ((long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * GROUP_SPAN; first < n; first += warps * GROUP_SPAN)
    {
        int span_row, span_id;
        const int count = group_span(order, ids, first, n, lane, span_row, span_id);
        int current = __shfl_sync(0xffffffffu, span_id, 0);
        for (int p = 0; p < count; p++)
        {
            const int row = __shfl_sync(0xffffffffu, span_row, p), id = __shfl_sync(0xffffffffu, span_id, p);
            if (id != current)
            {
                flush(current);
                current = id;
            }
            add(row, id);
        }
        flush(current);
    }
}

// The flash attention backward's fp32 dq accumulator is [B, H, T, 128] with each row's columns permuted: column c of query t
// is stored at dq_column(t, c) = c XOR 8·(t mod 8) (spreads the backward's staging writes over the shared-memory banks; runs
// of 8 columns stay together). flash_backward.cu writes it; its finish kernel and the rotary backward read it.
__device__ __forceinline__ int dq_column(int t, int c)
{
    return c ^ ((t & 7) << 3);
}

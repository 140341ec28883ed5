// rotary.cu: rotary position embedding fused with QK-norm (SPEC §5), for head size D = HEAD_DIM (64 or 128, compile-time:
// the launcher builds one cubin per size with -DHEAD_DIM).
//
// For each (token t, head) vector x of D: halves a = x[0:D/2], b = x[D/2:D], θ_j = t·inv_freq[j], inv_freq[j] = base^(−2j/D):
//   a' = a·cos θ + b·sin θ,  b' = −a·sin θ + b·cos θ;  y = norm([a', b']) (RMS over the D, eps = fp32 epsilon).
// rotary_qknorm_forward:  x [B·T, H, D] bf16, rotated and normed IN PLACE; rstd [B·T·H] fp32 kept for backward;
//                         cos_sin [T, D/2] (cos θ_j, sin θ_j) as bf16 pairs, one 32-bit word each (rotary_pairs8 in
//                         common.cuh; the host builds it: RotaryTable.Bf16Pairs), bf16 as the reference rounds them.
// rotary_qknorm_backward: dy [B·T, H, D] bf16 (dL/dy) → dL/dx IN PLACE, from y (the forward's output) and rstd (the model
//                         runs it for q; for k only with the naive attention: the flash backward does k's in its epilogue):
//                         dr = rstd·(dy − y·mean(dy·y)), then the inverse rotation da = da'·cos − db'·sin, db = da'·sin + db'·cos.
//                         dy's rows are dy_stride elements apart per token (H·D when dense; wider when dy is part of a
//                         [B·T, H·D + 2·KV·D] dq | dk | dv matrix). With dy_accum not null, dy is read from the flash
//                         backward's fp32 dq accumulator instead ([B, H, T, D], columns permuted: dq_column in
//                         common.cuh), saving the bf16 round trip; the result still goes to dy.
// Launch: 256-thread blocks of rotary_rows_per_block vectors each (exported below, read by the launcher); rows = B·T·H;
// t = (row / H) mod T. H here is the heads of the tensor: the query heads for q, the kv heads for k.
//
// Layout: a vector is handled by D/16 lanes (8 for D = 128), each holding 8 consecutive elements of each half (16-byte
// loads and stores of x and dy, two of the table's (cos, sin) pairs), so a warp works on 512/D vectors at once
// and every load of a vector is issued before any of its arithmetic: about 1 KB in flight per warp, where one warp per
// vector with 2-byte accesses kept 256 B (the reductions are xor-shuffles within the vector's lanes). The fp32 dq
// accumulator's columns move in aligned runs of 8 (dq_column), so a lane's 8 values stay contiguous there too.
#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#define HALF (HEAD_DIM / 2)
#define VEC_LANES (HALF / 8)       // lanes per vector, 8 elements of each half apiece
#define VECS_PER_WARP (32 / VEC_LANES)
#define ROTARY_THREADS 256

#include "common.cuh"

extern "C" __constant__ int rotary_rows_per_block = (ROTARY_THREADS / 32) * VECS_PER_WARP;

// Sum over the VEC_LANES lanes of one vector (an aligned group of the warp); every lane of the group gets it.
__device__ __forceinline__ float vector_sum(float v)
{
    #pragma unroll
    for (int offset = VEC_LANES / 2; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Eight consecutive fp32 values (32-byte aligned).
__device__ __forceinline__ void load8_f32(const float* p, float out[8])
{
    const float4 lo = *reinterpret_cast<const float4*>(p), hi = *reinterpret_cast<const float4*>(p + 4);
    out[0] = lo.x; out[1] = lo.y; out[2] = lo.z; out[3] = lo.w;
    out[4] = hi.x; out[5] = hi.y; out[6] = hi.z; out[7] = hi.w;
}

// The vector this lane works on and the first of its 8 columns in each half; false past the last row (the lane still
// takes part in the shuffles).
__device__ __forceinline__ bool lane_vector(int rows, int& row, int& j0)
{
    const int warp = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    row = warp * VECS_PER_WARP + lane / VEC_LANES;
    j0 = (lane % VEC_LANES) * 8;
    return row < rows;
}

extern "C" __global__ void __launch_bounds__(ROTARY_THREADS) rotary_qknorm_forward(bf16* __restrict__ x, const unsigned* __restrict__ cos_sin,
    float* __restrict__ rstd, int rows, int heads, int seq_len)
{
    int row, j0;
    const bool valid = lane_vector(rows, row, j0);
    if (__all_sync(0xffffffffu, !valid))
        return;
    float a[8], b[8], c[8], s[8];
    bf16* v = x + (long)row * HEAD_DIM;
    float sum = 0.0f;
    if (valid)
    {
        load8(v + j0, a);
        load8(v + HALF + j0, b);
        rotary_pairs8(cos_sin + (long)((row / heads) % seq_len) * HALF + j0, c, s);
        #pragma unroll
        for (int k = 0; k < 8; k++)
        {
            const float ra = a[k] * c[k] + b[k] * s[k], rb = -a[k] * s[k] + b[k] * c[k];
            a[k] = ra;
            b[k] = rb;
            sum += ra * ra + rb * rb;
        }
    }
    const float r = rsqrtf(vector_sum(sum) / (float)HEAD_DIM + RMS_EPS);
    if (!valid)
        return;
    #pragma unroll
    for (int k = 0; k < 8; k++)
    {
        a[k] *= r;
        b[k] *= r;
    }
    store8(v + j0, a);
    store8(v + HALF + j0, b);
    if (j0 == 0)
        rstd[row] = r;
}

extern "C" __global__ void __launch_bounds__(ROTARY_THREADS) rotary_qknorm_backward(const bf16* __restrict__ y, const float* __restrict__ rstd,
    bf16* __restrict__ dy, const unsigned* __restrict__ cos_sin, int rows, int heads, int seq_len, long long dy_stride,
    const float* __restrict__ dy_accum)
{
    int row, j0;
    const bool valid = lane_vector(rows, row, j0);
    if (__all_sync(0xffffffffu, !valid))
        return;
    const int t = (row / heads) % seq_len;
    const long gbase = (long)(row / heads) * dy_stride + (row % heads) * HEAD_DIM;
    float ya[8], yb[8], ga[8], gb[8], c[8], s[8], r = 0.0f;
    float dot = 0.0f;
    if (valid)
    {
        const long base = (long)row * HEAD_DIM;
        load8(y + base + j0, ya);
        load8(y + base + HALF + j0, yb);
        if (dy_accum != nullptr)
        {
            const long abase = (((long)(row / heads / seq_len) * heads + row % heads) * seq_len + t) * HEAD_DIM;
            load8_f32(dy_accum + abase + dq_column(t, j0), ga);
            load8_f32(dy_accum + abase + dq_column(t, HALF + j0), gb);
        }
        else
        {
            load8(dy + gbase + j0, ga);
            load8(dy + gbase + HALF + j0, gb);
        }
        rotary_pairs8(cos_sin + (long)t * HALF + j0, c, s);
        r = rstd[row];
        #pragma unroll
        for (int k = 0; k < 8; k++)
            dot += ga[k] * ya[k] + gb[k] * yb[k];
    }
    const float mean_dot = vector_sum(dot) / (float)HEAD_DIM;
    if (!valid)
        return;
    #pragma unroll
    for (int k = 0; k < 8; k++)
    {
        const float da = r * (ga[k] - ya[k] * mean_dot), db = r * (gb[k] - yb[k] * mean_dot);
        ga[k] = da * c[k] - db * s[k];
        gb[k] = da * s[k] + db * c[k];
    }
    store8(dy + gbase + j0, ga);
    store8(dy + gbase + HALF + j0, gb);
}

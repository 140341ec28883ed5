// rotary.cu: rotary position embedding fused with QK-norm (SPEC §5), for head size D = HEAD_DIM (64 or 128, compile-time:
// the launcher builds one cubin per size with -DHEAD_DIM).
//
// For each (token t, head) vector x of D: halves a = x[0:D/2], b = x[D/2:D], θ_j = t·inv_freq[j], inv_freq[j] = base^(−2j/D):
//   a' = a·cos θ + b·sin θ,  b' = −a·sin θ + b·cos θ;  y = norm([a', b']) (RMS over the D, eps = fp32 epsilon).
// rotary_qknorm_forward:  x [B·T, H, D] bf16, rotated and normed IN PLACE; rstd [B·T·H] fp32 kept for backward;
//                         cos_sin [T, D] fp32: cos θ_j at [t, j], sin θ_j at [t, D/2 + j], rounded to bf16 as the reference
//                         rounds them (the host builds it: RotaryTable).
// rotary_qknorm_backward: dy [B·T, H, D] bf16 (dL/dy) → dL/dx IN PLACE, from y (the forward's output) and rstd:
//                         dr = rstd·(dy − y·mean(dy·y)), then the inverse rotation da = da'·cos − db'·sin, db = da'·sin + db'·cos.
//                         dy's rows are dy_stride elements apart per token (H·D when dense; wider when dy is part of a
//                         [B·T, H·D + 2·KV·D] dq | dk | dv matrix). With dy_accum not null, dy is read from the flash
//                         backward's fp32 dq accumulator instead ([B, H, T, D], columns permuted: dq_column in
//                         common.cuh), saving the bf16 round trip; the result still goes to dy.
// Launch: one warp per vector (lane j handles pairs j + 32p, p < D/64), 8 warps per block; rows = B·T·H; t = (row / H) mod T.
// H here is the heads of the tensor: the query heads for q, the kv heads for k.
#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#define HALF (HEAD_DIM / 2)
#define PAIRS (HALF / 32) // rotation pairs per lane

#include "common.cuh"

extern "C" __global__ void rotary_qknorm_forward(bf16* __restrict__ x, const float* __restrict__ cos_sin, float* __restrict__ rstd,
    int rows, int heads, int seq_len)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    const int t = (row / heads) % seq_len;
    bf16* v = x + (long)row * HEAD_DIM;
    const float* cs = cos_sin + (long)t * HEAD_DIM;
    float out[2 * PAIRS];
    float sum = 0.0f;
    #pragma unroll
    for (int p = 0; p < PAIRS; p++)
    {
        const int j = lane + 32 * p;
        const float a = __bfloat162float(v[j]), b = __bfloat162float(v[j + HALF]);
        const float c = cs[j], s = cs[HALF + j];
        out[2 * p] = a * c + b * s;
        out[2 * p + 1] = -a * s + b * c;
        sum += out[2 * p] * out[2 * p] + out[2 * p + 1] * out[2 * p + 1];
    }
    const float r = rsqrtf(warp_sum(sum) / (float)HEAD_DIM + RMS_EPS);
    #pragma unroll
    for (int p = 0; p < PAIRS; p++)
    {
        const int j = lane + 32 * p;
        v[j] = __float2bfloat16_rn(out[2 * p] * r);
        v[j + HALF] = __float2bfloat16_rn(out[2 * p + 1] * r);
    }
    if (lane == 0)
        rstd[row] = r;
}

extern "C" __global__ void rotary_qknorm_backward(const bf16* __restrict__ y, const float* __restrict__ rstd, bf16* __restrict__ dy,
    const float* __restrict__ cos_sin, int rows, int heads, int seq_len, long long dy_stride, const float* __restrict__ dy_accum)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    const int t = (row / heads) % seq_len;
    const long base = (long)row * HEAD_DIM, gbase = (long)(row / heads) * dy_stride + (row % heads) * HEAD_DIM;
    const float* cs = cos_sin + (long)t * HEAD_DIM;
    float ya[PAIRS], yb[PAIRS], ga[PAIRS], gb[PAIRS];
    float dot = 0.0f;
    #pragma unroll
    for (int p = 0; p < PAIRS; p++)
    {
        const int j = lane + 32 * p;
        ya[p] = __bfloat162float(y[base + j]);
        yb[p] = __bfloat162float(y[base + j + HALF]);
        if (dy_accum != nullptr)
        {
            const long abase = (((long)(row / heads / seq_len) * heads + row % heads) * seq_len + t) * HEAD_DIM;
            ga[p] = dy_accum[abase + dq_column(t, j)];
            gb[p] = dy_accum[abase + dq_column(t, j + HALF)];
        }
        else
        {
            ga[p] = __bfloat162float(dy[gbase + j]);
            gb[p] = __bfloat162float(dy[gbase + j + HALF]);
        }
        dot += ga[p] * ya[p] + gb[p] * yb[p];
    }
    const float mean_dot = warp_sum(dot) / (float)HEAD_DIM;
    const float r = rstd[row];
    #pragma unroll
    for (int p = 0; p < PAIRS; p++)
    {
        const int j = lane + 32 * p;
        const float da = r * (ga[p] - ya[p] * mean_dot), db = r * (gb[p] - yb[p] * mean_dot);
        const float c = cs[j], s = cs[HALF + j];
        dy[gbase + j] = __float2bfloat16_rn(da * c - db * s);
        dy[gbase + j + HALF] = __float2bfloat16_rn(da * s + db * c);
    }
}

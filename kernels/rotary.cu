// rotary.cu: rotary position embedding fused with QK-norm (SPEC §5), for head dim 128.
//
// For each (token t, head) vector x of 128: halves a = x[0:64], b = x[64:128], θ_j = t·inv_freq[j], inv_freq[j] = base^(−2j/128):
//   a' = a·cos θ + b·sin θ,  b' = −a·sin θ + b·cos θ;  y = norm([a', b']) (RMS over the 128, eps = fp32 epsilon).
// rotary_qknorm_forward:  x [B·T, H, 128] bf16, rotated and normed IN PLACE; rstd [B·T·H] fp32 kept for backward;
//                         cos_sin [T, 128] fp32: cos θ_j at [t, j], sin θ_j at [t, 64 + j] (built on the host in fp64).
// rotary_qknorm_backward: dy [B·T, H, 128] bf16 (dL/dy) → dL/dx IN PLACE, from y (the forward's output) and rstd:
//                         dr = rstd·(dy − y·mean(dy·y)), then the inverse rotation da = da'·cos − db'·sin, db = da'·sin + db'·cos.
//                         dy's rows are dy_stride elements apart per token (H·128 when dense; wider when dy is a third of a
//                         [B·T, 3·H·128] dq | dk | dv matrix). With dy_accum not null, dy is read from the flash
//                         backward's fp32 dq accumulator instead ([B, H, T, 128], columns permuted: dq_column in
//                         common.cuh), saving the bf16 round trip; the result still goes to dy.
// Launch: one warp per vector (lane j handles pairs j and j + 32), 8 warps per block; rows = B·T·H; t = (row / H) mod T.
#include "common.cuh"

extern "C" __global__ void rotary_qknorm_forward(bf16* __restrict__ x, const float* __restrict__ cos_sin, float* __restrict__ rstd,
    int rows, int heads, int seq_len)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    const int t = (row / heads) % seq_len;
    bf16* v = x + (long)row * 128;
    const float* cs = cos_sin + (long)t * 128;
    float out[4];
    float sum = 0.0f;
    #pragma unroll
    for (int p = 0; p < 2; p++)
    {
        const int j = lane + 32 * p;
        const float a = __bfloat162float(v[j]), b = __bfloat162float(v[j + 64]);
        const float c = cs[j], s = cs[64 + j];
        out[2 * p] = a * c + b * s;
        out[2 * p + 1] = -a * s + b * c;
        sum += out[2 * p] * out[2 * p] + out[2 * p + 1] * out[2 * p + 1];
    }
    const float r = rsqrtf(warp_sum(sum) / 128.0f + RMS_EPS);
    #pragma unroll
    for (int p = 0; p < 2; p++)
    {
        const int j = lane + 32 * p;
        v[j] = __float2bfloat16_rn(out[2 * p] * r);
        v[j + 64] = __float2bfloat16_rn(out[2 * p + 1] * r);
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
    const long base = (long)row * 128, gbase = (long)(row / heads) * dy_stride + (row % heads) * 128;
    const float* cs = cos_sin + (long)t * 128;
    float ya[2], yb[2], ga[2], gb[2];
    float dot = 0.0f;
    #pragma unroll
    for (int p = 0; p < 2; p++)
    {
        const int j = lane + 32 * p;
        ya[p] = __bfloat162float(y[base + j]);
        yb[p] = __bfloat162float(y[base + j + 64]);
        if (dy_accum != nullptr)
        {
            const long abase = (((long)(row / heads / seq_len) * heads + row % heads) * seq_len + t) * 128;
            ga[p] = dy_accum[abase + dq_column(t, j)];
            gb[p] = dy_accum[abase + dq_column(t, j + 64)];
        }
        else
        {
            ga[p] = __bfloat162float(dy[gbase + j]);
            gb[p] = __bfloat162float(dy[gbase + j + 64]);
        }
        dot += ga[p] * ya[p] + gb[p] * yb[p];
    }
    const float mean_dot = warp_sum(dot) / 128.0f;
    const float r = rstd[row];
    #pragma unroll
    for (int p = 0; p < 2; p++)
    {
        const int j = lane + 32 * p;
        const float da = r * (ga[p] - ya[p] * mean_dot), db = r * (gb[p] - yb[p] * mean_dot);
        const float c = cs[j], s = cs[64 + j];
        dy[gbase + j] = __float2bfloat16_rn(da * c - db * s);
        dy[gbase + j + 64] = __float2bfloat16_rn(da * s + db * c);
    }
}

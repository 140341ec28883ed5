// attention_naive.cu: causal sliding-window attention with grouped-query heads, head size D = HEAD_DIM (compile-time, 64 or
// 128), one warp per query, fp32 math: simple and slow. It is the GPU-side oracle for the flash kernels
// (flash_forward.cu, flash_backward.cu) at sizes where the CPU reference is too slow.
//
//   query t of head h sees keys s of kv head h / (H / KV) with t − W ≤ s ≤ t; scores = q·k / sqrt(D); softmax in fp32.
// naive_attention_forward:  q, o [B, T, H, D] bf16 (o written); k, v [B, T, KV, D] bf16; lse [B, H, T] fp32 (natural log of
//                           Σ exp(score))
// naive_attention_backward: from do [B, T, H, D] bf16: dq [B, T, H, D], dk and dv [B, T, KV, D] accumulated in fp32 scratch
//                           (zeroed by the caller: dq, then dk, then dv) with atomics, then naive_attention_finish casts them
//                           to bf16 (rows q_stride and kv_stride elements apart per token: H·D and KV·D when dense).
// Launch: forward/backward one warp per (b, t, h), 8 warps per block; finish any 1-D grid of 256-thread blocks.
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#define PER_LANE (HEAD_DIM / 32)

__device__ __forceinline__ float dot_head(const bf16* a, const bf16* b, int lane)
{
    float s = 0.0f;
    #pragma unroll
    for (int p = 0; p < PER_LANE; p++)
        s += __bfloat162float(a[lane + 32 * p]) * __bfloat162float(b[lane + 32 * p]);
    return warp_sum(s);
}

extern "C" __global__ void naive_attention_forward(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    bf16* __restrict__ o, float* __restrict__ lse, int batch, int seq_len, int heads, int kv_heads, int window)
{
    const long long item = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (item >= (long long)batch * seq_len * heads)
        return;
    const int h = item % heads, t = (item / heads) % seq_len, b = item / ((long long)heads * seq_len);
    const int kvh = h / (heads / kv_heads);
    const bf16* qv = q + (((long long)b * seq_len + t) * heads + h) * HEAD_DIM;
    const float scale = rsqrtf((float)HEAD_DIM);
    float m = -1e30f, l = 0.0f, acc[PER_LANE] = {};
    const int first = max(0, t - window);
    for (int s = first; s <= t; s++)
    {
        const long long kv = (((long long)b * seq_len + s) * kv_heads + kvh) * HEAD_DIM;
        const float score = dot_head(qv, k + kv, lane) * scale;
        const float m_new = fmaxf(m, score);
        const float correction = __expf(m - m_new), p = __expf(score - m_new);
        l = l * correction + p;
        #pragma unroll
        for (int i = 0; i < PER_LANE; i++)
            acc[i] = acc[i] * correction + p * __bfloat162float(v[kv + lane + 32 * i]);
        m = m_new;
    }
    bf16* ov = o + (((long long)b * seq_len + t) * heads + h) * HEAD_DIM;
    #pragma unroll
    for (int i = 0; i < PER_LANE; i++)
        ov[lane + 32 * i] = __float2bfloat16_rn(acc[i] / l);
    if (lane == 0)
        lse[((long long)b * heads + h) * seq_len + t] = m + __logf(l);
}

extern "C" __global__ void naive_attention_backward(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ o, const bf16* __restrict__ dout, const float* __restrict__ lse, float* __restrict__ scratch,
    int batch, int seq_len, int heads, int kv_heads, int window)
{
    const long long item = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    const long long total = (long long)batch * seq_len * heads;
    if (item >= total)
        return;
    const int h = item % heads, t = (item / heads) % seq_len, b = item / ((long long)heads * seq_len);
    const int kvh = h / (heads / kv_heads);
    const long long self = (((long long)b * seq_len + t) * heads + h) * HEAD_DIM;
    float* dq = scratch;
    float* dk = scratch + total * HEAD_DIM;
    float* dv = dk + (long long)batch * seq_len * kv_heads * HEAD_DIM;
    const float scale = rsqrtf((float)HEAD_DIM);
    const float big_d = dot_head(dout + self, o + self, lane);
    const float lse_t = lse[((long long)b * heads + h) * seq_len + t];
    float dq_acc[PER_LANE] = {};
    const int first = max(0, t - window);
    for (int s = first; s <= t; s++)
    {
        const long long kv = (((long long)b * seq_len + s) * kv_heads + kvh) * HEAD_DIM;
        const float p = __expf(dot_head(q + self, k + kv, lane) * scale - lse_t);
        const float dp = dot_head(dout + self, v + kv, lane);
        const float ds = p * (dp - big_d) * scale;
        #pragma unroll
        for (int i = 0; i < PER_LANE; i++)
        {
            const int d = lane + 32 * i;
            atomicAdd(dv + kv + d, p * __bfloat162float(dout[self + d]));
            atomicAdd(dk + kv + d, ds * __bfloat162float(q[self + d]));
            dq_acc[i] += ds * __bfloat162float(k[kv + d]);
        }
    }
    #pragma unroll
    for (int i = 0; i < PER_LANE; i++)
        dq[self + lane + 32 * i] = dq_acc[i];
}

// dq from the first count_q floats of scratch ([B·T, H, D]), dk and dv from the next two count_kv ([B·T, KV, D] each).
extern "C" __global__ void naive_attention_finish(const float* __restrict__ scratch, bf16* __restrict__ dq, bf16* __restrict__ dk,
    bf16* __restrict__ dv, long long count_q, long long count_kv, int heads, int kv_heads, long long q_stride, long long kv_stride)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count_q; i += (long long)gridDim.x * blockDim.x)
    {
        const long long row = i / HEAD_DIM;
        dq[row / heads * q_stride + row % heads * HEAD_DIM + i % HEAD_DIM] = __float2bfloat16_rn(scratch[i]);
        if (i < count_kv) // i also indexes [B·T, KV, D] for the kv tensors (count_kv ≤ count_q)
        {
            const long long kv_out = row / kv_heads * kv_stride + row % kv_heads * HEAD_DIM + i % HEAD_DIM;
            dk[kv_out] = __float2bfloat16_rn(scratch[count_q + i]);
            dv[kv_out] = __float2bfloat16_rn(scratch[count_q + count_kv + i]);
        }
    }
}

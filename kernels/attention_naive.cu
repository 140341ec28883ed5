// attention_naive.cu: causal sliding-window attention, head dim 128, one warp per query, fp32 math: simple and slow. It is the
// GPU-side oracle for the flash kernels of attention.cu at sizes where the CPU reference is too slow, and a fallback.
//
//   query t sees keys s with t − W ≤ s ≤ t; scores = q·k / sqrt(128); softmax in fp32.
// naive_attention_forward:  q, k, v, o [B, T, H, 128] bf16 (o written); lse [B, H, T] fp32 (natural log of Σ exp(score))
// naive_attention_backward: from do [B, T, H, 128] bf16: dq, dk, dv accumulated in fp32 scratch (zeroed by the caller,
//                           [3, B, T, H, 128]) with atomics, then naive_attention_finish casts them to bf16 dq, dk, dv
//                           (rows grad_stride elements apart per token: H·128 when dense).
// Launch: forward/backward one warp per (b, t, h), 8 warps per block; finish any 1-D grid of 256-thread blocks.
#include "common.cuh"

__device__ __forceinline__ float dot128(const bf16* a, const bf16* b, int lane)
{
    float s = 0.0f;
    #pragma unroll
    for (int p = 0; p < 4; p++)
        s += __bfloat162float(a[lane + 32 * p]) * __bfloat162float(b[lane + 32 * p]);
    return warp_sum(s);
}

extern "C" __global__ void naive_attention_forward(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    bf16* __restrict__ o, float* __restrict__ lse, int batch, int seq_len, int heads, int window)
{
    const long long item = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (item >= (long long)batch * seq_len * heads)
        return;
    const int h = item % heads, t = (item / heads) % seq_len, b = item / ((long long)heads * seq_len);
    const long long row = (long long)seq_len * heads * 128;
    const bf16* qv = q + b * row + ((long long)t * heads + h) * 128;
    const float scale = rsqrtf(128.0f);
    float m = -1e30f, l = 0.0f, acc[4] = {0, 0, 0, 0};
    const int first = max(0, t - window);
    for (int s = first; s <= t; s++)
    {
        const long long kv = b * row + ((long long)s * heads + h) * 128;
        const float score = dot128(qv, k + kv, lane) * scale;
        const float m_new = fmaxf(m, score);
        const float correction = __expf(m - m_new), p = __expf(score - m_new);
        l = l * correction + p;
        #pragma unroll
        for (int i = 0; i < 4; i++)
            acc[i] = acc[i] * correction + p * __bfloat162float(v[kv + lane + 32 * i]);
        m = m_new;
    }
    bf16* ov = o + b * row + ((long long)t * heads + h) * 128;
    #pragma unroll
    for (int i = 0; i < 4; i++)
        ov[lane + 32 * i] = __float2bfloat16_rn(acc[i] / l);
    if (lane == 0)
        lse[((long long)b * heads + h) * seq_len + t] = m + __logf(l);
}

extern "C" __global__ void naive_attention_backward(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ o, const bf16* __restrict__ dout, const float* __restrict__ lse, float* __restrict__ scratch,
    int batch, int seq_len, int heads, int window)
{
    const long long item = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    const long long total = (long long)batch * seq_len * heads;
    if (item >= total)
        return;
    const int h = item % heads, t = (item / heads) % seq_len, b = item / ((long long)heads * seq_len);
    const long long row = (long long)seq_len * heads * 128;
    const long long self = b * row + ((long long)t * heads + h) * 128;
    float* dq = scratch;
    float* dk = scratch + total * 128;
    float* dv = scratch + 2 * total * 128;
    const float scale = rsqrtf(128.0f);
    const float big_d = dot128(dout + self, o + self, lane);
    const float lse_t = lse[((long long)b * heads + h) * seq_len + t];
    float dq_acc[4] = {0, 0, 0, 0};
    const int first = max(0, t - window);
    for (int s = first; s <= t; s++)
    {
        const long long kv = b * row + ((long long)s * heads + h) * 128;
        const float p = __expf(dot128(q + self, k + kv, lane) * scale - lse_t);
        const float dp = dot128(dout + self, v + kv, lane);
        const float ds = p * (dp - big_d) * scale;
        #pragma unroll
        for (int i = 0; i < 4; i++)
        {
            const int d = lane + 32 * i;
            atomicAdd(dv + kv + d, p * __bfloat162float(dout[self + d]));
            atomicAdd(dk + kv + d, ds * __bfloat162float(q[self + d]));
            dq_acc[i] += ds * __bfloat162float(k[kv + d]);
        }
    }
    #pragma unroll
    for (int i = 0; i < 4; i++)
        dq[self + lane + 32 * i] = dq_acc[i];
}

extern "C" __global__ void naive_attention_finish(const float* __restrict__ scratch, bf16* __restrict__ dq, bf16* __restrict__ dk,
    bf16* __restrict__ dv, long long count, int heads, long long grad_stride)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    {
        const long long row = i / 128, out = row / heads * grad_stride + row % heads * 128 + i % 128;
        dq[out] = __float2bfloat16_rn(scratch[i]);
        dk[out] = __float2bfloat16_rn(scratch[count + i]);
        dv[out] = __float2bfloat16_rn(scratch[2 * count + i]);
    }
}

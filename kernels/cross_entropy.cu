// cross_entropy.cu: soft cap and cross-entropy over fp32 logits, fused, for one chunk of rows (SPEC §5 step 3).
//
//   z = cap·tanh(l/cap);  loss_i = logsumexp(z_i) − z_i[target_i]  (0 where target_i = −1: ignored)
//   dL/dl = grad_scale·(softmax(z_i) − onehot(target_i))·(1 − (z/cap)²)   (0 for ignored rows)
// softcap_cross_entropy: logits [rows, vocab] fp32, targets [rows] int32, losses [rows] fp32 (written),
//   dlogits [rows, vocab] bf16 (written; pass 0 to skip the gradient, e.g. in evaluation). grad_scale is 1/(scored tokens ·
//   micro-steps) from the host. The whole T×vocab logits of a batch never exist: the caller runs this per chunk of rows.
// sum_f32: out[0] += Σ x (one atomic per block), for the mean loss.
// Launch: softcap_cross_entropy one 256-thread block per row; sum_f32 any 1-D grid of 256-thread blocks.
//
// Rows of up to 8192 logits whose length is a multiple of 4 are read once, 16 bytes at a time, into registers (tanh evaluated
// once per logit), and the gradient is written 8 bytes at a time: 4 + 2 bytes per logit, the least this op can move. Other
// shapes take a general three-pass loop over the row.
#include "common.cuh"

#define NEG_INF __int_as_float(0xff800000)

#define CE_THREADS 256
#define CE_QUADS 8 // float4s per thread kept in registers: rows of up to 256 · 8 · 4 = 8192 logits

extern "C" __global__ void softcap_cross_entropy(const float* __restrict__ logits, const int* __restrict__ targets, int rows, int vocab,
    float cap, float grad_scale, float* __restrict__ losses, bf16* __restrict__ dlogits)
{
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows)
        return;
    const float* l = logits + (long)row * vocab;
    const int target = targets[row];
    const float inv_cap = 1.0f / cap;
    if ((vocab & 3) == 0 && vocab <= CE_THREADS * CE_QUADS * 4 && blockDim.x == CE_THREADS)
    {
        const int quads = vocab >> 2;
        float t[CE_QUADS][4]; // tanh(l / cap); z = cap · t
        float t_max = -1.0f;
        #pragma unroll
        for (int i = 0; i < CE_QUADS; i++)
        {
            const int quad = threadIdx.x + i * CE_THREADS;
            if (quad < quads)
            {
                const float4 x = reinterpret_cast<const float4*>(l)[quad];
                t[i][0] = tanhf(x.x * inv_cap);
                t[i][1] = tanhf(x.y * inv_cap);
                t[i][2] = tanhf(x.z * inv_cap);
                t[i][3] = tanhf(x.w * inv_cap);
                t_max = fmaxf(t_max, fmaxf(fmaxf(t[i][0], t[i][1]), fmaxf(t[i][2], t[i][3])));
            }
        }
        const float m = cap * block_max(t_max, scratch);
        float s = 0.0f;
        #pragma unroll
        for (int i = 0; i < CE_QUADS; i++)
        {
            if (threadIdx.x + i * CE_THREADS < quads)
            {
                #pragma unroll
                for (int e = 0; e < 4; e++)
                    s += __expf(cap * t[i][e] - m);
            }
        }
        s = block_sum(s, scratch);
        const float lse = m + __logf(s);
        if (threadIdx.x == 0)
            losses[row] = target < 0 ? 0.0f : lse - cap * tanhf(l[target] * inv_cap);
        if (dlogits == 0)
            return;
        uint2* d = reinterpret_cast<uint2*>(dlogits + (long)row * vocab);
        #pragma unroll
        for (int i = 0; i < CE_QUADS; i++)
        {
            const int quad = threadIdx.x + i * CE_THREADS;
            if (quad < quads)
            {
                float g[4];
                #pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    const float p = __expf(cap * t[i][e] - lse);
                    g[e] = target < 0 ? 0.0f : grad_scale * (p - (quad * 4 + e == target ? 1.0f : 0.0f)) * (1.0f - t[i][e] * t[i][e]);
                }
                __nv_bfloat162 lo = __floats2bfloat162_rn(g[0], g[1]), hi = __floats2bfloat162_rn(g[2], g[3]);
                uint2 packed;
                packed.x = *reinterpret_cast<unsigned*>(&lo);
                packed.y = *reinterpret_cast<unsigned*>(&hi);
                d[quad] = packed;
            }
        }
        return;
    }

    // General rows. Pass 1: the maximum of z (z ≤ cap, so exp never overflows after the shift).
    float m = NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
        m = fmaxf(m, cap * tanhf(l[j] * inv_cap));
    m = block_max(m, scratch);
    // Pass 2: Σ exp(z − m).
    float s = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
        s += __expf(cap * tanhf(l[j] * inv_cap) - m);
    s = block_sum(s, scratch);
    const float lse = m + __logf(s);
    if (threadIdx.x == 0)
        losses[row] = target < 0 ? 0.0f : lse - cap * tanhf(l[target] * inv_cap);
    if (dlogits == 0)
        return;
    bf16* d = dlogits + (long)row * vocab;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
    {
        float g = 0.0f;
        if (target >= 0)
        {
            const float t = tanhf(l[j] * inv_cap);
            const float p = __expf(cap * t - lse);
            g = grad_scale * (p - (j == target ? 1.0f : 0.0f)) * (1.0f - t * t);
        }
        d[j] = __float2bfloat16_rn(g);
    }
}

extern "C" __global__ void sum_f32(const float* __restrict__ x, long count, float* __restrict__ out)
{
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x)
        s += x[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0)
        atomicAdd(out, s);
}

// cross_entropy.cu: soft cap and cross-entropy over bf16 logits (the lm_head GEMM's bf16 output, as in the reference, where
// the logits are cast to fp32 before the soft cap), fused, for one chunk of rows (SPEC §5 step 3); fp32 math inside.
//
//   z = cap·tanh(l/cap);  loss_i = logsumexp(z_i) − z_i[target_i]  (0 where target_i = −1: ignored)
//   dL/dl = grad_scale·(softmax(z_i) − onehot(target_i))·(1 − (z/cap)²)   (0 for ignored rows)
// softcap_cross_entropy: logits [rows, vocab] bf16, targets [rows] int32, losses [rows] fp32 (written),
//   dlogits [rows, vocab] bf16 (written; pass 0 to skip the gradient, e.g. in evaluation). grad_scale is 1/(scored tokens ·
//   micro-steps) from the host. The whole T×vocab logits of a batch never exist: the caller runs this per chunk of rows.
// plain_cross_entropy: the same without a soft cap (the SoftCap knob at 0): z = l, dL/dl = grad_scale·(softmax(l) − onehot),
//   with the row's maximum as the softmax shift (one more block reduction).
// sum_f32: out[0] += Σ x (one atomic per block), for the mean loss.
// Launch: softcap_cross_entropy and plain_cross_entropy one 256-thread block per row; sum_f32 any 1-D grid of 256-thread blocks.
//
// Rows of up to 8192 logits whose length is a multiple of 8 are read once, 16 bytes at a time, into registers (the soft cap
// and its exponential evaluated once per logit, three MUFU instructions in all), and the gradient is written 16 bytes at a
// time: 2 + 2 bytes per logit, the least this op can move. Other shapes take a general two-pass loop over the row.
#include "common.cuh"


#define CE_THREADS 256
#define CE_CHUNKS 4 // 8-logit chunks per thread kept in registers: rows of up to 256 · 4 · 8 = 8192 logits

// The soft cap through r = 1 / (1 + e^(2l/cap)), two MUFU instructions (ex2, rcp), no tanh: tanh(l/cap) = 1 − 2r, so
//   z − cap = −2·cap·r,  e = exp(z − cap) = 2^(r · r_to_exponent),  and the soft cap's derivative 1 − tanh² = 4r(1 − r)
// (exact where tanh → ±1, unlike 1 − t²). Absolute error of z ~1e-6, far below the bf16 logits' own rounding.
// l_to_exponent = 2·log2(e)/cap, r_to_exponent = −2·cap·log2(e).
__device__ __forceinline__ float softcap_r(float l, float l_to_exponent)
{
    return __fdividef(1.0f, 1.0f + fast_exp2(l * l_to_exponent)); // e^(2l/cap) = ∞ gives r = 0 (z = cap)
}

// A row's loss from s = Σ exp(z − cap): logsumexp(z) − z[target] = log s + cap − cap·(1 − 2r) = log s + 2·cap·r (0 when ignored).
__device__ __forceinline__ float row_loss(const bf16* l, int target, float s, float cap, float l_to_exponent)
{
    return target < 0 ? 0.0f : __logf(s) + 2.0f * cap * softcap_r(__bfloat162float(l[target]), l_to_exponent);
}

// dL/dl of one logit: grad_scale · (softmax − onehot) · (1 − tanh²), with 1 − tanh² = 4r(1 − r).
__device__ __forceinline__ float logit_grad(float p, float r, bool is_target, float grad_scale)
{
    return grad_scale * (p - (is_target ? 1.0f : 0.0f)) * 4.0f * r * (1.0f - r);
}

extern "C" __global__ void softcap_cross_entropy(const bf16* __restrict__ logits, const int* __restrict__ targets, int rows, int vocab,
    float cap, float grad_scale, float* __restrict__ losses, bf16* __restrict__ dlogits)
{
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows)
        return;
    const bf16* l = logits + (long)row * vocab;
    const int target = targets[row];
    const float l_to_exponent = 2.0f * LOG2E / cap, r_to_exponent = -2.0f * cap * LOG2E;
    // z ≤ cap, so cap serves as the softmax shift: e = exp(z − cap) ∈ [e^(−2·cap), 1] neither overflows nor underflows, the
    // row needs no maximum (one block reduction), and softmax(z) = e / Σ e.
    if ((vocab & 7) == 0 && vocab <= CE_THREADS * CE_CHUNKS * 8 && blockDim.x == CE_THREADS)
    {
        // Rows of up to 8192 logits: read once, 16 bytes at a time, into registers; the gradient written 16 bytes at a time.
        // What the gradient needs of a logit is kept as one float, e·(1 − tanh²), and the target's 1 − tanh² apart:
        // dL/dl = grad_scale·(e·(1 − tanh²)/s − onehot·(1 − tanh²)). Keeping r and e instead took 80 registers a thread
        // (three 256-thread blocks an SM, too few loads in flight to hide the memory's latency).
        const int chunks = vocab >> 3;
        float w[CE_CHUNKS][8];
        float s = 0.0f, target_slope = 0.0f;
        #pragma unroll
        for (int i = 0; i < CE_CHUNKS; i++)
        {
            const int chunk = threadIdx.x + i * CE_THREADS;
            if (chunk < chunks)
            {
                float x[8];
                load8(l + chunk * 8, x);
                #pragma unroll
                for (int j = 0; j < 8; j++)
                {
                    const float r = softcap_r(x[j], l_to_exponent), e = fast_exp2(r * r_to_exponent), slope = 4.0f * r * (1.0f - r);
                    s += e;
                    w[i][j] = e * slope;
                    if (chunk * 8 + j == target)
                        target_slope = slope;
                }
            }
        }
        s = block_sum(s, scratch);
        if (threadIdx.x == 0)
            losses[row] = row_loss(l, target, s, cap, l_to_exponent);
        if (dlogits == 0)
            return;
        bf16* d = dlogits + (long)row * vocab;
        const float inv_s = 1.0f / s;
        #pragma unroll
        for (int i = 0; i < CE_CHUNKS; i++)
        {
            const int chunk = threadIdx.x + i * CE_THREADS;
            if (chunk < chunks)
            {
                float g[8];
                #pragma unroll
                for (int j = 0; j < 8; j++)
                    g[j] = target < 0 ? 0.0f : grad_scale * (w[i][j] * inv_s - (chunk * 8 + j == target ? target_slope : 0.0f));
                store8(d + chunk * 8, g);
            }
        }
        return;
    }

    // Other shapes: two passes over the row.
    float s = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
        s += fast_exp2(softcap_r(__bfloat162float(l[j]), l_to_exponent) * r_to_exponent);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0)
        losses[row] = row_loss(l, target, s, cap, l_to_exponent);
    if (dlogits == 0)
        return;
    bf16* d = dlogits + (long)row * vocab;
    const float inv_s = 1.0f / s;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
    {
        float g = 0.0f;
        if (target >= 0)
        {
            const float rj = softcap_r(__bfloat162float(l[j]), l_to_exponent);
            const float p = fast_exp2(rj * r_to_exponent) * inv_s;
            g = logit_grad(p, rj, j == target, grad_scale);
        }
        d[j] = __float2bfloat16_rn(g);
    }
}

extern "C" __global__ void plain_cross_entropy(const bf16* __restrict__ logits, const int* __restrict__ targets, int rows, int vocab,
    float grad_scale, float* __restrict__ losses, bf16* __restrict__ dlogits)
{
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows)
        return;
    const bf16* l = logits + (long)row * vocab;
    const int target = targets[row];
    if ((vocab & 7) == 0 && vocab <= CE_THREADS * CE_CHUNKS * 8 && blockDim.x == CE_THREADS)
    {
        // Rows of up to 8192 logits: read once into registers, the maximum, then e = exp(l − max) in place.
        const int chunks = vocab >> 3;
        float e[CE_CHUNKS][8];
        float m = NEG_INF;
        #pragma unroll
        for (int i = 0; i < CE_CHUNKS; i++)
        {
            const int chunk = threadIdx.x + i * CE_THREADS;
            if (chunk < chunks)
            {
                load8(l + chunk * 8, e[i]);
                #pragma unroll
                for (int j = 0; j < 8; j++)
                    m = fmaxf(m, e[i][j]);
            }
        }
        m = block_max(m, scratch);
        float s = 0.0f;
        #pragma unroll
        for (int i = 0; i < CE_CHUNKS; i++)
        {
            if (threadIdx.x + i * CE_THREADS < chunks)
            {
                #pragma unroll
                for (int j = 0; j < 8; j++)
                {
                    e[i][j] = fast_exp2((e[i][j] - m) * LOG2E);
                    s += e[i][j];
                }
            }
        }
        s = block_sum(s, scratch);
        if (threadIdx.x == 0)
            losses[row] = target < 0 ? 0.0f : __logf(s) + m - __bfloat162float(l[target]);
        if (dlogits == 0)
            return;
        bf16* d = dlogits + (long)row * vocab;
        const float inv_s = 1.0f / s;
        #pragma unroll
        for (int i = 0; i < CE_CHUNKS; i++)
        {
            const int chunk = threadIdx.x + i * CE_THREADS;
            if (chunk < chunks)
            {
                float g[8];
                #pragma unroll
                for (int j = 0; j < 8; j++)
                    g[j] = target < 0 ? 0.0f : grad_scale * (e[i][j] * inv_s - (chunk * 8 + j == target ? 1.0f : 0.0f));
                store8(d + chunk * 8, g);
            }
        }
        return;
    }

    // Other shapes: three passes over the row (maximum, sum, gradient).
    float m = NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
        m = fmaxf(m, __bfloat162float(l[j]));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
        s += fast_exp2((__bfloat162float(l[j]) - m) * LOG2E);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0)
        losses[row] = target < 0 ? 0.0f : __logf(s) + m - __bfloat162float(l[target]);
    if (dlogits == 0)
        return;
    bf16* d = dlogits + (long)row * vocab;
    const float inv_s = 1.0f / s;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
    {
        const float p = fast_exp2((__bfloat162float(l[j]) - m) * LOG2E) * inv_s;
        d[j] = __float2bfloat16_rn(target < 0 ? 0.0f : grad_scale * (p - (j == target ? 1.0f : 0.0f)));
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

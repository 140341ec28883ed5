// cross_entropy.cu: soft cap and cross-entropy over fp32 logits, fused, for one chunk of rows (SPEC §5 step 3).
//
//   z = cap·tanh(l/cap);  loss_i = logsumexp(z_i) − z_i[target_i]  (0 where target_i = −1: ignored)
//   dL/dl = grad_scale·(softmax(z_i) − onehot(target_i))·(1 − (z/cap)²)   (0 for ignored rows)
// softcap_cross_entropy: logits [rows, vocab] fp32, targets [rows] int32, losses [rows] fp32 (written),
//   dlogits [rows, vocab] bf16 (written; pass 0 to skip the gradient, e.g. in evaluation). grad_scale is 1/(scored tokens ·
//   micro-steps) from the host. The whole T×vocab logits of a batch never exist: the caller runs this per chunk of rows.
// sum_f32: out[0] += Σ x (one atomic per block), for the mean loss.
// Launch: softcap_cross_entropy one 256-thread block per row; sum_f32 any 1-D grid of 256-thread blocks.
#include "common.cuh"

#define NEG_INF __int_as_float(0xff800000)

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
    // Pass 1: the maximum of z (z ≤ cap, so exp never overflows after the shift).
    float m = NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
        m = fmaxf(m, cap * tanhf(l[j] * inv_cap));
    m = warp_max(m);
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        scratch[threadIdx.x >> 5] = m;
    __syncthreads();
    m = (threadIdx.x & 31) < (blockDim.x >> 5) ? scratch[threadIdx.x & 31] : NEG_INF;
    m = warp_max(m);
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

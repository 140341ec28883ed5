// muon.cu: the element-wise and reduction stages of Muon with NorMuon and cautious weight decay (SPEC §6), for one group of
// `count` matrices of one shape rows × cols. The Polar Express iterations between them are strided-batched cuBLAS GEMMs.
// Matrices live at offsets[k] in the flat fp32 parameter layout; work buffers are contiguous [count, rows, cols].
//
// muon_momentum:  buf ← μ·buf + (1−μ)·g;  u = (1−μ)·g + μ·buf  →  work[k] (fp32); sumsq[k] += Σ u² (one atomic per block)
//                 buf [count·rows·cols] fp32 (the group's momentum, contiguous)
// muon_normalize: x[k] = bf16(u / (‖u‖·1.02 + 1e-6))   x [count, rows, cols] bf16
// normuon_row_stats / normuon_col_stats: v_mean[k, l] = mean(x²) along the reduced axis: per row (rows ≥ cols, over cols) or per
//                 column (rows < cols, over rows)   v_mean [count, L] fp32, L = rows or cols
// normuon_scales: one block per matrix: ‖X‖ = sqrt(n·Σ v_mean), s2 ← β2·s2 + (1−β2)·v_mean, r = 1/sqrt(max(s2, 1e-10)),
//                 ‖X r‖ = sqrt(Σ n·v_mean·r²), scale[k, l] = r·‖X‖ / max(‖X r‖, 1e-10)      s2, scale [count, L] fp32
// muon_update:    X = x·scale (per row or column);  mask = (X·p ≥ 0);  p ← p − lr·X − lr_decay·p·mask;  bf16 copy written
//                 (lr = lr_eff, lr_decay = lr_eff·wd from the host)
// With `reference` set (the Precision knob's reference mode), the roundings of the reference: u is rounded to bf16 before
// its norm; the norm, the denominator's steps and x = u / (‖u‖·1.02 + 1e-6) are bf16; the scale and X = x·scale are bf16,
// lr·X is formed in bf16 (lr = bf16(lr_eff), lr_decay = bf16(bf16(lr_eff)·bf16(wd)) from the host), the decay term and the
// sum in fp32.
// Launch: grid-stride 1-D grids of 256 threads for the element-wise kernels with blockIdx.y = matrix index;
//         normuon_scales one 256-thread block per matrix.
#include "common.cuh"

__device__ __forceinline__ float round_bf16(float x)
{
    return __bfloat162float(__float2bfloat16_rn(x));
}

extern "C" __global__ void muon_momentum(const long long* __restrict__ offsets, const float* __restrict__ grads, float* __restrict__ buf,
    float* __restrict__ work, float* __restrict__ sumsq, float momentum, long long size, int reference)
{
    __shared__ float scratch[32];
    const int k = blockIdx.y;
    const float* g = grads + offsets[k];
    float* b = buf + k * size;
    float* u = work + k * size;
    float local = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x)
    {
        const float gi = g[i];
        const float bi = momentum * b[i] + (1.0f - momentum) * gi;
        b[i] = bi;
        float ui = (1.0f - momentum) * gi + momentum * bi;
        if (reference)
            ui = round_bf16(ui);
        u[i] = ui;
        local += ui * ui;
    }
    local = block_sum(local, scratch);
    if (threadIdx.x == 0)
        atomicAdd(sumsq + k, local);
}

extern "C" __global__ void muon_normalize(const float* __restrict__ work, const float* __restrict__ sumsq, bf16* __restrict__ x, long long size,
    int reference)
{
    const int k = blockIdx.y;
    if (reference)
    {
        const float denominator = round_bf16(round_bf16(round_bf16(sqrtf(sumsq[k])) * 1.02f) + 1e-6f);
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x)
            x[k * size + i] = __float2bfloat16_rn(work[k * size + i] / denominator);
        return;
    }
    const float inv = 1.0f / (sqrtf(sumsq[k]) * 1.02f + 1e-6f);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x)
        x[k * size + i] = __float2bfloat16_rn(work[k * size + i] * inv);
}

// One warp per row: v_mean over the row's cols.
extern "C" __global__ void normuon_row_stats(const bf16* __restrict__ x, float* __restrict__ v_mean, int count, int rows, int cols)
{
    const long long item = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (item >= (long long)count * rows)
        return;
    const bf16* r = x + item * cols;
    float s = 0.0f;
    for (int j = lane; j < cols; j += 32)
    {
        const float v = __bfloat162float(r[j]);
        s += v * v;
    }
    s = warp_sum(s);
    if (lane == 0)
        v_mean[item] = s / cols;
}

// One thread per column: v_mean over the column's rows (coalesced across threads).
extern "C" __global__ void normuon_col_stats(const bf16* __restrict__ x, float* __restrict__ v_mean, int count, int rows, int cols)
{
    const long long item = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (item >= (long long)count * cols)
        return;
    const long long k = item / cols, j = item % cols;
    const bf16* m = x + k * rows * cols;
    float s = 0.0f;
    for (int i = 0; i < rows; i++)
    {
        const float v = __bfloat162float(m[(long long)i * cols + j]);
        s += v * v;
    }
    v_mean[item] = s / rows;
}

extern "C" __global__ void normuon_scales(const float* __restrict__ v_mean, float* __restrict__ s2, float* __restrict__ scale,
    int length, int n, float beta2)
{
    __shared__ float scratch[32];
    const int k = blockIdx.x;
    const float* vm = v_mean + (long long)k * length;
    float* s = s2 + (long long)k * length;
    float* out = scale + (long long)k * length;
    float sum_v = 0.0f, sum_vr = 0.0f;
    for (int l = threadIdx.x; l < length; l += blockDim.x)
    {
        const float v = vm[l];
        const float sl = beta2 * s[l] + (1.0f - beta2) * v;
        s[l] = sl;
        const float r = rsqrtf(fmaxf(sl, 1e-10f));
        out[l] = r;
        sum_v += v;
        sum_vr += n * v * r * r;
    }
    sum_v = block_sum(sum_v, scratch);
    sum_vr = block_sum(sum_vr, scratch);
    const float norm = sqrtf(n * sum_v);
    const float norm_r = sqrtf(sum_vr);
    const float factor = norm / fmaxf(norm_r, 1e-10f);
    for (int l = threadIdx.x; l < length; l += blockDim.x)
        out[l] *= factor;
}

extern "C" __global__ void muon_update(const long long* __restrict__ offsets, const bf16* __restrict__ x, const float* __restrict__ scale,
    int per_row, int rows, int cols, float lr, float lr_decay, float* __restrict__ params, bf16* __restrict__ params_bf16, int reference)
{
    const int k = blockIdx.y;
    const long long size = (long long)rows * cols;
    const long long base = offsets[k];
    const int length = per_row ? rows : cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x)
    {
        const int l = per_row ? (int)(i / cols) : (int)(i % cols);
        const float xi = __bfloat162float(x[k * size + i]), si = scale[(long long)k * length + l];
        const float xv = reference ? round_bf16(xi * round_bf16(si)) : xi * si;
        float p = params[base + i];
        const float mask = xv * p >= 0.0f ? 1.0f : 0.0f;
        p = reference ? p - (round_bf16(lr * xv) + lr_decay * p * mask) : p - lr * xv - lr_decay * p * mask;
        params[base + i] = p;
        params_bf16[base + i] = __float2bfloat16_rn(p);
    }
}

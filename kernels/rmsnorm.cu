// rmsnorm.cu: RMS normalisation without weight (SPEC §5), alone and fused with the residual mix of each layer.
//
//   norm(x) = x / sqrt(mean(x²) + eps), eps = fp32 epsilon, over rows of c features; math in fp32, outputs rounded to bf16.
//
// rmsnorm_forward:               y = norm(x); rstd[i] = 1/sqrt(mean(x_i²) + eps)           x, y [n, c] bf16; rstd [n] fp32 (kept for backward);
//                                y may be null: rstd only (the model no longer calls this: its fc GEMM computes the MLP
//                                norm's rstd itself, mlp_gemm.cu's NORM path)
// residual_mix_rmsnorm_forward:  m = bf16(rl·x + xl·x0); h = norm(m)                       rl = resid_lambdas[layer], xl = x0_lambdas[layer] (device fp32)
//                                writes m (the layer's residual input, kept for backward), h and rstd.
// rmsnorm_apply:                 y = x·rstd with a kept rstd (recomputes a norm's output in the backward instead of storing it)
// rmsnorm_backward:              dx (+)= rstd·(dy − x̂·mean(dy·x̂)), x̂ = x·rstd (fp32)        dy [n, c] fp32 (bf16 when dy_bf16 != 0); dx [n, c] fp32
//                                (bf16 when dx_bf16 != 0: the residual gradient, which the next GEMMs read, and the x0 gradient
//                                in place), written or
//                                accumulated (accumulate != 0; the sum in fp32, rounded once); dx may be dy itself (each
//                                element is read before it is written, by the same thread);
//                                with dy_scaled != 0, dy arrives multiplied by rstd (dy' = rstd·dy, from a GEMM that applied
//                                the norm as a row scale): dx (+)= dy' − rstd²·x·mean(dy'·x)
// residual_mix_backward:         given g = dL/dm (bf16): dx = rl·g (bf16, may alias g), dx0 += xl·g (bf16, the sum in fp32),
//                                d_resid_lambdas[layer] += Σ g·x, d_x0_lambdas[layer] += Σ g·x0 (one atomic per block);
//                                with dx null (layer 0, whose x is x0) dx0 += xl·g, then += rl·g: the whole x0 gradient
// rmsnorm_mix_backward:          the two above in one pass for a layer's first norm (m = the mix, h = norm(m)): from
//                                dy = dL/dh (bf16) and g = the gradient reaching m along the residual path (bf16),
//                                gt = g + rmsnorm backward(m, dy) in fp32; then g = rl·gt (bf16), dx0 += xl·gt, the lambdas'
//                                gradients; with fold != 0 (layer 0) dx0 += xl·gt, then += rl·gt, and g is left as it is;
//                                c a multiple of 8 and at most 1024 (each lane keeps its features in registers);
//                                rmsnorm_mix_backward_512 is the same for c ≤ 512, with half the registers, and it loads g,
//                                x, x0 and dx0 with m and dy (one round trip to memory a row, not two).
//                                m may be null: the kernel recomputes it from x and x0 (residual_mix, bit for bit the
//                                forward's), so the model need not keep m.
// The residual gradient and the x0 gradient summed over the layers are bf16 between kernels, as in the reference (autograd
// sums bf16 gradients in bf16); each kernel adds its share in fp32 and rounds once.
// Launch: forward/backward of norms: one warp per row, 8 rows per 256-thread block, c a multiple of 8 and at most 4096.
//         residual_mix_backward: any 1-D grid of 256-thread blocks over n·c elements (grid-stride).
//         rmsnorm_mix_backward: any 1-D grid of 256-thread blocks; each warp takes rows warp, warp + 8·gridDim.x, ...
//
// Compiled in three parts side by side on a cold start (RmsNorm.Sources: the whole file was the longest compile of a start):
// with RMSNORM_PART 1 the file holds the forward passes, rmsnorm_apply and residual_mix_backward; with 2 the two
// rmsnorm_backward kernels; with 3 rmsnorm_mix_backward. Without RMSNORM_PART it holds them all.
#include "common.cuh"

#if !defined(RMSNORM_PART)
#define RMSNORM_PART 0
#elif RMSNORM_PART < 1 || RMSNORM_PART > 3
#error "RMSNORM_PART is 1, 2 or 3 (or undefined: the whole file)"
#endif

// The residual mix of one element, m = bf16(rl·x + xl·x0) as a float: one rounding order, so that a backward recomputing m
// gets the forward's m bit for bit.
__device__ __forceinline__ float residual_mix(float rl, float x, float xl, float x0)
{
    return __bfloat162float(__float2bfloat16_rn(__fmaf_rn(rl, x, __fmul_rn(xl, x0))));
}

// y = x·r for one row of c features, by one warp (16-byte accesses).
__device__ __forceinline__ void scale_row(const bf16* x, float r, bf16* y, int c, int lane)
{
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8];
        load8(x + j, v);
        #pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] *= r;
        store8(y + j, v);
    }
}


#if RMSNORM_PART == 0 || RMSNORM_PART == 1
extern "C" __global__ void rmsnorm_forward(const bf16* __restrict__ x, bf16* __restrict__ y, float* __restrict__ rstd, int n, int c)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const bf16* xr = x + (long)row * c;
    float sum = 0.0f;
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8];
        load8(xr + j, v);
        #pragma unroll
        for (int i = 0; i < 8; i++)
            sum += v[i] * v[i];
    }
    const float r = rsqrtf(warp_sum(sum) / c + RMS_EPS);
    if (y != nullptr)
        scale_row(xr, r, y + (long)row * c, c, lane);
    if (lane == 0)
        rstd[row] = r;
}

extern "C" __global__ void residual_mix_rmsnorm_forward(const bf16* __restrict__ x, const bf16* __restrict__ x0,
    const float* __restrict__ resid_lambdas, const float* __restrict__ x0_lambdas, int layer,
    bf16* __restrict__ m, bf16* __restrict__ h, float* __restrict__ rstd, int n, int c)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const float rl = resid_lambdas[layer], xl = x0_lambdas[layer];
    const long base = (long)row * c;
    float sum = 0.0f;
    for (int j = lane * 8; j < c; j += 256)
    {
        float a[8], b[8];
        load8(x + base + j, a);
        load8(x0 + base + j, b);
        #pragma unroll
        for (int i = 0; i < 8; i++)
        {
            // The residual stream is bf16 (SPEC §5): round the mix before normalising it.
            a[i] = residual_mix(rl, a[i], xl, b[i]);
            sum += a[i] * a[i];
        }
        store8(m + base + j, a);
    }
    const float r = rsqrtf(warp_sum(sum) / c + RMS_EPS);
    scale_row(m + base, r, h + base, c, lane); // each lane reads back the elements it wrote
    if (lane == 0)
        rstd[row] = r;
}

extern "C" __global__ void rmsnorm_apply(const bf16* __restrict__ x, const float* __restrict__ rstd, bf16* __restrict__ y, int n, int c)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    scale_row(x + (long)row * c, rstd[row], y + (long)row * c, c, lane);
}

#endif

#define NORM_CHUNKS 4 // 8-feature chunks per lane kept in registers by the backward: rows of up to 32 · 4 · 8 = 1024 features

__device__ __forceinline__ void load8f(const float* p, float v[8])
{
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ __forceinline__ void store8f(float* p, const float v[8])
{
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

// Rows of up to 1024 features are read once into registers (x, dy) and every access is 16 bytes wide; wider rows take a
// two-pass loop.
// Eight values of a gradient that is fp32, or bf16 when is_bf16 != 0.
__device__ __forceinline__ void load8_any(const void* p, long i, int is_bf16, float out[8])
{
    if (is_bf16)
        load8(static_cast<const bf16*>(p) + i, out);
    else
        load8f(static_cast<const float*>(p) + i, out);
}

__device__ __forceinline__ void store8_any(void* p, long i, int is_bf16, const float v[8])
{
    if (is_bf16)
        store8(static_cast<bf16*>(p) + i, v);
    else
        store8f(static_cast<float*>(p) + i, v);
}

// A warp's row of c ≤ 32 · CHUNKS · 8 features into registers (lane's chunks k: features (lane + 32k)·8 ..): the bf16
// activations into a and the gradient (load8_any) into d; returns the row's Σ d·a (all lanes).
template <int CHUNKS>
__device__ __forceinline__ float load_row_dot(const bf16* a, const void* dy, int dy_bf16, long base, int c, int lane,
    float av[CHUNKS][8], float dv[CHUNKS][8])
{
    float dot = 0.0f;
    #pragma unroll
    for (int k = 0; k < CHUNKS; k++)
    {
        const int j = (lane + 32 * k) * 8;
        if (j < c)
        {
            load8(a + base + j, av[k]);
            load8_any(dy, base + j, dy_bf16, dv[k]);
            #pragma unroll
            for (int i = 0; i < 8; i++)
                dot += dv[k][i] * av[k][i];
        }
    }
    return warp_sum(dot);
}

// The backward of the warp's row; rows of c ≤ 32 · CHUNKS · 8 features are read once into registers, wider rows take two
// passes. A kernel's registers are those of its largest path, so each CHUNKS is its own kernel (below): at width 512 the
// four-chunk kernel took 96 registers a thread, two 256-thread blocks an SM.
// dy may be dx itself (each element is read before it is written, by the same thread), so neither is restrict.
template <int CHUNKS>
__device__ __forceinline__ void rmsnorm_backward_rows(const bf16* __restrict__ x, const float* __restrict__ rstd, const void* dy, void* dx,
    int accumulate, int n, int c, int dy_bf16, int dx_bf16, int dy_scaled)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const long base = (long)row * c;
    const float r = rstd[row];
    // a: the factor dy still needs (r, or 1 when it arrives scaled); mean_dot = mean(dy·x̂) either way.
    const float a = dy_scaled ? 1.0f : r;
    if (c <= 32 * CHUNKS * 8)
    {
        float xv[CHUNKS][8], gv[CHUNKS][8];
        const float mean_dot = load_row_dot<CHUNKS>(x, dy, dy_bf16, base, c, lane, xv, gv) * a / c;
        #pragma unroll
        for (int k = 0; k < CHUNKS; k++)
        {
            const int j = (lane + 32 * k) * 8;
            if (j < c)
            {
                float out[8];
                if (accumulate)
                    load8_any(dx, base + j, dx_bf16, out);
                #pragma unroll
                for (int i = 0; i < 8; i++)
                {
                    const float g = a * gv[k][i] - r * r * xv[k][i] * mean_dot;
                    out[i] = accumulate ? out[i] + g : g;
                }
                store8_any(dx, base + j, dx_bf16, out);
            }
        }
        return;
    }
    float dot = 0.0f;
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8], g[8];
        load8(x + base + j, v);
        load8_any(dy, base + j, dy_bf16, g);
        #pragma unroll
        for (int i = 0; i < 8; i++)
            dot += g[i] * v[i] * a;
    }
    const float mean_dot = warp_sum(dot) / c;
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8], g[8], out[8];
        load8(x + base + j, v);
        load8_any(dy, base + j, dy_bf16, g);
        if (accumulate)
            load8_any(dx, base + j, dx_bf16, out);
        #pragma unroll
        for (int i = 0; i < 8; i++)
        {
            const float d = a * g[i] - r * r * v[i] * mean_dot;
            out[i] = accumulate ? out[i] + d : d;
        }
        store8_any(dx, base + j, dx_bf16, out);
    }
}

#if RMSNORM_PART == 0 || RMSNORM_PART == 2
// Rows of up to 1024 features in registers, wider ones in two passes (any width).
extern "C" __global__ void rmsnorm_backward(const bf16* __restrict__ x, const float* __restrict__ rstd, const void* dy, void* dx,
    int accumulate, int n, int c, int dy_bf16, int dx_bf16, int dy_scaled)
{
    rmsnorm_backward_rows<NORM_CHUNKS>(x, rstd, dy, dx, accumulate, n, c, dy_bf16, dx_bf16, dy_scaled);
}

// The same for rows of up to 512 features (the launcher's choice where c ≤ 512).
extern "C" __global__ void rmsnorm_backward_512(const bf16* __restrict__ x, const float* __restrict__ rstd, const void* dy, void* dx,
    int accumulate, int n, int c, int dy_bf16, int dx_bf16, int dy_scaled)
{
    rmsnorm_backward_rows<2>(x, rstd, dy, dx, accumulate, n, c, dy_bf16, dx_bf16, dy_scaled);
}

#endif

#if RMSNORM_PART == 0 || RMSNORM_PART == 1
extern "C" __global__ void residual_mix_backward(const bf16* g, const bf16* __restrict__ x, const bf16* __restrict__ x0,
    const float* __restrict__ resid_lambdas, const float* __restrict__ x0_lambdas, int layer,
    bf16* dx, bf16* __restrict__ dx0, float* __restrict__ d_resid_lambdas, float* __restrict__ d_x0_lambdas, long count)
{
    __shared__ float scratch[32];
    const float rl = resid_lambdas[layer], xl = x0_lambdas[layer];
    float sum_rl = 0.0f, sum_xl = 0.0f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x)
    {
        const float gi = __bfloat162float(g[i]);
        const float x0i = __bfloat162float(x0[i]);
        sum_rl += gi * __bfloat162float(x[i]);
        sum_xl += gi * x0i;
        float d0 = __bfloat162float(dx0[i]) + xl * gi;
        if (dx != nullptr)
            dx[i] = __float2bfloat16_rn(rl * gi); // may alias g: read above, written last
        else
            d0 += rl * gi;
        dx0[i] = __float2bfloat16_rn(d0);
    }
    sum_rl = block_sum(sum_rl, scratch);
    sum_xl = block_sum(sum_xl, scratch);
    if (threadIdx.x == 0)
    {
        atomicAdd(d_resid_lambdas + layer, sum_rl);
        atomicAdd(d_x0_lambdas + layer, sum_xl);
    }
}

#endif

#if RMSNORM_PART == 0 || RMSNORM_PART == 3
// Rows of c ≤ 32 · CHUNKS · 8 features, in registers; as with the norm's backward, each CHUNKS is its own kernel (below), so
// that rows of up to 512 features do not pay the four-chunk kernel's registers.
template <int CHUNKS, bool PREFETCH>
__device__ __forceinline__ void rmsnorm_mix_backward_rows(const bf16* __restrict__ m, const float* __restrict__ rstd, const bf16* __restrict__ dy,
    bf16* __restrict__ g, const bf16* __restrict__ x, const bf16* __restrict__ x0, const float* __restrict__ resid_lambdas,
    const float* __restrict__ x0_lambdas, int layer, bf16* __restrict__ dx0, float* __restrict__ d_resid_lambdas,
    float* __restrict__ d_x0_lambdas, int fold, int n, int c)
{
    __shared__ float scratch[32];
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const float rl = resid_lambdas[layer], xl = x0_lambdas[layer];
    float sum_rl = 0.0f, sum_xl = 0.0f;
    for (int row = blockIdx.x * warps + (threadIdx.x >> 5); row < n; row += gridDim.x * warps)
    {
        const long base = (long)row * c;
        const float r = rstd[row];
        float mv[CHUNKS][8], dv[CHUNKS][8];
        // PREFETCH: g, x, x0 and dx0 leave with the first pass's loads, as raw 16-byte words (16 registers a chunk), so the row
        // costs one round trip to memory, not two (the second pass waits on the row's dot product).
        uint4 graw[CHUNKS], xraw[CHUNKS], x0raw[CHUNKS], d0raw[CHUNKS];
        if (PREFETCH)
        {
            #pragma unroll
            for (int k = 0; k < CHUNKS; k++)
            {
                const int j = (lane + 32 * k) * 8;
                if (j < c)
                {
                    graw[k] = *reinterpret_cast<const uint4*>(g + base + j);
                    d0raw[k] = *reinterpret_cast<const uint4*>(dx0 + base + j);
                    if (m != nullptr)
                    {
                        xraw[k] = *reinterpret_cast<const uint4*>(x + base + j);
                        x0raw[k] = *reinterpret_cast<const uint4*>(x0 + base + j);
                    }
                }
            }
        }
        float dot;
        if (m != nullptr)
            dot = load_row_dot<CHUNKS>(m, dy, 1, base, c, lane, mv, dv);
        else
        {
            dot = 0.0f;
            #pragma unroll
            for (int k = 0; k < CHUNKS; k++)
            {
                const int j = (lane + 32 * k) * 8;
                if (j < c)
                {
                    float xv[8], x0v[8];
                    xraw[k] = *reinterpret_cast<const uint4*>(x + base + j);
                    x0raw[k] = *reinterpret_cast<const uint4*>(x0 + base + j);
                    unpack8(xraw[k], xv);
                    unpack8(x0raw[k], x0v);
                    load8(dy + base + j, dv[k]);
                    #pragma unroll
                    for (int i = 0; i < 8; i++)
                    {
                        mv[k][i] = residual_mix(rl, xv[i], xl, x0v[i]);
                        dot += dv[k][i] * mv[k][i];
                    }
                }
            }
            dot = warp_sum(dot);
        }
        const float mean_dot = dot * r / c; // mean of dy·m̂
        #pragma unroll
        for (int k = 0; k < CHUNKS; k++)
        {
            const int j = (lane + 32 * k) * 8;
            if (j < c)
            {
                float gv[8], xv[8], x0v[8], d0[8];
                if (PREFETCH)
                {
                    unpack8(graw[k], gv);
                    unpack8(xraw[k], xv);
                    unpack8(x0raw[k], x0v);
                    unpack8(d0raw[k], d0);
                }
                else
                {
                    load8(g + base + j, gv);
                    load8(x + base + j, xv);
                    load8(x0 + base + j, x0v);
                    load8(dx0 + base + j, d0);
                }
                #pragma unroll
                for (int i = 0; i < 8; i++)
                {
                    const float gt = gv[i] + r * (dv[k][i] - mv[k][i] * r * mean_dot);
                    sum_rl += gt * xv[i];
                    sum_xl += gt * x0v[i];
                    d0[i] += xl * gt;
                    if (fold)
                        d0[i] += rl * gt;
                    gv[i] = rl * gt;
                }
                store8(dx0 + base + j, d0);
                if (!fold)
                    store8(g + base + j, gv);
            }
        }
    }
    sum_rl = block_sum(sum_rl, scratch);
    sum_xl = block_sum(sum_xl, scratch);
    if (threadIdx.x == 0)
    {
        atomicAdd(d_resid_lambdas + layer, sum_rl);
        atomicAdd(d_x0_lambdas + layer, sum_xl);
    }
}

// Rows of up to 1024 features.
extern "C" __global__ void rmsnorm_mix_backward(const bf16* __restrict__ m, const float* __restrict__ rstd, const bf16* __restrict__ dy,
    bf16* __restrict__ g, const bf16* __restrict__ x, const bf16* __restrict__ x0, const float* __restrict__ resid_lambdas,
    const float* __restrict__ x0_lambdas, int layer, bf16* __restrict__ dx0, float* __restrict__ d_resid_lambdas,
    float* __restrict__ d_x0_lambdas, int fold, int n, int c)
{
    rmsnorm_mix_backward_rows<NORM_CHUNKS, false>(m, rstd, dy, g, x, x0, resid_lambdas, x0_lambdas, layer, dx0, d_resid_lambdas,
        d_x0_lambdas, fold, n, c);
}

// The same for rows of up to 512 features (the launcher's choice where c ≤ 512).
extern "C" __global__ void rmsnorm_mix_backward_512(const bf16* __restrict__ m, const float* __restrict__ rstd, const bf16* __restrict__ dy,
    bf16* __restrict__ g, const bf16* __restrict__ x, const bf16* __restrict__ x0, const float* __restrict__ resid_lambdas,
    const float* __restrict__ x0_lambdas, int layer, bf16* __restrict__ dx0, float* __restrict__ d_resid_lambdas,
    float* __restrict__ d_x0_lambdas, int fold, int n, int c)
{
    rmsnorm_mix_backward_rows<2, true>(m, rstd, dy, g, x, x0, resid_lambdas, x0_lambdas, layer, dx0, d_resid_lambdas,
        d_x0_lambdas, fold, n, c);
}
#endif

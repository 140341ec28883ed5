// flash_backward.cu: causal sliding-window attention backward, head dim 128, FA2 style on tensor cores (mma.sync m16n8k16).
//
// From the forward's q, k, v, o, lse and the output gradient do (all [B, T, H, 128] bf16; lse [B, H, T] fp32):
//   P = exp(q·kᵀ·scale − lse) on visible pairs (t − W ≤ s ≤ t), D_t = Σ_d do·o,
//   dV = Pᵀ·dO,  dS = P ∘ (dO·Vᵀ − D),  dK = dSᵀ·Q·scale,  dQ = dS·K·scale.
// flash_attention_backward_prepare: D [B, H, T] fp32 (written) and the fp32 dq accumulator [B, T, H, 128] zeroed.
//   Launch: one warp per (b, t, h) row, 8 warps per block.
// flash_attention_backward: one CTA per 64-key block (grid (ceil(T / 64), B·H), 128 threads, 4 warps × 16 keys); it loops over
//   the 64-query blocks that can see its keys, keeps dK and dV in registers and writes them (bf16) at the end; dQ is added to
//   the fp32 accumulator with atomics. Dynamic shared memory: K, V, Q, dO tiles (64 × 136 bf16 each), dSᵀ (64 × 72 bf16),
//   lse and D (64 fp32 each).
// flash_attention_backward_finish: dq (bf16) = the fp32 accumulator. Any 1-D grid of 256-thread blocks.
#include "flash_common.cuh"

#define DS_PITCH 72

extern "C" __global__ void flash_attention_backward_prepare(const bf16* __restrict__ o, const bf16* __restrict__ dout,
    float* __restrict__ d, float* __restrict__ dq_accum, int batch, int seq_len, int heads)
{
    const long long row = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (long long)batch * seq_len * heads)
        return;
    const int h = row % heads, t = (row / heads) % seq_len, b = row / ((long long)heads * seq_len);
    float sum = 0.0f;
    #pragma unroll
    for (int p = 0; p < 4; p++)
    {
        const long long i = row * HEAD + lane + 32 * p;
        sum += __bfloat162float(o[i]) * __bfloat162float(dout[i]);
        dq_accum[i] = 0.0f;
    }
    sum = warp_sum(sum);
    if (lane == 0)
        d[((long long)b * heads + h) * seq_len + t] = sum;
}

extern "C" __global__ void flash_attention_backward_finish(const float* __restrict__ dq_accum, bf16* __restrict__ dq, long long count)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
        dq[i] = __float2bfloat16_rn(dq_accum[i]);
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_backward(const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ d,
    float* __restrict__ dq_accum, bf16* __restrict__ dk, bf16* __restrict__ dv, int batch, int seq_len, int heads, int window)
{
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* ks = reinterpret_cast<bf16*>(smem);
    bf16* vs = ks + TILE * PITCH;
    bf16* qs = vs + TILE * PITCH;
    bf16* dos = qs + TILE * PITCH;
    bf16* dst = dos + TILE * PITCH;                              // dSᵀ [64 keys][64 queries]
    float* lse_s = reinterpret_cast<float*>(dst + TILE * DS_PITCH);
    float* d_s = lse_s + TILE;

    const int k0 = blockIdx.x * TILE;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const long long head_base = (long long)b * seq_len * heads * HEAD + (long long)h * HEAD;
    const long long row_stride = (long long)heads * HEAD;
    const float* lse_bh = lse + ((long long)b * heads + h) * seq_len;
    const float* d_bh = d + ((long long)b * heads + h) * seq_len;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = lane >> 2, tig = lane & 3;
    const float scale = rsqrtf((float)HEAD);

    load_tile(ks, k + head_base, k0, seq_len, heads);
    load_tile(vs, v + head_base, k0, seq_len, heads);
    __syncthreads();
    float dk_acc[16][4], dv_acc[16][4];
    #pragma unroll
    for (int i = 0; i < 16; i++)
    {
        dk_acc[i][0] = dk_acc[i][1] = dk_acc[i][2] = dk_acc[i][3] = 0.0f;
        dv_acc[i][0] = dv_acc[i][1] = dv_acc[i][2] = dv_acc[i][3] = 0.0f;
    }
    const int key_a = k0 + warp * 16 + group, key_b = key_a + 8;

    const int query_hi = min(seq_len - 1, k0 + TILE - 1 + window);
    for (int qb = k0 / TILE; qb <= query_hi / TILE; qb++)
    {
        const int q0 = qb * TILE;
        __syncthreads(); // the previous iteration's readers of qs, dos, dst are done
        load_tile(qs, q + head_base, q0, seq_len, heads);
        load_tile(dos, dout + head_base, q0, seq_len, heads);
        for (int i = threadIdx.x; i < TILE; i += blockDim.x)
        {
            const bool in = q0 + i < seq_len;
            lse_s[i] = in ? lse_bh[q0 + i] : 0.0f;
            d_s[i] = in ? d_bh[q0 + i] : 0.0f;
        }
        __syncthreads();

        // Sᵀ (16 keys × 64 queries) = K·Qᵀ and dPᵀ = V·dOᵀ: B[k = d][n = query] is a row of Q or dO.
        float st[8][4], dpt[8][4];
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            st[nt][0] = st[nt][1] = st[nt][2] = st[nt][3] = 0.0f;
            dpt[nt][0] = dpt[nt][1] = dpt[nt][2] = dpt[nt][3] = 0.0f;
        }
        #pragma unroll
        for (int kk = 0; kk < 8; kk++)
        {
            // This warp's 16 keys as A fragments, read from the resident K and V tiles (registers are needed for dK and dV).
            unsigned ka[4], va[4];
            {
                const int r0 = warp * 16 + group, c = kk * 16 + tig * 2;
                ka[0] = *reinterpret_cast<const unsigned*>(ks + r0 * PITCH + c);
                ka[1] = *reinterpret_cast<const unsigned*>(ks + (r0 + 8) * PITCH + c);
                ka[2] = *reinterpret_cast<const unsigned*>(ks + r0 * PITCH + c + 8);
                ka[3] = *reinterpret_cast<const unsigned*>(ks + (r0 + 8) * PITCH + c + 8);
                va[0] = *reinterpret_cast<const unsigned*>(vs + r0 * PITCH + c);
                va[1] = *reinterpret_cast<const unsigned*>(vs + (r0 + 8) * PITCH + c);
                va[2] = *reinterpret_cast<const unsigned*>(vs + r0 * PITCH + c + 8);
                va[3] = *reinterpret_cast<const unsigned*>(vs + (r0 + 8) * PITCH + c + 8);
            }
            #pragma unroll
            for (int nt = 0; nt < 8; nt++)
            {
                const bf16* qr = qs + (nt * 8 + group) * PITCH + kk * 16 + tig * 2;
                mma_bf16(st[nt], ka, *reinterpret_cast<const unsigned*>(qr), *reinterpret_cast<const unsigned*>(qr + 8));
                const bf16* dr = dos + (nt * 8 + group) * PITCH + kk * 16 + tig * 2;
                mma_bf16(dpt[nt], va, *reinterpret_cast<const unsigned*>(dr), *reinterpret_cast<const unsigned*>(dr + 8));
            }
        }

        // Pᵀ and dSᵀ in the accumulator layout: rows are keys (key_a, key_b), columns queries q0 + 8·nt + 2·tig (+1).
        const bool full = q0 >= k0 + TILE - 1 && q0 + TILE - 1 <= k0 + window && q0 + TILE <= seq_len && k0 + TILE <= seq_len;
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            #pragma unroll
            for (int e = 0; e < 4; e++)
            {
                const int key = e < 2 ? key_a : key_b;
                const int qi = nt * 8 + tig * 2 + (e & 1);
                const int query = q0 + qi;
                const bool valid = full || (query >= key && query <= key + window && query < seq_len && key < seq_len);
                const float p = valid ? __expf(st[nt][e] * scale - lse_s[qi]) : 0.0f;
                st[nt][e] = p;
                dpt[nt][e] = p * (dpt[nt][e] - d_s[qi]);
            }
        }

        // dV += Pᵀ·dO and dK += dSᵀ·Q (scaled at the end): B[k = query][n = d], two consecutive query rows per register.
        #pragma unroll
        for (int kk = 0; kk < 4; kk++)
        {
            unsigned pa[4], sa[4];
            pa[0] = pack_bf16(st[2 * kk][0], st[2 * kk][1]);
            pa[1] = pack_bf16(st[2 * kk][2], st[2 * kk][3]);
            pa[2] = pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]);
            pa[3] = pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3]);
            sa[0] = pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]);
            sa[1] = pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]);
            sa[2] = pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
            sa[3] = pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
            const bf16* d0 = dos + (kk * 16 + tig * 2) * PITCH + group;
            const bf16* q0p = qs + (kk * 16 + tig * 2) * PITCH + group;
            #pragma unroll
            for (int dt = 0; dt < 16; dt++)
            {
                const bf16* dp = d0 + dt * 8;
                mma_bf16(dv_acc[dt], pa, pack_raw(dp[0], dp[PITCH]), pack_raw(dp[8 * PITCH], dp[9 * PITCH]));
                const bf16* qp = q0p + dt * 8;
                mma_bf16(dk_acc[dt], sa, pack_raw(qp[0], qp[PITCH]), pack_raw(qp[8 * PITCH], qp[9 * PITCH]));
            }
        }

        // dSᵀ to shared memory, so each warp can take 16 queries × all 64 keys for dQ = dS·K.
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            const int c = nt * 8 + tig * 2;
            *reinterpret_cast<unsigned*>(dst + (warp * 16 + group) * DS_PITCH + c) = pack_bf16(dpt[nt][0], dpt[nt][1]);
            *reinterpret_cast<unsigned*>(dst + (warp * 16 + group + 8) * DS_PITCH + c) = pack_bf16(dpt[nt][2], dpt[nt][3]);
        }
        __syncthreads();
        {
            // A = dS[query][key] = dSᵀ[key][query]: rows are this warp's queries, columns keys (two consecutive keys per register).
            const int qa = warp * 16 + group;
            float dq_acc[16][4];
            #pragma unroll
            for (int i = 0; i < 16; i++)
                dq_acc[i][0] = dq_acc[i][1] = dq_acc[i][2] = dq_acc[i][3] = 0.0f;
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
            {
                const int key = kk * 16 + tig * 2;
                unsigned a[4];
                a[0] = pack_raw(dst[key * DS_PITCH + qa], dst[(key + 1) * DS_PITCH + qa]);
                a[1] = pack_raw(dst[key * DS_PITCH + qa + 8], dst[(key + 1) * DS_PITCH + qa + 8]);
                a[2] = pack_raw(dst[(key + 8) * DS_PITCH + qa], dst[(key + 9) * DS_PITCH + qa]);
                a[3] = pack_raw(dst[(key + 8) * DS_PITCH + qa + 8], dst[(key + 9) * DS_PITCH + qa + 8]);
                const bf16* k0p = ks + key * PITCH + group;
                #pragma unroll
                for (int dt = 0; dt < 16; dt++)
                {
                    const bf16* kp = k0p + dt * 8;
                    mma_bf16(dq_acc[dt], a, pack_raw(kp[0], kp[PITCH]), pack_raw(kp[8 * PITCH], kp[9 * PITCH]));
                }
            }
            const int query_a = q0 + qa, query_b = query_a + 8;
            #pragma unroll
            for (int dt = 0; dt < 16; dt++)
            {
                const int c = dt * 8 + tig * 2;
                if (query_a < seq_len)
                {
                    float* out = dq_accum + head_base + query_a * row_stride + c;
                    atomicAdd(out, dq_acc[dt][0] * scale);
                    atomicAdd(out + 1, dq_acc[dt][1] * scale);
                }
                if (query_b < seq_len)
                {
                    float* out = dq_accum + head_base + query_b * row_stride + c;
                    atomicAdd(out, dq_acc[dt][2] * scale);
                    atomicAdd(out + 1, dq_acc[dt][3] * scale);
                }
            }
        }
    }

    #pragma unroll
    for (int dt = 0; dt < 16; dt++)
    {
        const int c = dt * 8 + tig * 2;
        if (key_a < seq_len)
        {
            *reinterpret_cast<unsigned*>(dk + head_base + key_a * row_stride + c) = pack_bf16(dk_acc[dt][0] * scale, dk_acc[dt][1] * scale);
            *reinterpret_cast<unsigned*>(dv + head_base + key_a * row_stride + c) = pack_bf16(dv_acc[dt][0], dv_acc[dt][1]);
        }
        if (key_b < seq_len)
        {
            *reinterpret_cast<unsigned*>(dk + head_base + key_b * row_stride + c) = pack_bf16(dk_acc[dt][2] * scale, dk_acc[dt][3] * scale);
            *reinterpret_cast<unsigned*>(dv + head_base + key_b * row_stride + c) = pack_bf16(dv_acc[dt][2], dv_acc[dt][3]);
        }
    }
}

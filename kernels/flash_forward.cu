// flash_forward.cu: causal sliding-window attention forward, head dim 128, flash style on tensor cores (mma.sync m16n8k16,
// bf16 inputs, fp32 accumulation). The T×T scores are never stored; key tiles outside [q0 − W, q0 + 63] are skipped.
//
//   query t sees keys s with t − W ≤ s ≤ t; scores = q·k / sqrt(128); online softmax in fp32 per row.
// flash_attention_forward: q, k, v, o [B, T, H, 128] bf16 (o written); lse [B, H, T] fp32 (natural log of Σ exp(score)).
// Launch: grid (ceil(T / 64), B·H), 128 threads (4 warps × 16 query rows), dynamic shared memory 3·64·136·2 bytes
//         (Q, K, V tiles of 64 × 128, rows padded to 136 elements so fragment loads hit 32 distinct banks).
// The backward (flash_backward.cu) needs lse.

#include "flash_common.cuh"

extern "C" __global__ void __launch_bounds__(128) flash_attention_forward(const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, bf16* __restrict__ o, float* __restrict__ lse, int batch, int seq_len, int heads, int window)
{
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* qs = reinterpret_cast<bf16*>(smem);
    bf16* ks = qs + TILE * PITCH;
    bf16* vs = ks + TILE * PITCH;

    const int q0 = blockIdx.x * TILE;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const long long head_base = (long long)b * seq_len * heads * HEAD + (long long)h * HEAD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = lane >> 2, tig = lane & 3;
    const float scale = rsqrtf((float)HEAD);

    load_tile(qs, q + head_base, q0, seq_len, heads);
    __syncthreads();
    unsigned qa[8][4];
    {
        const bf16* r0 = qs + (warp * 16 + group) * PITCH;
        const bf16* r1 = r0 + 8 * PITCH;
        #pragma unroll
        for (int kk = 0; kk < 8; kk++)
        {
            const int c = kk * 16 + tig * 2;
            qa[kk][0] = *reinterpret_cast<const unsigned*>(r0 + c);
            qa[kk][1] = *reinterpret_cast<const unsigned*>(r1 + c);
            qa[kk][2] = *reinterpret_cast<const unsigned*>(r0 + c + 8);
            qa[kk][3] = *reinterpret_cast<const unsigned*>(r1 + c + 8);
        }
    }

    float acc[16][4];
    #pragma unroll
    for (int i = 0; i < 16; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    float m_row[2] = {NEG_INF, NEG_INF}, l_row[2] = {0.0f, 0.0f};
    const int row_a = q0 + warp * 16 + group, row_b = row_a + 8;

    const int key_lo = max(0, q0 - window), key_hi = min(seq_len - 1, q0 + TILE - 1);
    for (int tile = key_lo / TILE; tile <= key_hi / TILE; tile++)
    {
        const int k0 = tile * TILE;
        __syncthreads();
        load_tile(ks, k + head_base, k0, seq_len, heads);
        load_tile(vs, v + head_base, k0, seq_len, heads);
        __syncthreads();

        float s[8][4];
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        #pragma unroll
        for (int kk = 0; kk < 8; kk++)
        {
            #pragma unroll
            for (int nt = 0; nt < 8; nt++)
            {
                const bf16* kr = ks + (nt * 8 + group) * PITCH + kk * 16 + tig * 2;
                mma_bf16(s[nt], qa[kk], *reinterpret_cast<const unsigned*>(kr), *reinterpret_cast<const unsigned*>(kr + 8));
            }
        }

        // Mask (only tiles that touch the diagonal or the window's far edge need it), scale, and the running row maxima.
        const bool full = k0 + TILE - 1 <= q0 && k0 >= q0 + TILE - 1 - window && k0 + TILE <= seq_len;
        float tile_max[2] = {NEG_INF, NEG_INF};
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            #pragma unroll
            for (int e = 0; e < 4; e++)
            {
                const int row = e < 2 ? row_a : row_b;
                const int key = k0 + nt * 8 + tig * 2 + (e & 1);
                const bool valid = full || (key <= row && key >= row - window && key < seq_len);
                s[nt][e] = valid ? s[nt][e] * scale : NEG_INF;
                tile_max[e >> 1] = fmaxf(tile_max[e >> 1], s[nt][e]);
            }
        }
        float correction[2], m_use[2];
        #pragma unroll
        for (int r = 0; r < 2; r++)
        {
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
            const float m_new = fmaxf(m_row[r], tile_max[r]);
            m_use[r] = m_new == NEG_INF ? 0.0f : m_new; // a row with nothing visible yet keeps zeros, not NaNs
            correction[r] = __expf(m_row[r] - m_use[r]);
            m_row[r] = m_new;
            l_row[r] *= correction[r];
        }
        #pragma unroll
        for (int dt = 0; dt < 16; dt++)
        {
            acc[dt][0] *= correction[0];
            acc[dt][1] *= correction[0];
            acc[dt][2] *= correction[1];
            acc[dt][3] *= correction[1];
        }
        unsigned pa[4][4];
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            #pragma unroll
            for (int e = 0; e < 4; e++)
            {
                s[nt][e] = __expf(s[nt][e] - m_use[e >> 1]);
                l_row[e >> 1] += s[nt][e];
            }
        }
        #pragma unroll
        for (int kk = 0; kk < 4; kk++)
        {
            pa[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            pa[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            pa[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        }
        #pragma unroll
        for (int kk = 0; kk < 4; kk++)
        {
            const bf16* v0 = vs + (kk * 16 + tig * 2) * PITCH + group;
            #pragma unroll
            for (int dt = 0; dt < 16; dt++)
            {
                const bf16* vp = v0 + dt * 8;
                const unsigned b0 = pack_raw(vp[0], vp[PITCH]);
                const unsigned b1 = pack_raw(vp[8 * PITCH], vp[9 * PITCH]);
                mma_bf16(acc[dt], pa[kk], b0, b1);
            }
        }
    }

    #pragma unroll
    for (int r = 0; r < 2; r++)
    {
        l_row[r] += __shfl_xor_sync(0xffffffffu, l_row[r], 1);
        l_row[r] += __shfl_xor_sync(0xffffffffu, l_row[r], 2);
    }
    const float inv_a = 1.0f / l_row[0], inv_b = 1.0f / l_row[1];
    #pragma unroll
    for (int dt = 0; dt < 16; dt++)
    {
        const int c = dt * 8 + tig * 2;
        if (row_a < seq_len)
            *reinterpret_cast<unsigned*>(o + head_base + (long long)row_a * heads * HEAD + c) = pack_bf16(acc[dt][0] * inv_a, acc[dt][1] * inv_a);
        if (row_b < seq_len)
            *reinterpret_cast<unsigned*>(o + head_base + (long long)row_b * heads * HEAD + c) = pack_bf16(acc[dt][2] * inv_b, acc[dt][3] * inv_b);
    }
    if (tig == 0)
    {
        float* l = lse + ((long long)b * heads + h) * seq_len;
        if (row_a < seq_len)
            l[row_a] = m_row[0] + __logf(l_row[0]);
        if (row_b < seq_len)
            l[row_b] = m_row[1] + __logf(l_row[1]);
    }
}

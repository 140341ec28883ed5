// flash_forward.cu: causal sliding-window attention forward, head dim 128, flash style on tensor cores (mma.sync m16n8k16,
// bf16 inputs, fp32 accumulation). The T×T scores are never stored; key tiles outside [q0 − W, q0 + 63] are skipped.
//
//   query t sees keys s with t − W ≤ s ≤ t; scores = q·k / sqrt(128); online softmax in fp32 per row (base 2 inside).
// flash_attention_forward: q, k, v, o [B, T, H, 128] bf16 (o written); lse [B, H, T] fp32 (natural log of Σ exp(score)).
// Launch: grid (ceil(T / 64), B·H), 128 threads (4 warps × 16 query rows), dynamic shared memory 4 · 64 · 128 · 2 bytes:
//         two stages of (K tile, V tile), swizzled (flash_common.cuh). The Q tile is first loaded into stage 1's K slot and
//         moved to registers; then the next stage's K and V are copied asynchronously while the current one is used.
// The backward (flash_backward.cu) needs lse.

#include "flash_common.cuh"

extern "C" __global__ void __launch_bounds__(128, 3) flash_attention_forward(const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, bf16* __restrict__ o, float* __restrict__ lse, int batch, int seq_len, int heads, int window)
{
    extern __shared__ __align__(128) unsigned char smem[];
    bf16* stages = reinterpret_cast<bf16*>(smem); // stage s: K at 2s·64·128, V at (2s + 1)·64·128

    const int q0 = blockIdx.x * TILE;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const long long row_stride = (long long)heads * HEAD;
    const long long head_base = (long long)b * seq_len * row_stride + (long long)h * HEAD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = lane >> 2, tig = lane & 3;
    const float scale = rsqrtf((float)HEAD) * LOG2E;

    const int key_lo = max(0, q0 - window), key_hi = min(seq_len - 1, q0 + TILE - 1);
    const int first = key_lo / TILE, last = key_hi / TILE;

    bf16* qs = stages + 2 * TILE * HEAD;
    load_tile_async(qs, q + head_base, q0, seq_len, row_stride);
    load_tile_async(stages, k + head_base, first * TILE, seq_len, row_stride);
    load_tile_async(stages + TILE * HEAD, v + head_base, first * TILE, seq_len, row_stride);
    copy_async_commit();
    copy_async_wait<0>();
    __syncthreads();
    unsigned qa[8][4];
    #pragma unroll
    for (int kk = 0; kk < 8; kk++)
        load_a(qa[kk], qs, HEAD, warp * 16, kk * 16, lane);
    __syncthreads(); // Q is in registers everywhere before stage 1 is refilled

    float acc[16][4];
    #pragma unroll
    for (int i = 0; i < 16; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    float m_row[2] = {NEG_INF, NEG_INF}, l_row[2] = {0.0f, 0.0f};
    const int row_a = q0 + warp * 16 + group, row_b = row_a + 8;

    for (int tile = first; tile <= last; tile++)
    {
        const int stage = (tile - first) & 1;
        if (tile < last)
        {
            bf16* next = stages + 2 * (stage ^ 1) * TILE * HEAD;
            load_tile_async(next, k + head_base, (tile + 1) * TILE, seq_len, row_stride);
            load_tile_async(next + TILE * HEAD, v + head_base, (tile + 1) * TILE, seq_len, row_stride);
            copy_async_commit();
            copy_async_wait<1>();
        }
        else
        {
            copy_async_wait<0>();
        }
        __syncthreads();
        const bf16* ks = stages + 2 * stage * TILE * HEAD;
        const bf16* vs = ks + TILE * HEAD;
        const int k0 = tile * TILE;

        float s[8][4];
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        #pragma unroll
        for (int kk = 0; kk < 8; kk++)
        {
            #pragma unroll
            for (int np = 0; np < 4; np++)
            {
                unsigned bk[4];
                load_b_nk(bk, ks, HEAD, np * 16, kk * 16, lane);
                mma_pair(s[2 * np], s[2 * np + 1], qa[kk], bk);
            }
        }

        // Mask (only tiles that touch the diagonal or the window's far edge need it), scale to base 2, running row maxima.
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
            correction[r] = exp2f(m_row[r] - m_use[r]);
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
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            #pragma unroll
            for (int e = 0; e < 4; e++)
            {
                s[nt][e] = exp2f(s[nt][e] - m_use[e >> 1]);
                l_row[e >> 1] += s[nt][e];
            }
        }
        #pragma unroll
        for (int kk = 0; kk < 4; kk++)
        {
            unsigned pa[4];
            accumulator_to_a(pa, s, kk);
            #pragma unroll
            for (int dp = 0; dp < 8; dp++)
            {
                unsigned bv[4];
                load_b_kn(bv, vs, HEAD, dp * 16, kk * 16, lane);
                mma_pair(acc[2 * dp], acc[2 * dp + 1], pa, bv);
            }
        }
        __syncthreads(); // this stage is read by everyone before the next iteration refills it
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
            *reinterpret_cast<unsigned*>(o + head_base + (long long)row_a * row_stride + c) = pack_bf16(acc[dt][0] * inv_a, acc[dt][1] * inv_a);
        if (row_b < seq_len)
            *reinterpret_cast<unsigned*>(o + head_base + (long long)row_b * row_stride + c) = pack_bf16(acc[dt][2] * inv_b, acc[dt][3] * inv_b);
    }
    if (tig == 0)
    {
        float* l = lse + ((long long)b * heads + h) * seq_len;
        if (row_a < seq_len)
            l[row_a] = (m_row[0] + log2f(l_row[0])) * LN2;
        if (row_b < seq_len)
            l[row_b] = (m_row[1] + log2f(l_row[1])) * LN2;
    }
}

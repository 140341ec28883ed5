// flash_forward.cu: causal sliding-window attention forward, head dim 128, flash style on Hopper's warpgroup tensor-core
// instructions (wgmma m64n128k16, bf16 inputs, fp32 accumulation; wgmma.cuh). The T×T scores are never stored; key tiles
// outside [q0 − W, q0 + 127] are skipped.
//
//   query t sees keys s with t − W ≤ s ≤ t; scores = q·k / sqrt(128); online softmax in fp32 per row (base 2 inside).
// flash_attention_forward: q, k, v, o [B, T, H, 128] bf16 (o written); lse [B, H, T] fp32 (natural log of Σ exp(score)).
// Launch: grid (ceil(T / 128), B·H), 256 threads = two warpgroups × 64 query rows; dynamic shared memory FORWARD_SMEM bytes:
//         the Q tile (128 × 128) and two stages each of K and V tiles of 128 keys, sw128 layout, copied with cp.async; V
//         lags K by one tile (iteration j copies K_{j+1} and V_j), so iteration j holds K_j and V_{j−1}.
// The two warpgroups are staggered so that one's softmax runs while the other's products occupy the tensor cores:
//   warpgroup 0, iteration j: issue S_j = Q·K_jᵀ and P_{j−1}·V_{j−1}; softmax of S_j once S_j is done; rescale.
//   warpgroup 1, iteration j: softmax of S_{j−1} (computed in iteration j − 1); rescale; issue P_{j−1}·V_{j−1} and S_j.
// The backward (flash_backward.cu) needs lse.

#include "wgmma.cuh"

#define FWD_ROWS 128
#define FWD_TILE_BYTES (FWD_ROWS * HEAD * 2)
#define FORWARD_SMEM (5 * FWD_TILE_BYTES + 1024)

// Online softmax of one 64 × 128 score tile (keys k0 ..) in place: masks invisible pairs, updates the running maxima m_row
// (base-2 units) and sums l_row of this thread's rows row_a, row_b, turns s into P = 2^(score·scale − m), and returns the
// factor each row's accumulated output must be multiplied by.
__device__ __forceinline__ void softmax_tile(float s[16][4], float m_row[2], float l_row[2], float correction[2], int k0, int r0,
    int row_a, int row_b, int tig, int window, int seq_len, float scale)
{
    // Only tiles that touch the diagonal or the window's far edge need the mask.
    const bool full = k0 + FWD_ROWS - 1 <= r0 && k0 >= r0 + 63 - window && k0 + FWD_ROWS <= seq_len;
    if (!full)
    {
        #pragma unroll
        for (int nt = 0; nt < 16; nt++)
        {
            #pragma unroll
            for (int e = 0; e < 4; e++)
            {
                const int row = e < 2 ? row_a : row_b;
                const int key = k0 + nt * 8 + tig * 2 + (e & 1);
                if (key > row || key < row - window || key >= seq_len)
                    s[nt][e] = NEG_INF;
            }
        }
    }
    float tile_max[2] = {NEG_INF, NEG_INF};
    #pragma unroll
    for (int nt = 0; nt < 16; nt++)
    {
        tile_max[0] = fmaxf(tile_max[0], fmaxf(s[nt][0], s[nt][1]));
        tile_max[1] = fmaxf(tile_max[1], fmaxf(s[nt][2], s[nt][3]));
    }
    float m_use[2];
    #pragma unroll
    for (int r = 0; r < 2; r++)
    {
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
        const float m_new = fmaxf(m_row[r], tile_max[r] * scale);
        m_use[r] = m_new == NEG_INF ? 0.0f : m_new; // a row with nothing visible yet keeps zeros, not NaNs
        correction[r] = fast_exp2(m_row[r] - m_use[r]);
        m_row[r] = m_new;
        l_row[r] *= correction[r];
    }
    #pragma unroll
    for (int nt = 0; nt < 16; nt++)
    {
        #pragma unroll
        for (int e = 0; e < 4; e++)
        {
            s[nt][e] = fast_exp2(fmaf(s[nt][e], scale, -m_use[e >> 1]));
            l_row[e >> 1] += s[nt][e];
        }
    }
}

__device__ __forceinline__ void rescale(float acc[16][4], const float correction[2])
{
    if (__any_sync(0xffffffffu, correction[0] != 1.0f || correction[1] != 1.0f)) // no row maximum moved: nothing to do
    {
        #pragma unroll
        for (int dt = 0; dt < 16; dt++)
        {
            acc[dt][0] *= correction[0];
            acc[dt][1] *= correction[0];
            acc[dt][2] *= correction[1];
            acc[dt][3] *= correction[1];
        }
    }
}

// S = this warpgroup's Q rows · Kᵀ (q_address: the warpgroup's first row in Q's 128-row slabs).
__device__ __forceinline__ void issue_scores(float s[16][4], unsigned q_address, unsigned k_address)
{
    #pragma unroll
    for (int kk = 0; kk < 8; kk++)
    {
        const unsigned long long desc_q = wgmma_descriptor(q_address + (kk >> 2) * FWD_ROWS * 128 + (kk & 3) * 32, 16, 1024);
        wgmma_ss_n128<0, 0>(s, desc_q, kmajor_descriptor(k_address, FWD_ROWS, kk), kk > 0);
    }
}

// acc += P·V, P as bf16 A fragments.
__device__ __forceinline__ void issue_pv(float acc[16][4], const unsigned pa[8][4], unsigned v_address)
{
    #pragma unroll
    for (int kk = 0; kk < 8; kk++)
        wgmma_rs_n128<1>(acc, pa[kk], mnmajor_descriptor(v_address, FWD_ROWS, kk, 0), 1);
}

extern "C" __global__ void __launch_bounds__(256, 1) flash_attention_forward(const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, bf16* __restrict__ o, float* __restrict__ lse, int batch, int seq_len, int heads, int window)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    // Tiles must start at 1024-byte boundaries of the shared window for the hardware swizzle.
    const unsigned raw_address = shared_address(smem_raw);
    unsigned char* smem = smem_raw + (((raw_address + 1023) & ~1023u) - raw_address);
    bf16* qs = reinterpret_cast<bf16*>(smem);
    bf16* k_stages = qs + FWD_ROWS * HEAD;              // K stage s at s tiles
    bf16* v_stages = k_stages + 2 * FWD_ROWS * HEAD;   // V stage s at s tiles

    const int q0 = blockIdx.x * FWD_ROWS;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const long long row_stride = (long long)heads * HEAD;
    const long long head_base = (long long)b * seq_len * row_stride + (long long)h * HEAD;
    const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, group = lane >> 2, tig = lane & 3;
    const float scale = rsqrtf((float)HEAD) * LOG2E;

    const int key_lo = max(0, q0 - window), key_hi = min(seq_len - 1, q0 + FWD_ROWS - 1);
    const int first = key_lo / FWD_ROWS, last = key_hi / FWD_ROWS;

    load_sw128_async<FWD_ROWS, 256>(qs, q + head_base, q0, seq_len, row_stride);
    load_sw128_async<FWD_ROWS, 256>(k_stages, k + head_base, first * FWD_ROWS, seq_len, row_stride);
    copy_async_commit();

    float acc[16][4], s[16][4];
    #pragma unroll
    for (int i = 0; i < 16; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    float m_row[2] = {NEG_INF, NEG_INF}, l_row[2] = {0.0f, 0.0f}, correction[2];
    const int r0 = q0 + wg * 64;
    const int row_a = r0 + warp * 16 + group, row_b = row_a + 8;
    const unsigned q_address = shared_address(qs) + wg * 64 * 128;
    unsigned pa[8][4]; // P of the previous tile, bf16 A fragments

    for (int tile = first; tile <= last; tile++)
    {
        const int stage = (tile - first) & 1;
        copy_async_wait<0>();
        fence_async_shared();
        __syncthreads(); // K_j and V_{j−1} have landed for everyone, and everyone is done with K_{j−1} and V_{j−2}
        if (tile < last)
            load_sw128_async<FWD_ROWS, 256>(k_stages + (stage ^ 1) * FWD_ROWS * HEAD, k + head_base, (tile + 1) * FWD_ROWS, seq_len, row_stride);
        load_sw128_async<FWD_ROWS, 256>(v_stages + stage * FWD_ROWS * HEAD, v + head_base, tile * FWD_ROWS, seq_len, row_stride);
        copy_async_commit();
        const unsigned k_address = shared_address(k_stages + stage * FWD_ROWS * HEAD);
        const unsigned v_previous = shared_address(v_stages + (stage ^ 1) * FWD_ROWS * HEAD);
        const int k0 = tile * FWD_ROWS;

        if (wg == 0)
        {
            wgmma_fence_operands_n128(acc);
            wgmma_fence();
            issue_scores(s, q_address, k_address);
            wgmma_commit();
            if (tile > first)
                issue_pv(acc, pa, v_previous);
            wgmma_commit();
            wgmma_wait<1>(); // S_j is done; P_{j−1}·V_{j−1} may still run
            wgmma_fence_operands_n128(s);
            softmax_tile(s, m_row, l_row, correction, k0, r0, row_a, row_b, tig, window, seq_len, scale);
            wgmma_wait<0>();
            wgmma_fence_operands_n128(acc);
            #pragma unroll
            for (int kk = 0; kk < 8; kk++)
                accumulator_fragment<16>(pa[kk], s, kk);
            rescale(acc, correction);
        }
        else
        {
            if (tile > first)
            {
                softmax_tile(s, m_row, l_row, correction, k0 - FWD_ROWS, r0, row_a, row_b, tig, window, seq_len, scale);
                #pragma unroll
                for (int kk = 0; kk < 8; kk++)
                    accumulator_fragment<16>(pa[kk], s, kk);
                rescale(acc, correction);
            }
            wgmma_fence_operands_n128(acc);
            wgmma_fence();
            if (tile > first)
                issue_pv(acc, pa, v_previous);
            issue_scores(s, q_address, k_address);
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_fence_operands_n128(s);
            wgmma_fence_operands_n128(acc);
        }
    }
    // The last tile: warpgroup 1's softmax, then both warpgroups' P·V (its V landed with the last iteration's copies).
    copy_async_wait<0>();
    fence_async_shared();
    __syncthreads();
    {
        if (wg == 1)
        {
            softmax_tile(s, m_row, l_row, correction, last * FWD_ROWS, r0, row_a, row_b, tig, window, seq_len, scale);
            #pragma unroll
            for (int kk = 0; kk < 8; kk++)
                accumulator_fragment<16>(pa[kk], s, kk);
            rescale(acc, correction);
        }
        const unsigned v_last = shared_address(v_stages + ((last - first) & 1) * FWD_ROWS * HEAD);
        wgmma_fence_operands_n128(acc);
        wgmma_fence();
        issue_pv(acc, pa, v_last);
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_fence_operands_n128(acc);
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

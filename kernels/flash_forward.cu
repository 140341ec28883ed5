// flash_forward.cu: causal sliding-window attention forward, head size D = HEAD_DIM (64 or 128, a compile-time constant:
// flash_common.cuh), with grouped-query attention, flash style on Hopper's warpgroup tensor-core instructions (wgmma
// m64n128k16 for the scores, m64nDk16 for P·V, bf16 inputs, fp32 accumulation; wgmma.cuh). The T×T scores are never
// stored; key tiles outside [q0 − W, q0 + 127] are skipped.
//
//   query t sees keys s with t − W ≤ s ≤ t; scores = q·k / sqrt(D); online softmax in fp32 per row (base 2 inside).
// flash_attention_forward: q, o [B, T, H, D] bf16 (o written); k, v [B, T, KV, D] bf16, query head h reading kv head
//   h / (H / KV); lse [B, H, T] fp32 (natural log of Σ exp(score)).
//   q, k and v arrive through rank-3 tensor maps [B, T, H·D] and [B, T, KV·D] (tma.cuh; boxes of 64 columns × 128 rows,
//   rows past T zero).
// Launch: a persistent grid of at most one CTA per SM (the launcher's choice; any size works), 384 threads. The work items are
//   the (128-query block, b, h) triples, numbered (b, h) major; within a head the blocks run from the last (the longest
//   rows) to the first, rotated by the head's index so that a CTA taking items c, c + gridDim.x, ... steps through the
//   positions over its items (with gridDim.x a multiple of 4 and 16 blocks a head, an unrotated order would give CTA c only 4
//   of the 16 positions and some CTAs a fifth more keys than others). It balances long runs (the baseline: ~62 items a CTA);
//   with a few items a CTA (B·H 64 at T 2048: ~8) no order of this kind can give every CTA every length. Consecutive items share a head, so the CTAs running at once
//   share its K and V in L2. Dynamic shared memory flash_forward_shared_bytes (forward_layout, read by the launcher from
//   the module): two Q tiles (128 × D: the producer loads the next item's while the current one runs), FWD_STAGES stages
//   each of K and V tiles of 128 keys (sw128 layout), and the mbarriers.
// Roles (setmaxnreg): warps 0–3 and 4–7 are two math warpgroups of 64 query rows (240 registers); thread 256 is the producer
//   (24 registers). Three rings (pipeline.cuh), each full[s] counting the TMA's bytes and empty[s] one arrival a math warp:
//   Q (FWD_Q_SLOTS slots, use n = the CTA's n-th item, released once the item's last S is done) and K and V (FWD_STAGES
//   stages, use c = the CTA's c-th key tile over all its items, released once the products reading it are done). So the
//   next item's loads run under the current item's last products and its output stores.
// Per key tile j a math warpgroup issues S_j = Q·K_jᵀ and P_{j−1}·V_{j−1}, runs the online softmax of S_j while the latter
//   is still running, then rescales. The two warpgroups take turns to issue their products (named barriers 2 and 3), so
//   one's softmax runs under the other's products. Between a CTA's items the next item's S_0 is issued with the last
//   P·V of the one before (a step like any other, its softmax starting afresh and the finished item's output written once
//   its P·V is done), so an item costs no tile with one product alone; only the CTA's first S_0 and last P·V stand alone.
//   No product sits under a branch: ptxas serialises every wgmma of a kernel that has one in a divergent path (C7520), so
//   the CTA's first S_0 and last P·V are peeled.
// The backward (flash_backward.cu) needs lse.

#include "pipeline.cuh"

#define FWD_ROWS 128
#define FWD_THREADS 384
// Overridable for timing. Three K/V stages with one Q slot (224 KB at D 128) made the forward 5.8 % slower on an H100 than two
// and two (bench/results/H100-profile.md); with one slot the next item's Q can load only after the item's last S.
#ifndef FWD_STAGES
#define FWD_STAGES 2
#endif
#ifndef FWD_Q_SLOTS
#define FWD_Q_SLOTS 2
#endif
#define FWD_TILE_BYTES (FWD_ROWS * HEAD * 2)
#define FWD_OUT_TILES (HEAD / 8) // 8-column tiles of a warpgroup's output accumulator

// Shared layout (pipeline.cuh): FWD_Q_SLOTS Q tiles, FWD_STAGES K tiles, FWD_STAGES V tiles (sw128), then the mbarriers
// q_full[slot], q_empty[slot], k_full[s], k_empty[s], v_full[s], v_empty[s].
namespace forward_layout
{
constexpr SharedRegion q() { return first_region(FWD_Q_SLOTS * FWD_TILE_BYTES); }
constexpr SharedRegion k() { return place_after(q(), FWD_STAGES * FWD_TILE_BYTES); }
constexpr SharedRegion v() { return place_after(k(), FWD_STAGES * FWD_TILE_BYTES); }
constexpr SharedRegion barriers() { return place_after(v(), (2 * FWD_Q_SLOTS + 4 * FWD_STAGES) * 8, 8); }
} // namespace forward_layout
static_assert(shared_window_bytes(forward_layout::barriers()) <= HOPPER_MAX_SHARED_BYTES, "the forward's tiles exceed Hopper's shared memory");

// The launcher sets and passes this much dynamic shared memory.
extern "C" __constant__ int flash_forward_shared_bytes = shared_window_bytes(forward_layout::barriers());
// Tells the launcher to size a persistent grid (an older kernel file, without this, takes one CTA per query block and head).
extern "C" __constant__ int flash_forward_persistent = 1;

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

__device__ __forceinline__ void rescale(float acc[FWD_OUT_TILES][4], const float correction[2])
{
    if (__any_sync(0xffffffffu, correction[0] != 1.0f || correction[1] != 1.0f)) // no row maximum moved: nothing to do
    {
        #pragma unroll
        for (int dt = 0; dt < FWD_OUT_TILES; dt++)
        {
            acc[dt][0] *= correction[0];
            acc[dt][1] *= correction[0];
            acc[dt][2] *= correction[1];
            acc[dt][3] *= correction[1];
        }
    }
}

// S = this warpgroup's Q rows · Kᵀ (q_address: the warpgroup's first row in Q's 128-row slabs), D / 16 k-steps.
__device__ __forceinline__ void issue_scores(float s[16][4], unsigned q_address, unsigned k_address)
{
    #pragma unroll
    for (int kk = 0; kk < HEAD / 16; kk++)
    {
        wgmma_ss_n128<0, 0>(s, kmajor_descriptor(q_address, FWD_ROWS, kk), kmajor_descriptor(k_address, FWD_ROWS, kk), kk > 0);
    }
}

// acc (64 × D) += P·V over the tile's 128 keys, P as bf16 A fragments.
__device__ __forceinline__ void issue_pv(float (&acc)[FWD_OUT_TILES][4], const unsigned pa[8][4], unsigned v_address)
{
    #pragma unroll
    for (int kk = 0; kk < 8; kk++)
        wgmma_rs<1>(acc, pa[kk], mnmajor_descriptor(v_address, FWD_ROWS, kk, 0), 1);
}

// Work item `item` of the persistent grid: its first query row q0 and its (b, h); see the launch notes above.
__device__ __forceinline__ void forward_item(int item, int q_blocks, int heads, int& q0, int& b, int& h)
{
    const int bh = item / q_blocks;
    q0 = (q_blocks - 1 - (item % q_blocks + bh) % q_blocks) * FWD_ROWS;
    b = bh / heads;
    h = bh % heads;
}

// The key tiles query block q0 reads: `tiles` of them from tile `first`.
__device__ __forceinline__ void key_tiles(int q0, int window, int seq_len, int& first, int& tiles)
{
    const int key_lo = max(0, q0 - window), key_hi = min(seq_len - 1, q0 + FWD_ROWS - 1);
    first = key_lo / FWD_ROWS;
    tiles = key_hi / FWD_ROWS - first + 1;
}

// A work item as a math thread sees it: its query block, (b, h), key tiles, and this thread's two rows.
struct ForwardItem
{
    int q0, b, h, first, tiles, r0, row_a, row_b;
};

__device__ __forceinline__ ForwardItem forward_item_rows(int item, int q_blocks, int heads, int window, int seq_len, int wg, int warp,
    int group)
{
    ForwardItem f;
    forward_item(item, q_blocks, heads, f.q0, f.b, f.h);
    key_tiles(f.q0, window, seq_len, f.first, f.tiles);
    f.r0 = f.q0 + wg * 64;
    f.row_a = f.r0 + warp * 16 + group;
    f.row_b = f.row_a + 8;
    return f;
}

// An item's output rows o = acc / l and lse = (m + log2 l)·ln 2, from the row sums' quad totals.
__device__ __forceinline__ void store_output(const float (&acc)[FWD_OUT_TILES][4], const float m_row[2], const float l_part[2],
    bf16* __restrict__ o, float* __restrict__ lse, const ForwardItem& f, int heads, int seq_len, int tig)
{
    float l_row[2];
    #pragma unroll
    for (int r = 0; r < 2; r++)
    {
        l_row[r] = l_part[r];
        l_row[r] += __shfl_xor_sync(0xffffffffu, l_row[r], 1);
        l_row[r] += __shfl_xor_sync(0xffffffffu, l_row[r], 2);
    }
    const long long row_stride = (long long)heads * HEAD;
    const long long head_base = (long long)f.b * seq_len * row_stride + (long long)f.h * HEAD;
    const float inv_a = 1.0f / l_row[0], inv_b = 1.0f / l_row[1];
    #pragma unroll
    for (int dt = 0; dt < FWD_OUT_TILES; dt++)
    {
        const int col = dt * 8 + tig * 2;
        if (f.row_a < seq_len)
            *reinterpret_cast<unsigned*>(o + head_base + (long long)f.row_a * row_stride + col) = pack_bf16(acc[dt][0] * inv_a, acc[dt][1] * inv_a);
        if (f.row_b < seq_len)
            *reinterpret_cast<unsigned*>(o + head_base + (long long)f.row_b * row_stride + col) = pack_bf16(acc[dt][2] * inv_b, acc[dt][3] * inv_b);
    }
    if (tig == 0)
    {
        float* l = lse + ((long long)f.b * heads + f.h) * seq_len;
        if (f.row_a < seq_len)
            l[f.row_a] = (m_row[0] + log2f(l_row[0])) * LN2;
        if (f.row_b < seq_len)
            l[f.row_b] = (m_row[1] + log2f(l_row[1])) * LN2;
    }
}

extern "C" __global__ void __launch_bounds__(FWD_THREADS, 1) flash_attention_forward(const __grid_constant__ TensorMap map_q,
    const __grid_constant__ TensorMap map_k, const __grid_constant__ TensorMap map_v, bf16* __restrict__ o, float* __restrict__ lse,
    int batch, int seq_len, int heads, int kv_heads, int window)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const unsigned base = aligned_shared_base(smem_raw);
    const unsigned q_tiles = base + forward_layout::q().offset, k_tiles = base + forward_layout::k().offset,
                   v_tiles = base + forward_layout::v().offset;
    const unsigned bars = base + forward_layout::barriers().offset;
    const Pipeline<FWD_Q_SLOTS> q_ring{bars, bars + 8 * FWD_Q_SLOTS};
    const Pipeline<FWD_STAGES> k_ring{bars + 16 * FWD_Q_SLOTS, bars + 16 * FWD_Q_SLOTS + 8 * FWD_STAGES},
                               v_ring{bars + 16 * FWD_Q_SLOTS + 16 * FWD_STAGES, bars + 16 * FWD_Q_SLOTS + 24 * FWD_STAGES};

    const int q_blocks = (seq_len + FWD_ROWS - 1) / FWD_ROWS, items = q_blocks * batch * heads;
    const int warp_index = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0)
    {
        q_ring.init(1, 8);
        k_ring.init(1, 8);
        v_ring.init(1, 8);
        mbarrier_init_fence();
    }
    __syncthreads();

    if (warp_index >= 8)
    {
        // Producer (one thread): per item, Q into its slot once free, then K_j and V_j of each key tile into their stages.
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
        if (threadIdx.x == 256)
        {
            PipelineState<FWD_Q_SLOTS> q_use{0, 0};
            PipelineState<FWD_STAGES> kv_use{0, 0};
            for (int item = blockIdx.x; item < items; item += gridDim.x)
            {
                int q0, b, h, first, tiles;
                forward_item(item, q_blocks, heads, q0, b, h);
                key_tiles(q0, window, seq_len, first, tiles);
                const int kvh = h / (heads / kv_heads);
                q_ring.acquire(q_use);
                q_ring.expect_bytes(q_use.stage, FWD_TILE_BYTES);
                for (int slab = 0; slab < HEAD_SLABS; slab++)
                    tma_load_3d(q_tiles + q_use.stage * FWD_TILE_BYTES + slab * FWD_ROWS * 128, &map_q, h * HEAD + 64 * slab, q0, b, q_ring.full_at(q_use.stage));
                q_use.advance();
                for (int j = 0; j < tiles; j++)
                {
                    const int k0 = (first + j) * FWD_ROWS;
                    k_ring.acquire(kv_use);
                    k_ring.expect_bytes(kv_use.stage, FWD_TILE_BYTES);
                    for (int slab = 0; slab < HEAD_SLABS; slab++)
                        tma_load_3d(k_tiles + kv_use.stage * FWD_TILE_BYTES + slab * FWD_ROWS * 128, &map_k, kvh * HEAD + 64 * slab, k0, b, k_ring.full_at(kv_use.stage));
                    v_ring.acquire(kv_use);
                    v_ring.expect_bytes(kv_use.stage, FWD_TILE_BYTES);
                    for (int slab = 0; slab < HEAD_SLABS; slab++)
                        tma_load_3d(v_tiles + kv_use.stage * FWD_TILE_BYTES + slab * FWD_ROWS * 128, &map_v, kvh * HEAD + 64 * slab, k0, b, v_ring.full_at(kv_use.stage));
                    kv_use.advance();
                }
            }
        }
        return;
    }

    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
    const int wg = warp_index >> 2, warp = warp_index & 3, group = lane >> 2, tig = lane & 3;
    const float scale = rsqrtf((float)HEAD) * LOG2E;
    float acc[FWD_OUT_TILES][4], s[16][4];
    unsigned pa[8][4]; // P of the previous tile, bf16 A fragments
    PipelineState<FWD_Q_SLOTS> q_use{0, 0};
    PipelineState<FWD_STAGES> kv_use{0, 0}; // the current key tile's stage and phase, over all of this CTA's items
    int item = blockIdx.x;
    if (item >= items)
        return;
    ForwardItem cur = forward_item_rows(item, q_blocks, heads, window, seq_len, wg, warp, group);
    #pragma unroll
    for (int i = 0; i < FWD_OUT_TILES; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    float m_row[2] = {NEG_INF, NEG_INF}, l_row[2] = {0.0f, 0.0f}, correction[2];
    // The warpgroups take turns to issue their products (named barriers 2 and 3), so one's softmax runs under the other's
    // products. Warpgroup 0 goes first.
    if (wg == 1)
        asm volatile("bar.arrive 2, 256;\n" ::: "memory");

    // The CTA's first item's tile 0: S_0 only. No product sits under a branch (ptxas would serialise all of them).
    q_ring.wait(q_use);
    k_ring.wait(kv_use);
    named_barrier(2 + wg, 256);
    wgmma_fence();
    issue_scores(s, q_tiles + q_use.stage * FWD_TILE_BYTES + wg * 64 * 128, k_tiles + kv_use.stage * FWD_TILE_BYTES);
    wgmma_commit();
    asm volatile("bar.arrive %0, 256;\n" ::"r"(3 - wg) : "memory");
    wgmma_wait<0>();
    wgmma_fence_operands_n128(s);
    __syncwarp();
    if (lane == 0)
        k_ring.release(kv_use.stage);
    softmax_tile(s, m_row, l_row, correction, cur.first * FWD_ROWS, cur.r0, cur.row_a, cur.row_b, tig, window, seq_len, scale);
    #pragma unroll
    for (int kk = 0; kk < 8; kk++)
        accumulator_fragment<16>(pa[kk], s, kk);

    while (true)
    {
        const unsigned q_address = q_tiles + q_use.stage * FWD_TILE_BYTES + wg * 64 * 128;
        // Tile j: S_j and P_{j−1}·V_{j−1}, then the softmax of S_j while the latter runs.
        for (int j = 1; j < cur.tiles; j++)
        {
            const auto previous = kv_use;
            kv_use.advance();
            k_ring.wait(kv_use);
            v_ring.wait(previous);
            named_barrier(2 + wg, 256);
            wgmma_fence_operands(acc);
            wgmma_fence();
            issue_scores(s, q_address, k_tiles + kv_use.stage * FWD_TILE_BYTES);
            wgmma_commit();
            issue_pv(acc, pa, v_tiles + previous.stage * FWD_TILE_BYTES);
            wgmma_commit();
            asm volatile("bar.arrive %0, 256;\n" ::"r"(3 - wg) : "memory");
            wgmma_wait<1>(); // S_j is done; P_{j−1}·V_{j−1} may still run
            wgmma_fence_operands_n128(s);
            __syncwarp();
            if (lane == 0)
                k_ring.release(kv_use.stage);
            softmax_tile(s, m_row, l_row, correction, (cur.first + j) * FWD_ROWS, cur.r0, cur.row_a, cur.row_b, tig, window, seq_len, scale);
            wgmma_wait<0>();
            wgmma_fence_operands(acc);
            __syncwarp();
            if (lane == 0)
                v_ring.release(previous.stage);
            #pragma unroll
            for (int kk = 0; kk < 8; kk++)
                accumulator_fragment<16>(pa[kk], s, kk);
            rescale(acc, correction);
        }
        // Every S of the item is done: Q's slot is free for the item after next.
        __syncwarp();
        if (lane == 0)
            q_ring.release(q_use.stage);
        q_use.advance();
        const int next = item + gridDim.x;
        if (next >= items)
            break;

        // Between items: the next item's S_0 goes with this item's last P·V, as a tile of the loop above does, so the
        // tensor cores are not left with one product and then the other. The next item's softmax runs while the P·V runs; its
        // running maximum and sum start afresh; this item's output is written once its P·V is done.
        const ForwardItem nxt = forward_item_rows(next, q_blocks, heads, window, seq_len, wg, warp, group);
        q_ring.wait(q_use);
        const auto previous = kv_use;
        kv_use.advance();
        k_ring.wait(kv_use);
        v_ring.wait(previous);
        named_barrier(2 + wg, 256);
        wgmma_fence_operands(acc);
        wgmma_fence();
        issue_scores(s, q_tiles + q_use.stage * FWD_TILE_BYTES + wg * 64 * 128, k_tiles + kv_use.stage * FWD_TILE_BYTES);
        wgmma_commit();
        issue_pv(acc, pa, v_tiles + previous.stage * FWD_TILE_BYTES);
        wgmma_commit();
        asm volatile("bar.arrive %0, 256;\n" ::"r"(3 - wg) : "memory");
        wgmma_wait<1>();
        wgmma_fence_operands_n128(s);
        __syncwarp();
        if (lane == 0)
            k_ring.release(kv_use.stage);
        const float m_done[2] = {m_row[0], m_row[1]}, l_done[2] = {l_row[0], l_row[1]};
        m_row[0] = m_row[1] = NEG_INF;
        l_row[0] = l_row[1] = 0.0f;
        softmax_tile(s, m_row, l_row, correction, nxt.first * FWD_ROWS, nxt.r0, nxt.row_a, nxt.row_b, tig, window, seq_len, scale);
        wgmma_wait<0>();
        wgmma_fence_operands(acc);
        __syncwarp();
        if (lane == 0)
            v_ring.release(previous.stage);
        store_output(acc, m_done, l_done, o, lse, cur, heads, seq_len, tig);
        #pragma unroll
        for (int i = 0; i < FWD_OUT_TILES; i++)
            acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
        #pragma unroll
        for (int kk = 0; kk < 8; kk++)
            accumulator_fragment<16>(pa[kk], s, kk);
        item = next;
        cur = nxt;
    }

    // The CTA's last P·V. Warpgroup 1 has no turn to hand on.
    v_ring.wait(kv_use);
    named_barrier(2 + wg, 256);
    wgmma_fence_operands(acc);
    wgmma_fence();
    issue_pv(acc, pa, v_tiles + kv_use.stage * FWD_TILE_BYTES);
    wgmma_commit();
    if (wg == 0)
        asm volatile("bar.arrive 3, 256;\n" ::: "memory");
    wgmma_wait<0>();
    wgmma_fence_operands(acc);
    __syncwarp();
    if (lane == 0)
        v_ring.release(kv_use.stage);
    store_output(acc, m_row, l_row, o, lse, cur, heads, seq_len, tig);
}

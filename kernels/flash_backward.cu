// flash_backward.cu: causal sliding-window attention backward, head size D = HEAD_DIM (64 or 128, compile-time:
// flash_common.cuh), with grouped-query attention, on Hopper's warpgroup tensor-core instructions (wgmma, bf16 inputs, fp32
// accumulation; wgmma.cuh).
//
// From the forward's q, o, do [B, T, H, D], k, v [B, T, KV, D] (all bf16; query head h reads kv head h / (H / KV)) and
// lse [B, H, T] fp32:
//   P = exp(q·kᵀ·scale − lse) on visible pairs (t − W ≤ s ≤ t), D_t = Σ_d do·o,
//   dV = Pᵀ·dO,  dS = P ∘ (dO·Vᵀ − D),  dK = dSᵀ·Q·scale,  dQ = dS·K·scale  (dK, dV summed over a kv head's query heads).
// flash_attention_backward_prepare: D [B, H, T] fp32 (written), the fp32 dq accumulator (B·T·H·D floats) zeroed and the
//   backward's tile counter zeroed (the accumulator only when given). Launch: 256-thread blocks of
//   flash_backward_prepare_rows (b, t, h) rows each (exported below, read by the launcher).
// flash_attention_backward: a tile is a 128-key block of one kv head (ceil(T / 128)·B·KV tiles); for each, the CTA loops
//   over the (query head of the group, 64-query block) pairs that can see its keys. Persistent: a 1-D grid of at most one
//   CTA an SM (384 threads), each taking tiles until none are left (its first is blockIdx.x, the next ones come from the
//   tile counter), in backward_tile's order: groups of BWD_TILE_PAIRS (b, kv head) pairs, the longest tiles of a group first.
//   The next tile's first Q and dO are loaded while the last one's are in use, its K and V while its dK and dV are written.
//   q, k, v and do arrive through rank-3 tensor maps [B, T, H·D] or [B, T, KV·D] (tma.cuh; boxes of 64 columns × 64 query
//   rows or 128 key rows, so rows past T are zero), lse and D as plain pointers.
//   Roles (setmaxnreg): warps 0–3 and 4–7 are two math warpgroups of 64 keys each (240 registers); in warpgroup 2 (24
//   registers) warp 8 is the producer (lane 0 issues the TMA copies of K and V per tile and of Q and dO per block, every lane
//   copies two lse and two D values with cp.async) and warp 9's first lane the dQ writer; warps 10 and 11, given zero_next,
//   zero the next backward's dq accumulator (4·zero_quads floats) with streaming stores, so its prepare reads o and dO only. Per query block a math warpgroup
//   computes Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (A and B from shared memory), Pᵀ and dSᵀ in registers, dV += Pᵀ·dO (A from
//   registers, issued as soon as Pᵀ is ready, so the tensor cores overlap the exponentials), stores dSᵀ with stmatrix, and
//   after a barrier of the two math warpgroups computes its part of dQ = dS·K (A read M-major from dSᵀ): with D = 128 its
//   64 columns over all 128 keys, with D = 64 all 64 columns over its own 64 keys (a partial sum). dK += dSᵀ·Q (A from
//   registers) is issued after dQ, so that dQ, done first, goes to its staging tile while dK runs. The staging tiles are
//   fp32; the writer adds them to the fp32 accumulator with bulk reductions (cp.reduce.async.bulk; two partial tiles when
//   D = 64). dK and dV stay in registers and are written (bf16) at the end of each tile. With k_rstd not null, dK leaves
//   through the k half of the rotary + QK-norm backward (rotary.cu's rotary_qknorm_backward, same arithmetic): k is then the
//   rotary forward's output y, k_rstd [B·T·KV] its rstd and cos_sin_pairs [T, D/2] the rotary table as bf16 (cos, sin)
//   pairs, and the tile writes dL/dx = rotateᵀ(rstd·(g − y·mean(g·y))) from g = dK in fp32 (not rounded to bf16 first). A
//   quad of threads holds a key's D columns, the rotary pair (j, j + D/2) in one thread, so the row's sum is two shuffles.
//   y comes from the tile's K in shared memory, so the K and V slab is then released after the epilogue's reads instead of
//   during the tile's last item; the table (256 bytes a key) and rstd come from L2. The q half stays in rotary.cu (dQ is
//   complete only once every key tile has added to it).
//   mbarriers, no CTA-wide barrier in the loop: kv_full and kv_empty (one tile's K and V); tile_full[2] and tile_empty[2]
//   (the producer hands each tile's index to the math warps and the writer through two slots); qdo_full[2] (the TMA's
//   bytes and the producer lanes' copies) and qdo_empty[2] (each math warp, once its products of the block are done);
//   dq_full[2] (each math warp, once its part of the staging tile is written) and dq_empty[2] (the writer, once the
//   reduction has read it). The Q/dO, dQ and dSᵀ rings run on from one tile to the next.
//   Dynamic shared memory flash_backward_shared_bytes (backward_layout, read by the launcher; sw128 tiles): K and V (128 × D
//   bf16 each); two stages of Q and dO (64 × D each) and of lse and D (64 fp32 each), loaded up to two query blocks ahead;
//   two dSᵀ buffers (128 keys × 64 queries bf16) and two dQ staging stages (64 × 128 fp32 each), so a warpgroup can start
//   block i while the other still reads block i − 1's.
// flash_attention_backward_finish: dq (bf16) = the fp32 accumulator. Any 1-D grid of 256-thread blocks.
// dq, dk and dv may be rows of a wider matrix: grad_stride (finish, dq) and kv_grad_stride (dk, dv) elements from one token's
// row to the next (H·D and KV·D when dense), e.g. one [B·T, H·D + 2·KV·D] matrix holding dq | dk | dv, so the q, k, v
// projections' backward is one GEMM.
#include "pipeline.cuh"

// The prepare kernel's work: a row of o and do (D bf16 each) is PREP_LANES lanes' 16-byte loads, so a warp holds
// 32 / PREP_LANES rows at once; each warp takes PREP_PASSES such groups, all loads issued before any arithmetic (4 or 8 rows
// in flight a warp, where one row of 8-byte loads left each warp little to wait on). The launcher reads the rows a
// 256-thread block covers (flash_backward_prepare_rows).
#define PREP_LANES (HEAD / 8)
#define PREP_PASSES 2
extern "C" __constant__ int flash_backward_prepare_rows = 8 * (32 / PREP_LANES) * PREP_PASSES;

extern "C" __global__ void __launch_bounds__(256) flash_attention_backward_prepare(const bf16* __restrict__ o,
    const bf16* __restrict__ dout, float* __restrict__ d, float* __restrict__ dq_accum, int* __restrict__ tile_counter, int batch,
    int seq_len, int heads)
{
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *tile_counter = 0; // the backward's next tile beyond its first wave (in stream order: this runs before it)
    // dq_accum null: the accumulator was zeroed already (the backward before this one, zero_next), only D is written.
    const long long rows = (long long)batch * seq_len * heads;
    const int lane = threadIdx.x & 31, sub = lane / PREP_LANES, col = (lane % PREP_LANES) * 8;
    const long long first = (blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5)) * (32 / PREP_LANES) * PREP_PASSES;
    uint4 ov[PREP_PASSES], dv[PREP_PASSES];
    #pragma unroll
    for (int p = 0; p < PREP_PASSES; p++)
    {
        const long long row = first + p * (32 / PREP_LANES) + sub;
        if (row < rows)
        {
            ov[p] = *reinterpret_cast<const uint4*>(o + row * HEAD + col);
            dv[p] = *reinterpret_cast<const uint4*>(dout + row * HEAD + col);
        }
        else
            ov[p] = dv[p] = make_uint4(0, 0, 0, 0);
    }
    #pragma unroll
    for (int p = 0; p < PREP_PASSES; p++)
    {
        const long long row = first + p * (32 / PREP_LANES) + sub;
        float of[8], df[8];
        unpack8(ov[p], of);
        unpack8(dv[p], df);
        float sum = 0.0f;
        #pragma unroll
        for (int i = 0; i < 8; i++)
            sum += of[i] * df[i];
        // The row's sum over its PREP_LANES lanes (an aligned group of the warp: every lane takes part in the shuffles).
        #pragma unroll
        for (int offset = PREP_LANES / 2; offset > 0; offset >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, offset);
        if (row < rows)
        {
            if (dq_accum != nullptr)
            {
                float4* z = reinterpret_cast<float4*>(dq_accum + row * HEAD + col);
                z[0] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                z[1] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
            if (col == 0)
            {
                const int h = row % heads, t = (row / heads) % seq_len;
                const long long b = row / ((long long)heads * seq_len);
                d[(b * heads + h) * seq_len + t] = sum;
            }
        }
    }
}

// The dq accumulator's layout: dq_column in common.cuh.
extern "C" __global__ void flash_attention_backward_finish(const float* __restrict__ dq_accum, bf16* __restrict__ dq, long long count,
    int seq_len, int heads, long long grad_stride)
{
    // count is a multiple of D: four stored elements per thread and step, which are four consecutive columns.
    const long long quads = count / 4;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < quads; i += (long long)gridDim.x * blockDim.x)
    {
        const float4 f = reinterpret_cast<const float4*>(dq_accum)[i];
        uint2 out;
        out.x = pack_bf16(f.x, f.y);
        out.y = pack_bf16(f.z, f.w);
        const long long row = i / (HEAD / 4); // (b·H + h)·T + t
        const int t = (int)(row % seq_len);
        const long long bh = row / seq_len;
        const int h = (int)(bh % heads);
        const long long b = bh / heads;
        const int c = dq_column(t, (int)(i % (HEAD / 4)) * 4);
        *reinterpret_cast<uint2*>(dq + (b * seq_len + t) * grad_stride + h * HEAD + c) = out;
    }
}

#define BWD_KEYS 128
#define BWD_QUERIES 64
#define BWD_THREADS 384
#define BWD_OUT_TILES (HEAD / 8) // 8-column tiles of the dK and dV accumulators
// dQ staging: with D = 128 each warpgroup writes its 64 columns of one 64 × 128 tile; with D = 64 each writes a whole
// 64 × 64 partial tile (its 64 keys' share), and the writer reduces both.
#define BWD_DQ_PARTS (128 / HEAD)
#define BWD_DQ_STAGE (BWD_DQ_PARTS * BWD_QUERIES * HEAD * 4)
// (batch, kv head) pairs whose tiles are taken together (all key blocks of the group's pairs, the first key block of each
// pair first): the running CTAs then read the Q, dO, K and V of a few pairs, which stay in L2.
#define BWD_TILE_PAIRS 8
// Shared layout (pipeline.cuh): K, V; two stages of Q and of dO; two dSᵀ buffers; two dQ staging stages; two stages of lse
// and D (64 each); the mbarriers kv_full, kv_empty, qdo_full[2], qdo_empty[2], dq_full[2], dq_empty[2], tile_full[2],
// tile_empty[2], then the two tile slots (an int each).
namespace backward_layout
{
constexpr SharedRegion k() { return first_region(BWD_KEYS * HEAD * 2); }
constexpr SharedRegion v() { return place_after(k(), BWD_KEYS * HEAD * 2); }
constexpr SharedRegion q() { return place_after(v(), 2 * BWD_QUERIES * HEAD * 2); }
constexpr SharedRegion d_out() { return place_after(q(), 2 * BWD_QUERIES * HEAD * 2); }
constexpr SharedRegion ds_t() { return place_after(d_out(), 2 * BWD_KEYS * BWD_QUERIES * 2); }
constexpr SharedRegion dq() { return place_after(ds_t(), 2 * BWD_DQ_STAGE); }
constexpr SharedRegion lse_d() { return place_after(dq(), 2 * 2 * BWD_QUERIES * 4); }
constexpr SharedRegion barriers() { return place_after(lse_d(), 14 * 8 + 2 * 4, 8); }
} // namespace backward_layout
static_assert(shared_window_bytes(backward_layout::barriers()) <= HOPPER_MAX_SHARED_BYTES, "the backward's tiles exceed Hopper's shared memory");

// The launcher sets and passes this much dynamic shared memory.
extern "C" __constant__ int flash_backward_shared_bytes = shared_window_bytes(backward_layout::barriers());

// Writes 4 bytes at `address` (two packed bf16) where `predicate` holds, as a predicated instruction rather than a branch.
__device__ __forceinline__ void store_u32_if(bf16* address, unsigned value, bool predicate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\n@p st.global.b32 [%0], %1;\n}\n"
                 ::"l"(address), "r"(value), "r"((int)predicate) : "memory");
}

// The k half of the rotary + QK-norm backward on the two key rows of dK a thread holds (a and b: acc[dt][0..1] and
// acc[dt][2..3], columns dt·8 + 2·tig (+1), unscaled), each row held by a quad of lanes. ya, yb: the thread's columns of
// k's output for the two rows (bf16 pairs, read from the K tile in shared memory by the caller); cs_*: the row of the
// packed rotary table (cos θ_j | sin θ_j as a bf16 pair at j < D/2), r_*: the row's rstd, both from rows that exist (the
// caller clamps the key); the results are written to out_* only where valid_*. Every table load is issued before any
// arithmetic; loads are plain and stores predicated: no lane-dependent branch (C7520).
__device__ __forceinline__ void k_rotary_backward_rows(const float (&acc)[BWD_OUT_TILES][4], float scale, int tig,
    const unsigned (&ya)[BWD_OUT_TILES], const unsigned (&yb)[BWD_OUT_TILES], const unsigned* __restrict__ cs_a,
    const unsigned* __restrict__ cs_b, float r_a, float r_b, bf16* out_a, bf16* out_b, bool valid_a, bool valid_b)
{
    constexpr int pair_tiles = BWD_OUT_TILES / 2; // tile dt + pair_tiles holds column j + D/2 of tile dt's column j
    uint2 tab_a[pair_tiles], tab_b[pair_tiles];
    #pragma unroll
    for (int dt = 0; dt < pair_tiles; dt++)
    {
        tab_a[dt] = *reinterpret_cast<const uint2*>(cs_a + dt * 8 + tig * 2);
        tab_b[dt] = *reinterpret_cast<const uint2*>(cs_b + dt * 8 + tig * 2);
    }
    float dot_a = 0.0f, dot_b = 0.0f;
    #pragma unroll
    for (int dt = 0; dt < BWD_OUT_TILES; dt++)
    {
        const float2 fa = unpack_bf16(ya[dt]), fb = unpack_bf16(yb[dt]);
        dot_a += acc[dt][0] * fa.x + acc[dt][1] * fa.y;
        dot_b += acc[dt][2] * fb.x + acc[dt][3] * fb.y;
    }
    dot_a += __shfl_xor_sync(0xffffffffu, dot_a, 1);
    dot_b += __shfl_xor_sync(0xffffffffu, dot_b, 1);
    dot_a += __shfl_xor_sync(0xffffffffu, dot_a, 2);
    dot_b += __shfl_xor_sync(0xffffffffu, dot_b, 2);
    const float mean_a = dot_a * scale / (float)HEAD, mean_b = dot_b * scale / (float)HEAD;
    #pragma unroll
    for (int dt = 0; dt < pair_tiles; dt++)
    {
        const int j = dt * 8 + tig * 2;
        #pragma unroll
        for (int row = 0; row < 2; row++)
        {
            const int e = 2 * row;
            const float2 lo = unpack_bf16(row == 0 ? ya[dt] : yb[dt]), hi = unpack_bf16(row == 0 ? ya[dt + pair_tiles] : yb[dt + pair_tiles]);
            const uint2 tab = row == 0 ? tab_a[dt] : tab_b[dt];
            const float2 cs0 = unpack_bf16(tab.x), cs1 = unpack_bf16(tab.y); // (cos, sin) of columns j and j + 1
            const float r = row == 0 ? r_a : r_b, mean = row == 0 ? mean_a : mean_b;
            const float da0 = r * (acc[dt][e] * scale - lo.x * mean), db0 = r * (acc[dt + pair_tiles][e] * scale - hi.x * mean);
            const float da1 = r * (acc[dt][e + 1] * scale - lo.y * mean), db1 = r * (acc[dt + pair_tiles][e + 1] * scale - hi.y * mean);
            bf16* const out = row == 0 ? out_a : out_b;
            const bool valid = row == 0 ? valid_a : valid_b;
            store_u32_if(out + j, pack_bf16(da0 * cs0.x - db0 * cs0.y, da1 * cs1.x - db1 * cs1.y), valid);
            store_u32_if(out + HEAD / 2 + j, pack_bf16(da0 * cs0.y + db0 * cs0.x, da1 * cs1.y + db1 * cs1.x), valid);
        }
    }
}

// One tile of the backward: the 128 keys from k0 of kv head kvh of batch row b.
struct BackwardTile
{
    int k0, b, kvh;
};

// Tile t of the order the CTAs take them in: groups of BWD_TILE_PAIRS (batch, kv head) pairs (the last group may be smaller),
// one group after another; within a group, key block 0 of each pair, then key block 1, and so on. A key block sees no more
// query blocks than the one before it, so within a group the longest tiles come first.
__device__ __forceinline__ BackwardTile backward_tile(int t, int key_blocks, int pairs, int kv_heads)
{
    const int per_group = BWD_TILE_PAIRS * key_blocks;
    const int g = t / per_group, within = t - g * per_group;
    const int size = min(BWD_TILE_PAIRS, pairs - g * BWD_TILE_PAIRS);
    const int pair = g * BWD_TILE_PAIRS + within % size;
    return BackwardTile{(within / size) * BWD_KEYS, pair / kv_heads, pair % kv_heads};
}

// The query blocks of 64 rows that can see a tile's keys k0 .. k0 + 127: first .. last.
__device__ __forceinline__ int2 backward_query_blocks(int k0, int seq_len, int window)
{
    return make_int2(k0 / BWD_QUERIES, min(seq_len - 1, k0 + BWD_KEYS - 1 + window) / BWD_QUERIES);
}

extern "C" __global__ void __launch_bounds__(BWD_THREADS, 1) flash_attention_backward(const __grid_constant__ TensorMap map_q,
    const __grid_constant__ TensorMap map_k, const __grid_constant__ TensorMap map_v, const __grid_constant__ TensorMap map_do,
    const float* __restrict__ lse, const float* __restrict__ d, float* __restrict__ dq_accum, bf16* __restrict__ dk,
    bf16* __restrict__ dv, int* __restrict__ tile_counter, int batch, int seq_len, int heads, int kv_heads, int window,
    long long kv_grad_stride, int key_blocks, int pairs, int tile_count, const float* __restrict__ k_rstd,
    const unsigned* __restrict__ cos_sin_pairs, float* __restrict__ zero_next, long long zero_quads)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const unsigned base = aligned_shared_base(smem_raw);
    unsigned char* smem = smem_raw + (base - shared_address(smem_raw));
    const unsigned k_address = base + backward_layout::k().offset, v_address = base + backward_layout::v().offset,
                   q_stages = base + backward_layout::q().offset, do_stages = base + backward_layout::d_out().offset,
                   dst_stages = base + backward_layout::ds_t().offset, dq_stages = base + backward_layout::dq().offset,
                   lse_stages = base + backward_layout::lse_d().offset;
    // kv: full the TMA's bytes, empty one arrival a math warp once its last products of the tile that read K and V are done.
    // The Q/dO ring: qdo_full[s] the TMA's bytes and the producer warp's 32 lse/D copies, qdo_empty[s] one arrival a math
    // warp. The dQ staging ring, filled by the math warps and emptied by the writer: dq_full[s] one arrival a math warp,
    // dq_empty[s] the writer. The tile ring: tile_full[s] the producer's arrival once it has written the tile's index into
    // slot s, tile_empty[s] one arrival a math warp and the writer's, once each has read it.
    const unsigned barriers = base + backward_layout::barriers().offset;
    const Pipeline<1> kv{barriers, barriers + 8};
    const Pipeline<2> qdo{barriers + 16, barriers + 32}, dq{barriers + 48, barriers + 64}, tiles{barriers + 80, barriers + 96};
    int* tile_slots = reinterpret_cast<int*>(smem + backward_layout::barriers().offset + 112);
    // key_blocks = ceil(T / 128), pairs = B·KV and tile_count = their product come from the launcher as parameters (the
    // constant bank), not from registers: the producer has 24.
    const int group = heads / kv_heads;
    const int warp_index = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0)
    {
        kv.init(1, 8);
        qdo.init(1 + 32, 8);
        dq.init(8, 1);
        tiles.init(1, 9);
        mbarrier_init_fence();
    }
    __syncthreads();

    // Persistent: each CTA takes tiles until none are left, its first blockIdx.x, the next ones from the counter. The producer
    // takes each and hands it to the math warps and the writer through the tile ring, so all roles follow the same tiles;
    // the Q/dO and dQ rings run on across tiles (item counts the CTA's work items, tile by tile).
    if (warp_index >= 8)
    {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
        if (warp_index == 8)
        {
            // Producer: per tile, Q, dO (TMA) and lse, D (a float a lane and array) of each work item, two items ahead; K and
            // V of the tile once its first item is issued and the math warps are done with the previous tile's.
            if (lane == 0)
            {
                tensormap_prefetch(&map_q);
                tensormap_prefetch(&map_do);
                tensormap_prefetch(&map_k);
                tensormap_prefetch(&map_v);
            }
            int item = 0;
            for (int n = 0;; n++)
            {
                const auto tile_use = PipelineState<2>::at(n);
                int t = 0;
                if (lane == 0)
                {
                    t = n == 0 ? (int)blockIdx.x : (int)gridDim.x + atomicAdd(tile_counter, 1);
                    tiles.acquire(tile_use);
                    tile_slots[tile_use.stage] = t;
                    tiles.produced(tile_use.stage);
                }
                t = __shfl_sync(0xffffffffu, t, 0);
                if (t >= tile_count)
                    break;
                const BackwardTile tile = backward_tile(t, key_blocks, pairs, kv_heads);
                const int2 range = backward_query_blocks(tile.k0, seq_len, window);
                const int blocks = range.y - range.x + 1, items = group * blocks;
                // Work item i: query head kvh·group + i / blocks, query block first + i mod blocks.
                for (int i = 0; i < items; i++, item++)
                {
                    const auto use = PipelineState<2>::at(item);
                    const int h = tile.kvh * group + i / blocks, q0 = (range.x + i % blocks) * BWD_QUERIES;
                    const float* lse_bh = lse + ((long long)tile.b * heads + h) * seq_len;
                    const float* d_bh = d + ((long long)tile.b * heads + h) * seq_len;
                    qdo.acquire(use);
                    if (lane == 0)
                    {
                        qdo.expect_bytes(use.stage, 2 * BWD_QUERIES * HEAD * 2);
                        for (int slab = 0; slab < HEAD_SLABS; slab++)
                        {
                            const unsigned offset = use.stage * BWD_QUERIES * HEAD * 2 + slab * BWD_QUERIES * 128;
                            tma_load_3d(q_stages + offset, &map_q, h * HEAD + 64 * slab, q0, tile.b, qdo.full_at(use.stage));
                            tma_load_3d(do_stages + offset, &map_do, h * HEAD + 64 * slab, q0, tile.b, qdo.full_at(use.stage));
                        }
                    }
                    const unsigned lse_stage = lse_stages + use.stage * 2 * BWD_QUERIES * 4;
                    #pragma unroll
                    for (int r = 0; r < 2; r++)
                    {
                        const int row = lane + 32 * r;
                        const bool valid = q0 + row < seq_len;
                        copy_async<4>(lse_stage + row * 4, lse_bh + (valid ? q0 + row : 0), valid);
                        copy_async<4>(lse_stage + (BWD_QUERIES + row) * 4, d_bh + (valid ? q0 + row : 0), valid);
                    }
                    copy_async_arrive(qdo.full_at(use.stage));
                    if (i == 0 && lane == 0)
                    {
                        // K and V, once every math warp's last reads of the previous tile's are done.
                        kv.acquire(PipelineState<1>::at(n));
                        kv.expect_bytes(0, 2 * BWD_KEYS * HEAD * 2);
                        for (int slab = 0; slab < HEAD_SLABS; slab++)
                        {
                            tma_load_3d(k_address + slab * BWD_KEYS * 128, &map_k, tile.kvh * HEAD + 64 * slab, tile.k0, tile.b, kv.full_at(0));
                            tma_load_3d(v_address + slab * BWD_KEYS * 128, &map_v, tile.kvh * HEAD + 64 * slab, tile.k0, tile.b, kv.full_at(0));
                        }
                    }
                }
            }
        }
        else if (warp_index == 9 && lane == 0)
        {
            // dQ writer: adds each work item's staged dQ (one or two parts) to the fp32 accumulator, then frees the staging.
            int item = 0;
            for (int n = 0;; n++)
            {
                const auto tile_use = PipelineState<2>::at(n);
                tiles.wait(tile_use);
                const int t = tile_slots[tile_use.stage];
                tiles.release(tile_use.stage);
                if (t >= tile_count)
                    break;
                const BackwardTile tile = backward_tile(t, key_blocks, pairs, kv_heads);
                const int2 range = backward_query_blocks(tile.k0, seq_len, window);
                const int blocks = range.y - range.x + 1, items = group * blocks;
                for (int i = 0; i < items; i++, item++)
                {
                    const auto use = PipelineState<2>::at(item);
                    const int h = tile.kvh * group + i / blocks, q0 = (range.x + i % blocks) * BWD_QUERIES;
                    dq.wait(use);
                    const int rows = min(BWD_QUERIES, seq_len - q0);
                    for (int part = 0; part < BWD_DQ_PARTS; part++)
                    {
                        bulk_reduce_add_f32(dq_accum + (((long long)tile.b * heads + h) * seq_len + q0) * HEAD,
                                            dq_stages + use.stage * BWD_DQ_STAGE + part * BWD_QUERIES * HEAD * 4, rows * HEAD * 4);
                    }
                    tma_store_commit();
                    tma_store_wait_read();
                    dq.release(use.stage);
                }
            }
            tma_store_wait();
        }
        else if (warp_index >= 10 && zero_next != nullptr)
        {
            // Warps 10 and 11, idle otherwise: zero_next[0 .. 4·zero_quads) = 0, the next backward's dq accumulator (its
            // prepare then skips the zeros), with streaming stores (evict first) while this kernel's time goes to the tensor
            // cores. Each CTA takes quads of its own stride.
            float4* out = reinterpret_cast<float4*>(zero_next);
            const long long stride = (long long)gridDim.x * 64;
            for (long long i = blockIdx.x * 64LL + (threadIdx.x - 320); i < zero_quads; i += stride)
                asm volatile("st.global.cs.v4.f32 [%0], {%1, %1, %1, %1};\n" ::"l"(out + i), "f"(0.0f) : "memory");
        }
        return;
    }

    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
    const int wg = warp_index >> 2, warp = warp_index & 3, group_row = lane >> 2, tig = lane & 3;
    const float scale = rsqrtf((float)HEAD);
    const float scale2 = scale * LOG2E;
    // This warpgroup's 64 keys: rows 64·wg .. of K's and V's slabs (128 rows each).
    const unsigned kw_address = k_address + wg * 64 * 128, vw_address = v_address + wg * 64 * 128;
    const unsigned char* const k_tile = smem + backward_layout::k().offset; // the epilogue reads k's output here
    // k_rstd is a kernel parameter, the same for every thread; a vote tells ptxas so.
    const bool fuse_k_rotary = __all_sync(0xffffffffu, k_rstd != nullptr);
    int item = 0;
    for (int n = 0;; n++)
    {
        const auto tile_use = PipelineState<2>::at(n);
        tiles.wait(tile_use);
        const int t = tile_slots[tile_use.stage];
        __syncwarp();
        if (lane == 0)
            tiles.release(tile_use.stage);
        // Every thread read the same slot, but ptxas cannot know it: a branch on t would put the products below under a possibly
        // divergent path, where it serialises every wgmma of the kernel (C7520). A warp vote's result is uniform, so the loops
        // that hold products end on votes.
        if (__any_sync(0xffffffffu, t >= tile_count))
            break;
        const BackwardTile tile = backward_tile(t, key_blocks, pairs, kv_heads);
        const int k0 = tile.k0;
        const int2 range = backward_query_blocks(k0, seq_len, window);
        const int blocks = range.y - range.x + 1, items = group * blocks;

        float dk_acc[BWD_OUT_TILES][4], dv_acc[BWD_OUT_TILES][4];
        #pragma unroll
        for (int i = 0; i < BWD_OUT_TILES; i++)
        {
            dk_acc[i][0] = dk_acc[i][1] = dk_acc[i][2] = dk_acc[i][3] = 0.0f;
            dv_acc[i][0] = dv_acc[i][1] = dv_acc[i][2] = dv_acc[i][3] = 0.0f;
        }
        const int key_a = k0 + wg * 64 + warp * 16 + group_row, key_b = key_a + 8;
        kv.wait(PipelineState<1>::at(n));

        // Work item i of the tile (items ≥ 1: a key block sees at least its own query block); the loop ends on a vote (above).
        for (int i = 0;; i++)
        {
            const auto use = PipelineState<2>::at(item);
            const int q0 = (range.x + i % blocks) * BWD_QUERIES;
            const unsigned q_address = q_stages + use.stage * BWD_QUERIES * HEAD * 2;
            const unsigned do_address = do_stages + use.stage * BWD_QUERIES * HEAD * 2;
            const float* lse_s = reinterpret_cast<const float*>(smem + backward_layout::lse_d().offset + use.stage * 2 * BWD_QUERIES * 4);
            const float* d_s = lse_s + BWD_QUERIES;
            const unsigned dst_address = dst_stages + use.stage * BWD_KEYS * BWD_QUERIES * 2;
            float* dq_stage = reinterpret_cast<float*>(smem + backward_layout::dq().offset + use.stage * BWD_DQ_STAGE);
            qdo.wait(use);
            // The dQ staging stage of this item, once the writer has read item i − 2's out of it: waited for here, with no
            // product in flight, rather than beside the staging below, where dK is (a spin loop there could make ptxas
            // serialise the products).
            dq.acquire(use);
            // The block's lse (negated, base 2) for this thread's query columns, read before the products are issued, and D
            // (below) before dPᵀ's wait: read only after those waits, the loads queued behind the products' shared-memory reads
            // while the exponentials and dSᵀ waited on them (Nsight Compute's stall samples; on an H100 the backward
            // ran 1.7 % faster, three A/B runs).
            float neg_lse2[8][2];
            #pragma unroll
            for (int nt = 0; nt < 8; nt++)
            {
                const float2 l2 = *reinterpret_cast<const float2*>(lse_s + nt * 8 + tig * 2);
                neg_lse2[nt][0] = -l2.x * LOG2E;
                neg_lse2[nt][1] = -l2.y * LOG2E;
            }

            // Sᵀ (64 keys × 64 queries) = K·Qᵀ and dPᵀ = V·dOᵀ, as two groups: Pᵀ is computed while dPᵀ is still running.
            float st[8][4], dpt[8][4];
            wgmma_fence();
            #pragma unroll
            for (int kk = 0; kk < HEAD / 16; kk++)
            {
                wgmma_ss_n64<0, 0>(st, kmajor_descriptor(kw_address, BWD_KEYS, kk), kmajor_descriptor(q_address, BWD_QUERIES, kk), kk > 0);
            }
            wgmma_commit();
            #pragma unroll
            for (int kk = 0; kk < HEAD / 16; kk++)
            {
                wgmma_ss_n64<0, 0>(dpt, kmajor_descriptor(vw_address, BWD_KEYS, kk), kmajor_descriptor(do_address, BWD_QUERIES, kk), kk > 0);
            }
            wgmma_commit();
            wgmma_wait<1>();
            wgmma_fence_operands_n64(st);

            // Pᵀ in the accumulator layout: rows are keys (key_a, key_b), columns queries q0 + 8·nt + 2·tig (+1); lse in base 2.
            const int kw0 = k0 + wg * 64;
            const bool full = q0 >= kw0 + 63 && q0 + BWD_QUERIES - 1 <= kw0 + window && q0 + BWD_QUERIES <= seq_len && kw0 + 64 <= seq_len;
            #pragma unroll
            for (int nt = 0; nt < 8; nt++)
            {
                #pragma unroll
                for (int e = 0; e < 4; e++)
                    st[nt][e] = fast_exp2(fmaf(st[nt][e], scale2, neg_lse2[nt][e & 1]));
            }
            if (!__all_sync(0xffffffffu, full)) // a vote: uniform for ptxas (dPᵀ is in flight here)
            {
                #pragma unroll
                for (int nt = 0; nt < 8; nt++)
                {
                    #pragma unroll
                    for (int e = 0; e < 4; e++)
                    {
                        const int key = e < 2 ? key_a : key_b;
                        const int query = q0 + nt * 8 + tig * 2 + (e & 1);
                        if (query < key || query > key + window || query >= seq_len || key >= seq_len)
                            st[nt][e] = 0.0f;
                    }
                }
            }
            // dV += Pᵀ·dO: B is dO with rows = queries (K) and columns = d (N).
            unsigned pa[4][4], sa[4][4];
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
                accumulator_fragment<8>(pa[kk], st, kk);
            wgmma_fence_operands(dv_acc);
            wgmma_fence();
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
                wgmma_rs<1>(dv_acc, pa[kk], mnmajor_descriptor(do_address, BWD_QUERIES, kk, 0), 1);
            wgmma_commit();
            float2 dd[8]; // D, read while dPᵀ finishes
            #pragma unroll
            for (int nt = 0; nt < 8; nt++)
                dd[nt] = *reinterpret_cast<const float2*>(d_s + nt * 8 + tig * 2);
            wgmma_wait<1>(); // dPᵀ is done
            wgmma_fence_operands_n64(dpt);
            #pragma unroll
            for (int nt = 0; nt < 8; nt++)
            {
                #pragma unroll
                for (int e = 0; e < 4; e++)
                    dpt[nt][e] = st[nt][e] * (dpt[nt][e] - ((e & 1) ? dd[nt].y : dd[nt].x));
            }
            // dSᵀ as the A fragments of dK += dSᵀ·Q, issued after dQ (below).
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
                accumulator_fragment<8>(sa[kk], dpt, kk);

            // dSᵀ to shared memory ([key][query]), so each warpgroup can take all 128 keys for its half of dQ = dS·K. Its buffer
            // was last read by block i − 2's dQ products, which both warpgroups finished before block i − 1's barrier.
            // stmatrix: four 8 × 8 matrices an instruction (rows r and r + 8, columns 8j and 8j + 8); lane L addresses row L mod 8
            // of matrix L / 8.
            {
                const int m = lane >> 3, m_row = wg * 64 + warp * 16 + 8 * (m & 1) + (lane & 7), m_col = 8 * (m >> 1);
                #pragma unroll
                for (int j = 0; j < 8; j += 2)
                    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n"
                                 ::"r"(dst_address + 2 * sw128(m_row, 8 * j + m_col, BWD_KEYS)), "r"(pack_bf16(dpt[j][0], dpt[j][1])),
                                   "r"(pack_bf16(dpt[j][2], dpt[j][3])), "r"(pack_bf16(dpt[j + 1][0], dpt[j + 1][1])),
                                   "r"(pack_bf16(dpt[j + 1][2], dpt[j + 1][3])) : "memory");
            }
            fence_async_shared();
            named_barrier(1, 256); // dSᵀ is complete

            // dQ = dS·K: A = dS, stored [key][query] (M-major); B = K [key][d] (N-major). D = 128: this warpgroup's 64 columns
            // (slab wg) over all 128 keys. D = 64: all 64 columns over this warpgroup's 64 keys (a partial sum).
            float dq_acc[8][4];
            constexpr int dq_steps = HEAD == 128 ? 8 : 4;
            const int dq_first = HEAD == 128 ? 0 : 4 * wg, dq_slab = HEAD == 128 ? wg : 0;
            wgmma_fence();
            #pragma unroll
            for (int j = 0; j < dq_steps; j++)
            {
                const int kk = dq_first + j;
                wgmma_ss_n64<1, 1>(dq_acc, mnmajor_descriptor(dst_address, BWD_KEYS, kk, 0), mnmajor_descriptor(k_address, BWD_KEYS, kk, dq_slab), j > 0);
            }
            wgmma_commit();
            // dK += dSᵀ·Q (scaled at the end), after dQ: the groups complete in order, so dQ can be staged while dK runs. The A
            // fragments are pinned here, before the fence, so that no conversion into them is moved past it.
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
                asm volatile("" : "+r"(sa[kk][0]), "+r"(sa[kk][1]), "+r"(sa[kk][2]), "+r"(sa[kk][3])::"memory");
            wgmma_fence_operands(dk_acc);
            wgmma_fence();
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
                wgmma_rs<1>(dk_acc, sa[kk], mnmajor_descriptor(q_address, BWD_QUERIES, kk, 0), 1);
            wgmma_commit();
            wgmma_wait<1>(); // dV and dQ are done; dK may still run
            wgmma_fence_operands_n64(dq_acc);
            wgmma_fence_operands(dv_acc);
            // After the tile's last item, its reads of K (Sᵀ, dQ) and V (dPᵀ) are done: the producer may load the next tile's.
            // A predicated arrival, not a branch: dK is still in flight.
            __syncwarp();
            kv.release_if(0, lane == 0 && i == items - 1 && !fuse_k_rotary);
            // dQ of this block to its staging (rows permuted as in dq_accum; the stage was acquired at the item's start).
            float* dq_part = dq_stage + (HEAD == 128 ? 0 : wg * BWD_QUERIES * HEAD);
            const int row_a = warp * 16 + group_row, row_b = row_a + 8; // query q0 + row; q0 is a multiple of 8, so t mod 8 = row mod 8
            #pragma unroll
            for (int dt = 0; dt < 8; dt++)
            {
                const int c = (HEAD == 128 ? wg * 64 : 0) + dt * 8 + tig * 2;
                *reinterpret_cast<float2*>(dq_part + row_a * HEAD + dq_column(row_a, c)) = make_float2(dq_acc[dt][0] * scale, dq_acc[dt][1] * scale);
                *reinterpret_cast<float2*>(dq_part + row_b * HEAD + dq_column(row_b, c)) = make_float2(dq_acc[dt][2] * scale, dq_acc[dt][3] * scale);
            }
            fence_async_shared();
            __syncwarp();
            dq.produced_if(use.stage, lane == 0); // a predicated arrival: dK is still in flight
            wgmma_wait<0>(); // dK is done: so are this warp's reads of Q and dO
            wgmma_fence_operands(dk_acc);
            __syncwarp();
            if (lane == 0) // this warp's products and reads of Q, dO, lse and D are done
                qdo.release(use.stage);
            item++;
            if (__all_sync(0xffffffffu, i + 1 >= items))
                break;
        }

        // The tile's dK and dV rows (bf16); rows past T are not written. Predicated stores, not branches: the epilogue now sits
        // inside the loop that holds the products, which a lane-dependent branch could make ptxas serialise (C7520).
        const long long grad_base = (long long)tile.b * seq_len * kv_grad_stride + (long long)tile.kvh * HEAD;
        bf16* const dk_a = dk + grad_base + (long long)key_a * kv_grad_stride;
        bf16* const dk_b = dk + grad_base + (long long)key_b * kv_grad_stride;
        #pragma unroll
        for (int dt = 0; dt < BWD_OUT_TILES; dt++)
        {
            const int c = dt * 8 + tig * 2;
            store_u32_if(dv + grad_base + (long long)key_a * kv_grad_stride + c, pack_bf16(dv_acc[dt][0], dv_acc[dt][1]), key_a < seq_len);
            store_u32_if(dv + grad_base + (long long)key_b * kv_grad_stride + c, pack_bf16(dv_acc[dt][2], dv_acc[dt][3]), key_b < seq_len);
        }
        if (!fuse_k_rotary)
        {
            #pragma unroll
            for (int dt = 0; dt < BWD_OUT_TILES; dt++)
            {
                const int c = dt * 8 + tig * 2;
                store_u32_if(dk_a + c, pack_bf16(dk_acc[dt][0] * scale, dk_acc[dt][1] * scale), key_a < seq_len);
                store_u32_if(dk_b + c, pack_bf16(dk_acc[dt][2] * scale, dk_acc[dt][3] * scale), key_b < seq_len);
            }
        }
        else
        {
            // k's output for the thread's columns of its two rows, from the tile's K in shared memory (sw128; rows past T are
            // the TMA's zeros). Then the K and V slab is released (held past the tile's last item for these reads).
            const int tr_a = key_a - k0, tr_b = tr_a + 8;
            unsigned ya[BWD_OUT_TILES], yb[BWD_OUT_TILES];
            #pragma unroll
            for (int dt = 0; dt < BWD_OUT_TILES; dt++)
            {
                ya[dt] = *reinterpret_cast<const unsigned*>(k_tile + 2 * sw128(tr_a, dt * 8 + tig * 2, BWD_KEYS));
                yb[dt] = *reinterpret_cast<const unsigned*>(k_tile + 2 * sw128(tr_b, dt * 8 + tig * 2, BWD_KEYS));
            }
            __syncwarp();
            kv.release_if(0, lane == 0);
            // Rows past T read the last row's rstd and table (their results are not written).
            const int ta = min(key_a, seq_len - 1), tb = min(key_b, seq_len - 1);
            const long long row_a = ((long long)tile.b * seq_len + ta) * kv_heads + tile.kvh;
            const long long row_b = ((long long)tile.b * seq_len + tb) * kv_heads + tile.kvh;
            k_rotary_backward_rows(dk_acc, scale, tig, ya, yb, cos_sin_pairs + (long long)ta * (HEAD / 2),
                cos_sin_pairs + (long long)tb * (HEAD / 2), k_rstd[row_a], k_rstd[row_b], dk_a, dk_b, key_a < seq_len, key_b < seq_len);
        }
    }
}

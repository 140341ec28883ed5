// mlp_gemm.cu: the MLP's two GEMMs whose other side is the activation, with the activation in their epilogue (SPEC §5), so
// it never makes a separate pass through memory: relu² (the baseline) and GELU (tanh form; the Activation knob). The same
// GEMM also serves the q and k projections, with the rotary embedding and QK-norm in its epilogue, and v's beside them in the
// same launch (qk_gemm_rotary_norm_*, at the end of the file).
//
// mlp_fc_relu_square:             s = relu(r ⊙ x·Wᵀ)²          x [M, K], W [N, K] (c_fc: out × in), s [M, N]; all bf16 row-major
// mlp_proj_input_gradient:        du = r ⊙ (g·W) ⊙ 2·sqrt(s)   g [M, K], W [K, N] (c_proj: out × in, so K = model width),
//                                                              s [M, N] the forward's relu² output (relu(u) = sqrt(s)), du [M, N]
// mlp_fc_gelu:                    u = r ⊙ x·Wᵀ and s = gelu(u), both written (the backward needs u)
// mlp_proj_input_gradient_gelu:   du = r ⊙ (g·W) ⊙ gelu'(u), from the forward's u (du may replace u in place)
// r [M] fp32 scales the rows (null: 1). With r = the MLP norm's rstd and x the norm's input, the forward is relu²(norm(x)·Wᵀ)
// without norm(x) in memory, and the gradient leaves rstd·du for a weight gradient against x and a norm backward that takes
// its dy pre-scaled (rmsnorm.cu). Both accumulate in fp32 and round once to bf16. Shapes: M a multiple of 128, N of 256, K
// of 64 (the host checks).
// The fc kernels with norm_rows set compute r themselves, r = 1/sqrt(mean(x²) + eps) of each row as rmsnorm_forward does,
// and write it to r for the backward, so the norm's statistics take no pass over x of their own. Their math warps then take
// their rows of each k-block of x into registers (ldmatrix) and multiply from there (wgmma with A in registers), adding the
// squares while the products run (K is the whole row). On an H100 that costs the fc GEMM about 4 % (+0.26 ms a micro-step)
// against the 0.77 ms of the norm pass it replaces; reading x from shared memory a second time beside the products instead
// cost it 18 % (bench/results/H100-profile.md).
//
// Operands arrive through tensor maps (TMA, 128-byte swizzle), encoded by the host:
//   map_x:   x or g,  box {64 (K), 128 (M)}
//   map_w:   fc: W [N, K], box {64 (K), 256 (N)};  proj: W [K, N], box {64 (N), 64 (K)}
//   map_s:   what the gradient's epilogue reads: s (relu²) or u (GELU), box {64 (N), 64 (M)}
//   map_out: s or du, box {64 (N), 64 (M)}
//   map_u:   u (the GELU forward only), box {64 (N), 64 (M)}
// The two gradient kernels also take du's address (16-byte aligned), for GEMM_GATE_DIRECT_STORES's stores from registers.
// Launch: a persistent grid (one block an SM, each takes tiles blockIdx.x, + gridDim.x, ...), 384 threads, mlp_gemm_shared_bytes
// bytes of dynamic shared memory. Tiles are 128 × 256, N fastest, so the blocks in flight share their rows of x.
//
// Roles: warps 0–3 and 4–7 are two math warpgroups (rows 0–63 and 64–127 of a tile, m64n256k16 from shared memory, A from
// registers in the fc kernels' NORM path; 128 fp32 accumulators a thread, 224 registers); warp 8's first lane is the
// producer of the k-blocks (its warpgroup keeps 56 registers), and in the gradient the first lanes of warps 9 and 10 load s,
// one for each math warpgroup (GEMM_GATE_RING).
// Stages of 64 columns of K flow through GEMM_STAGES buffers (the relu² forward and the gradient: GEMM_SPLIT_STAGES, below),
// each with a "full" mbarrier (the TMA's byte count) and an "empty" one (one arrival a math warp). The epilogue writes each
// warpgroup's 64 × 256 half into its own swizzled shared tile with stmatrix and stores it with TMA (the relu² forward: in two
// passes of 64 × 128). The gradient's epilogue takes s 64 columns at a time through a ring of two such parts a warpgroup,
// reads each with ldmatrix, frees it and stores du from registers (GEMM_GATE_DIRECT_STORES; 0: du replaces the part in
// place and goes out by TMA). The GELU forward stores its tile twice: u, then (once the TMA
// has read it) s, which it computes in registers while that store reads the tile.
//
// Each kernel is a whole GEMM and takes NVRTC seconds: with MLP_GEMM_ONE and MLP_GEMM_ONE_<kernel> defined, the file holds that
// kernel alone, so a cold start compiles the ones a model uses side by side (MlpGemm.Source(kernel)); with neither, all six.
#include "pipeline.cuh"

#define ACT_RELU2 0
#define ACT_GELU 1
#define ACT_ROTARY 2 // not an activation: the q and k projections' rotary embedding and RMS norm per head, v's product plain (qk_gemm_rotary_norm_*)
#define GELU_K 0.7978845608028654f // sqrt(2/π)
#define GELU_A 0.044715f

#define GEMM_BM 128
#define GEMM_BN 256
#define GEMM_BK 64
#define GEMM_STAGES 3
#define GEMM_THREADS 384
#define GEMM_A_BYTES (GEMM_BM * GEMM_BK * 2)
#define GEMM_B_BYTES (GEMM_BN * GEMM_BK * 2)
#define GEMM_STAGE_BYTES (GEMM_A_BYTES + GEMM_B_BYTES)
#define GEMM_HALF_BYTES (64 * GEMM_BN * 2)
// The gradient's gate issues the ldmatrix of s for GEMM_GATE_BATCH column pairs at once (4 registers a pair), before it
// multiplies and stores the first of them, so the shared-memory round trips overlap instead of chaining pair by pair. On an
// H100 2 made the gradient 2.4–3.5 % faster than 1 in four A/B runs (4 and 8 no better than 2: bench/results/H100-profile.md).
#ifndef GEMM_GATE_BATCH
#define GEMM_GATE_BATCH 2
#endif
static_assert(GEMM_GATE_BATCH >= 1 && 16 % GEMM_GATE_BATCH == 0, "GEMM_GATE_BATCH divides the 16 column pairs of a tile row");

// The relu² forward (mlp_fc_relu_square) stores its tile in two passes of 64 × 128 a warpgroup (GEMM_FC_SPLIT), which frees
// 32 KB for a fourth stage, and its warpgroup 1 starts the block's first tile GEMM_FC_STAGGER k-blocks behind warpgroup 0, so
// that one's epilogue tends to run while the other still issues products. On an H100 the two together made that GEMM 1.8 %
// faster (6.841 → 6.716 ms a micro-step, spreads ≤ 0.02 ms); either alone, −0.1 and +0.1 %; with a stagger of 2, the same
// −1.8 %. The rotary GEMM keeps three stages and whole tiles (the stagger made it 1.1 % slower); the gradient gets its fourth
// stage from the ring below (bench/results/H100-profile.md).
#ifndef GEMM_FC_SPLIT
#define GEMM_FC_SPLIT 1
#endif
#ifndef GEMM_FC_STAGGER
#define GEMM_FC_STAGGER 1
#endif
#define GEMM_SPLIT_STAGES 4
static_assert(GEMM_FC_STAGGER >= 0 && GEMM_FC_STAGGER <= GEMM_SPLIT_STAGES, "warpgroup 0 can run at most a ring's depth ahead before warpgroup 1 starts");
// The gradient (GEMM_GATE_RING 1) takes s through a ring of two 64 × 64 parts a warpgroup (16 KB, the split epilogue's tile),
// each loaded by a producer thread of the warpgroup's own (lane 0 of warp 9 or 10) and stored back as du once gated, so it
// gets the relu² forward's fourth stage and staggered warpgroups (GEMM_GATE_STAGGER). A warpgroup signals its producer when
// it has issued the tile's k-block GEMM_GATE_S_LEAD from the end; the producer then loads parts 0 and 1, asks L2 for parts 2
// and 3, and loads each of those as the stores free a part. On an H100 (fixed weights, 4 rounds) the relu² gradient went
// 8.917 → 8.680 ms a micro-step (−2.7 %) with a lead of 6, −2.4 % with 5, ±0 with 8, +1.3 % with 3 and +5.7 % with 2: signalled
// late, the gate waits for its parts. GEMM_GATE_RING 0 is the whole-tile path: the k-block producer loads all of s once it
// has queued the tile's last stage, and the gradient keeps three stages.
#ifndef GEMM_GATE_RING
#define GEMM_GATE_RING 1
#endif
#ifndef GEMM_GATE_S_LEAD
#define GEMM_GATE_S_LEAD 6
#endif
#ifndef GEMM_GATE_STAGGER
#define GEMM_GATE_STAGGER 1
#endif
// With the ring, each warp stores its own 16 rows of a part of du (the launcher then encodes du's map with a box of 16 rows:
// mlp_gemm_du_box_rows) and frees the part once that store has read them (part_empty counts the 4 warps), so the gate's parts
// run without the warpgroup's barrier and without waiting on one thread's store: −2 % on the gradient (H100). A warp's
// ldmatrix and stmatrix touch its own 16 rows only, so nothing else orders the warps within a part. 0: the warpgroup's
// barrier, then one thread stores the whole part.
#ifndef GEMM_GATE_WARP_STORES
#define GEMM_GATE_WARP_STORES 1
#endif
// With the ring, each warp may instead take its rows of a part of s into registers (four ldmatrix), free the part for the
// producer at once, gate, and store du straight from its registers (GEMM_GATE_DIRECT_STORES 1): a quad's 4 × 4 words of a
// row are transposed by two rounds of shfl.xor, so that each lane stores 16 contiguous bytes (transpose_quad). The part is
// then read once and never rewritten, and the producer loads the tile's third and fourth parts a store's round trip sooner.
// du still may replace s in place: a warp writes only the elements it has read. 0: du is written back into the part with
// stmatrix and stored by the warp's TMA store (GEMM_GATE_WARP_STORES).
#ifndef GEMM_GATE_DIRECT_STORES
#define GEMM_GATE_DIRECT_STORES 1
#endif
// The rotary GEMM (q, k and v) stores its epilogue tiles the same way: each warp its own 16 rows (the launcher encodes q's,
// k's and v's maps with mlp_gemm_qkv_box_rows), each waiting only for its own stores to have read the tile before it
// rewrites its rows, with no warpgroup barrier in the epilogue. On an H100 (fixed weights, 4 rounds) the q k v forward went
// 5.987 → 5.834 ms a micro-step (−2.6 %, spreads 0.07 / 0.04). The relu² forward stored the same way went 6.623 → 6.697
// (+1.1 %), so the fc kernels keep the warpgroup's barrier and one thread's store. 0: the same for the rotary GEMM.
#ifndef GEMM_QKV_WARP_STORES
#define GEMM_QKV_WARP_STORES 1
#endif
static_assert(GEMM_GATE_STAGGER >= 0 && GEMM_GATE_STAGGER <= GEMM_SPLIT_STAGES, "warpgroup 0 can run at most a ring's depth ahead before warpgroup 1 starts");
static_assert(!GEMM_GATE_RING || 64 % (16 * GEMM_GATE_BATCH) == 0, "a batch of the gate's reads stays inside one 64-column part of s");
static_assert(!GEMM_GATE_DIRECT_STORES || (GEMM_GATE_RING && GEMM_GATE_WARP_STORES), "du from registers needs the ring, whose parts each warp frees");

// Shared layout (pipeline.cuh): `stages` stages of an A tile (128 × 64) and a B tile (256 × 64), the two warpgroups'
// epilogue tiles (64 × 256 each, or 64 × 128 split), then the mbarriers full[s], empty[s], tile_full[w], tile_empty[w] and
// (GEMM_GATE_RING) part_full[w][2], part_empty[w][2], s_go[w].
namespace gemm_layout
{
constexpr SharedRegion stages(int count) { return first_region(count * GEMM_STAGE_BYTES); }
constexpr SharedRegion epilogue(int count, int half_bytes) { return place_after(stages(count), 2 * half_bytes); }
constexpr SharedRegion barriers(int count, int half_bytes) { return place_after(epilogue(count, half_bytes), (2 * count + 14) * 8, 8); }
// The larger of the two layouts (one launcher setting serves every kernel of the file).
constexpr int window_bytes()
{
    const int whole = shared_window_bytes(barriers(GEMM_STAGES, GEMM_HALF_BYTES));
    const int split = shared_window_bytes(barriers(GEMM_SPLIT_STAGES, GEMM_HALF_BYTES / 2));
    return whole > split ? whole : split;
}
} // namespace gemm_layout
static_assert(gemm_layout::window_bytes() <= HOPPER_MAX_SHARED_BYTES, "the GEMM's tiles exceed Hopper's shared memory");

// The launcher sets and passes this much dynamic shared memory.
extern "C" __constant__ int mlp_gemm_shared_bytes = gemm_layout::window_bytes();
// The rows of du's TMA box (its map_out) that the gradient's stores take: a warp's 16 with GEMM_GATE_WARP_STORES, else 64.
extern "C" __constant__ int mlp_gemm_du_box_rows = GEMM_GATE_RING && GEMM_GATE_WARP_STORES ? 16 : 64;
// The rows of q's, k's and v's TMA boxes (the rotary GEMM's outputs): a warp's 16 with GEMM_QKV_WARP_STORES, else 64. The fc
// kernels' outputs (s, u) take boxes of 64 rows.
extern "C" __constant__ int mlp_gemm_qkv_box_rows = GEMM_QKV_WARP_STORES ? 16 : 64;

// The products one launch runs over the same x: one for the MLP's kernels; for the q, k and v projections
// (qk_gemm_rotary_norm_*) up to three, q and k with the rotary epilogue and their rstd, v stored as the product. Part p has its
// W map w[p], output map out[p] and n[p] columns (a multiple of GEMM_BN; 0: absent). A row block's tiles run part after part, N
// fastest, so the blocks in flight share x's rows across the parts too and x is read from memory once for all of them. The
// selects below keep the parts in registers (an array indexed at run time would go to local memory).
struct GemmParts
{
    const TensorMap* w[3];
    const TensorMap* out[3];
    float* rstd[3];
    int n[3];

    __device__ __forceinline__ int column_tiles() const { return (n[0] + n[1] + n[2]) / GEMM_BN; }

    // The part of column tile c and the tile's first column in that part.
    __device__ __forceinline__ void locate(int c, int& part, int& n0) const
    {
        const int t0 = n[0] / GEMM_BN, t1 = n[1] / GEMM_BN;
        part = c < t0 ? 0 : c < t0 + t1 ? 1 : 2;
        n0 = (c - (part == 0 ? 0 : part == 1 ? t0 : t0 + t1)) * GEMM_BN;
    }
    __device__ __forceinline__ const TensorMap* w_of(int p) const { return p == 0 ? w[0] : p == 1 ? w[1] : w[2]; }
    __device__ __forceinline__ const TensorMap* out_of(int p) const { return p == 0 ? out[0] : p == 1 ? out[1] : out[2]; }
    __device__ __forceinline__ float* rstd_of(int p) const { return p == 0 ? rstd[0] : rstd[1]; }
    __device__ __forceinline__ int n_of(int p) const { return p == 0 ? n[0] : p == 1 ? n[1] : n[2]; }
};

// One product: W map w, output map out, n columns.
__device__ __forceinline__ GemmParts single_part(const TensorMap* w, const TensorMap* out, int n)
{
    return GemmParts{{w, w, w}, {out, out, out}, {nullptr, nullptr, nullptr}, {n, 0, 0}};
}

// √x in one MUFU instruction. s = relu(u)² is zero for about half the elements, and sqrtf sends zeros down its slow
// path (a call, which also costs the accumulators their registers).
__device__ __forceinline__ float fast_sqrt(float x)
{
    float y;
    asm("sqrt.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// tanh in one MUFU instruction (max relative error ~2^-11, below the bf16 output's rounding).
__device__ __forceinline__ float fast_tanh(float x)
{
    float y;
    asm("tanh.approx.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// gelu'(u) of the tanh form: 0.5·(1 + t) + 0.5·u·(1 − t²)·k·(1 + 3a·u²), t = tanh(k·(u + a·u³)).
__device__ __forceinline__ float gelu_derivative(float u)
{
    const float t = fast_tanh(GELU_K * fmaf(GELU_A * u * u, u, u));
    return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_K * fmaf(3.0f * GELU_A, u * u, 1.0f);
}

// Four 8 × 8 matrices of bf16 pairs from shared memory: lane L gives the address of row L mod 8 of matrix L / 8 and gets
// the fragment words the accumulator layout gives it (ldmatrix .x4; store_matrix_x4 writes the same layout).
__device__ __forceinline__ void load_matrix_x4(unsigned (&words)[4], unsigned address)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(words[0]), "=r"(words[1]), "=r"(words[2]), "=r"(words[3]) : "r"(address) : "memory");
}

// v rounded to four bf16 pairs and written as four 8 × 8 matrices (stmatrix .x4).
__device__ __forceinline__ void store_matrix_x4(unsigned address, const float (&v)[8])
{
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n"
                 ::"r"(address), "r"(pack_bf16(v[0], v[1])), "r"(pack_bf16(v[2], v[3])), "r"(pack_bf16(v[4], v[5])),
                   "r"(pack_bf16(v[6], v[7])) : "memory");
}

// Column pairs j and j + 1 of a thread's accumulators (rows row_lo: acc[.][0..1], row_lo + 8: acc[.][2..3]) times their rows'
// scales, in the order store_matrix_x4 takes them.
__device__ __forceinline__ void scaled_pairs(float (&v)[8], const float (&acc)[32][4], int j, float lo, float hi)
{
    v[0] = acc[j][0] * lo, v[1] = acc[j][1] * lo, v[2] = acc[j][2] * hi, v[3] = acc[j][3] * hi;
    v[4] = acc[j + 1][0] * lo, v[5] = acc[j + 1][1] * lo, v[6] = acc[j + 1][2] * hi, v[7] = acc[j + 1][3] * hi;
}

// The gradient's gate on eight values: v ⊙ act'(t), t the four bf16 pairs in words (relu²: t = s, act' = 2·sqrt(s);
// GELU: t = u, act' = gelu'(u)).
template <int ACT>
__device__ __forceinline__ void gate_values(float (&v)[8], const unsigned* words)
{
    #pragma unroll
    for (int i = 0; i < 4; i++)
    {
        const float2 t = unpack_bf16(words[i]);
        if (ACT == ACT_RELU2)
        {
            v[2 * i] *= 2.0f * fast_sqrt(t.x);
            v[2 * i + 1] *= 2.0f * fast_sqrt(t.y);
        }
        else
        {
            v[2 * i] *= gelu_derivative(t.x);
            v[2 * i + 1] *= gelu_derivative(t.y);
        }
    }
}

// An epilogue tile's 64-column slabs [first, first + count) (64 rows × 128 bytes each, 128-byte swizzle) stored to map at
// columns col + 64·slab, rows row0 ..: the whole 64 rows by the warpgroup's thread 0 (WARP false), or this warp's 16 rows
// by its lane 0 (WARP true: the map's box is 16 rows; the swizzle repeats every 8 rows, so a warp's rows start a pattern).
// The caller has fenced its writes; a warpgroup store waits for the warpgroup at its barrier first. Commits the group.
template <bool WARP>
__device__ __forceinline__ void store_tile_slabs(const TensorMap* map, unsigned tile, int count, int col, int row0, int warp, int lane,
                                                 int tid, int wg)
{
    if (WARP)
        __syncwarp();
    else
        named_barrier(1 + wg, 128);
    if (WARP ? lane == 0 : tid == 0)
    {
        #pragma unroll
        for (int slab = 0; slab < count; slab++)
        {
            if (WARP)
                tma_store(map, tile + slab * 64 * 64 * 2 + (warp & 3) * 16 * 128, col + 64 * slab, row0 + 16 * (warp & 3));
            else
                tma_store(map, tile + slab * 64 * 64 * 2, col + 64 * slab, row0);
        }
        tma_store_commit();
    }
}

// Waits until the stores store_tile_slabs issued have read the tile (the warp's own with WARP, else the warpgroup's).
template <bool WARP>
__device__ __forceinline__ void await_tile_read(int lane, int tid, int wg)
{
    if (WARP ? lane == 0 : tid == 0)
        tma_store_wait_read();
    if (WARP)
        __syncwarp();
    else
        named_barrier(1 + wg, 128);
}

// A 4 × 4 block of words over the four lanes of a quad (tig = lane mod 4), transposed: lane t's w[x] becomes lane x's w[t]
// as it was. Two rounds of shfl.xor, each swapping one bit of the lane against the same bit of the index: 8 shuffles and 12
// selects. With w[x] a bf16 pair of column block x at the lane's column 2·tig, afterwards lane t holds the four pairs of
// column block t in column order: 16 contiguous bytes of the row.
__device__ __forceinline__ void transpose_quad(unsigned (&w)[4], int tig)
{
    #pragma unroll
    for (int bit = 1; bit <= 2; bit <<= 1)
    {
        const bool high = (tig & bit) != 0;
        #pragma unroll
        for (int x = 0; x < 4; x++)
        {
            if (x & bit)
                continue;
            // Words x and x | bit: the lane keeps the one whose bit matches its own and trades the other with lane tig ^ bit.
            const unsigned sent = high ? w[x] : w[x | bit];
            const unsigned got = __shfl_xor_sync(0xffffffffu, sent, bit);
            w[x] = high ? got : w[x];
            w[x | bit] = high ? w[x | bit] : got;
        }
    }
}

// The rotary GEMM's epilogue on one thread's accumulators: rows row_lo and row_lo + 8 of the tile (acc[j][0..1] and
// acc[j][2..3]), columns n0 + 8j + 2·tig (+1). A head's D columns are D/8 consecutive j, its halves D/16 apart, so a thread
// holds both members of each rotated pair; the sum of squares of a head's row is the thread's part added over the 4 threads
// of its quad (the lanes sharing lane / 4). The table's words for those rows (rotary_table_words) are loaded before the tile's
// last products finish, so their trip from L2 runs under them.
template <int ROT_D>
__device__ __forceinline__ void rotary_table_words(uint2 (&words)[ROT_D / 16][2], const unsigned* __restrict__ cos_sin, int row_lo,
                                                   int seq_len, int tig)
{
    const unsigned* cs_lo = cos_sin + (long)(row_lo % seq_len) * (ROT_D / 2);
    const unsigned* cs_hi = cos_sin + (long)((row_lo + 8) % seq_len) * (ROT_D / 2);
    #pragma unroll
    for (int jj = 0; jj < ROT_D / 16; jj++)
    {
        // The (cos, sin) pairs of columns 8jj + 2tig and the next, in the head's first half.
        words[jj][0] = *reinterpret_cast<const uint2*>(cs_lo + 8 * jj + 2 * tig);
        words[jj][1] = *reinterpret_cast<const uint2*>(cs_hi + 8 * jj + 2 * tig);
    }
}

template <int ROT_D>
__device__ __forceinline__ void rotary_norm_epilogue(float acc[32][4], const uint2 (&words)[ROT_D / 16][2], float* __restrict__ rstd,
                                                     int row_lo, int n0, int n, int tig)
{
    constexpr int J = ROT_D / 8, HALF_J = J / 2, HEADS = GEMM_BN / ROT_D;
    // The GEMM's bf16 output, rounded two values a conversion (cvt.rn.bf16x2.f32) and unpacked by shifts: the same bits as one
    // value a conversion, 64 instructions a thread fewer, and the q k v launch 1.6–1.8 % faster on an H100
    // (bench/results/H100-profile.md). The rotary arithmetic is issue-bound: 0.70 of the launch's 5.84 ms a micro-step.
    #pragma unroll
    for (int j = 0; j < 32; j++)
    {
        #pragma unroll
        for (int i = 0; i < 4; i += 2)
        {
            const float2 r = unpack_bf16(pack_bf16(acc[j][i], acc[j][i + 1]));
            acc[j][i] = r.x;
            acc[j][i + 1] = r.y;
        }
    }
    float sum[HEADS][2];
    #pragma unroll
    for (int hh = 0; hh < HEADS; hh++)
        sum[hh][0] = sum[hh][1] = 0.0f;
    #pragma unroll
    for (int jj = 0; jj < HALF_J; jj++)
    {
        const uint2 p_lo = words[jj][0], p_hi = words[jj][1]; // (cos, sin) of columns 8jj + 2tig and + 1, rows lo and hi
        const float2 lo0 = unpack_bf16(p_lo.x), lo1 = unpack_bf16(p_lo.y), hi0 = unpack_bf16(p_hi.x), hi1 = unpack_bf16(p_hi.y);
        const float c[4] = {lo0.x, lo1.x, hi0.x, hi1.x}, sn[4] = {lo0.y, lo1.y, hi0.y, hi1.y};
        #pragma unroll
        for (int hh = 0; hh < HEADS; hh++)
        {
            const int j1 = hh * J + jj, j2 = j1 + HALF_J;
            #pragma unroll
            for (int i = 0; i < 4; i++)
            {
                const float a = acc[j1][i], b = acc[j2][i];
                const float ra = a * c[i] + b * sn[i], rb = -a * sn[i] + b * c[i];
                acc[j1][i] = ra;
                acc[j2][i] = rb;
                sum[hh][i >> 1] += ra * ra + rb * rb;
            }
        }
    }
    const int heads = n / ROT_D;
    #pragma unroll
    for (int hh = 0; hh < HEADS; hh++)
    {
        #pragma unroll
        for (int r = 0; r < 2; r++)
        {
            float total = sum[hh][r];
            total += __shfl_xor_sync(0xffffffffu, total, 1);
            total += __shfl_xor_sync(0xffffffffu, total, 2);
            const float inv = rsqrtf(total / (float)ROT_D + RMS_EPS);
            #pragma unroll
            for (int j = hh * J; j < hh * J + J; j++)
            {
                acc[j][2 * r] *= inv;
                acc[j][2 * r + 1] *= inv;
            }
            if (tig == 0)
                rstd[(long)(row_lo + 8 * r) * heads + n0 / ROT_D + hh] = inv;
        }
    }
}

// GRADIENT false (the fc GEMM): W is [N, K]; ACT_RELU2: s = relu(acc)²; ACT_GELU: u = acc and s = gelu(acc) (map_u, map_out).
// GRADIENT true (c_proj's input gradient): W is [K, N]; du = acc·act'(t) with t the tile map_s loads into the epilogue tile
// (relu²: s, act' = 2·sqrt(s); GELU: u, act' = gelu'(u)).
// ACT_ROTARY (GRADIENT false, ROT_D the head size): parts 0 and 1 (q and k) y = norm(rotary(bf16(x·Wᵀ))) per head of ROT_D
// columns, as rotary.cu's rotary_qknorm_forward computes it from the GEMM's bf16 output: the accumulators are rounded to bf16
// first, then each head's halves a, b (columns j and j + D/2) rotated by cos_sin's row t = row mod seq_len, and the head's RMS
// taken over its D values; rstd[row · (n / D) + head] keeps 1/rms for the backward. Part 2 (v) y = x·Wᵀ.
// Every other kernel has one part (single_part).
// NORM (the fc kernels): the rows are scaled by 1/rms of x's row instead of row_scale, summed from the A fragments the
// products take from registers, and the tiles of the first column write those scales to rstd_out.
template <bool GRADIENT, int ACT, int ROT_D = 0, bool NORM = false>
__device__ __forceinline__ void mlp_gemm(const TensorMap* map_x, const GemmParts& parts, const TensorMap* map_s, const TensorMap* map_u,
                                         const float* __restrict__ row_scale, int m, int k, const unsigned* __restrict__ cos_sin = nullptr,
                                         int seq_len = 0, bf16* __restrict__ du = nullptr, float* __restrict__ rstd_out = nullptr)
{
    constexpr bool W_N_MAJOR = GRADIENT, GATE = GRADIENT;
    // The relu² forward's split epilogue (two passes of 128 columns through a tile half the size), fourth stage and stagger.
    constexpr bool SPLIT = GEMM_FC_SPLIT && !GATE && ACT == ACT_RELU2;
    // The gradient: s through a ring of two parts a warpgroup, a fourth stage and staggered warpgroups.
    constexpr bool RING = GATE && GEMM_GATE_RING;
    constexpr int STAGGER = SPLIT ? GEMM_FC_STAGGER : RING ? GEMM_GATE_STAGGER : 0;
    constexpr int STAGES = SPLIT || RING ? GEMM_SPLIT_STAGES : GEMM_STAGES, PASSES = SPLIT ? 2 : 1, PASS_COLS = GEMM_BN / PASSES;
    constexpr int HALF_BYTES = SPLIT || RING ? GEMM_HALF_BYTES / 2 : GEMM_HALF_BYTES;
    constexpr int PART_BYTES = 64 * 64 * 2;
    constexpr bool WARP_OUT = ACT == ACT_ROTARY && GEMM_QKV_WARP_STORES;
    static_assert(!NORM || (!GATE && ACT != ACT_ROTARY), "only the fc kernels compute their row scales");
    extern __shared__ unsigned char shared_raw[];
    const unsigned base = aligned_shared_base(shared_raw);
    const unsigned epilogue = base + gemm_layout::epilogue(STAGES, HALF_BYTES).offset, bars = base + gemm_layout::barriers(STAGES, HALF_BYTES).offset;
    // The k-block ring: full[s] the TMA's bytes, empty[s] one arrival a math warp. Warpgroup w's epilogue tile (a ring of
    // one, used once a tile; GEMM_GATE_RING 0's only): tile_full[w] the TMA's bytes of s, tile_empty[w] its stores have read it.
    const Pipeline<STAGES> ring{bars, bars + 8 * STAGES};
    const unsigned tile_full = bars + 16 * STAGES, tile_empty = tile_full + 16;
    // The gradient's rings: warpgroup w's parts of s, part_full[w][slot] the TMA's bytes, part_empty[w][slot] its store has read
    // the part; s_go[w] the warpgroup's signal to its producer, once a tile.
    const unsigned part_full = tile_empty + 16, part_empty = part_full + 32, s_go = part_empty + 32;
    const int warp = threadIdx.x >> 5;
    if (threadIdx.x == 0)
    {
        ring.init(1, 8);
        for (int w = 0; w < 2; w++)
        {
            Pipeline<1>{tile_full + 8 * w, tile_empty + 8 * w}.init(1, 1);
            Pipeline<2>{part_full + 16 * w, part_empty + 16 * w}.init(1, GEMM_GATE_WARP_STORES ? 4 : 1);
            mbarrier_init(s_go + 8 * w, 1);
        }
        mbarrier_init_fence();
    }
    __syncthreads();

    const int n_tiles = parts.column_tiles(), tiles = (m / GEMM_BM) * n_tiles, k_blocks = k / GEMM_BK;
    if (warp >= 8)
    {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 56;\n" ::: "memory");
        if constexpr (RING)
        {
            if ((warp == 9 || warp == 10) && (threadIdx.x & 31) == 0)
            {
                // Warpgroup w's producer of s: the same tiles in the same order as the math warps.
                const int w = warp - 9;
                const Pipeline<2> part_ring{part_full + 16 * w, part_empty + 16 * w};
                PipelineState<2> part_state{0, 0};
                tensormap_prefetch(map_s);
                int n = 0;
                for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x, n++)
                {
                    const int m0 = (tile / n_tiles) * GEMM_BM;
                    int part, n0;
                    parts.locate(tile % n_tiles, part, n0);
                    mbarrier_wait(s_go + 8 * w, n & 1);
                    #pragma unroll
                    for (int c = 2; c < GEMM_BN / 64; c++)
                        tma_prefetch_l2(map_s, n0 + 64 * c, m0 + 64 * w);
                    for (int c = 0; c < GEMM_BN / 64; c++)
                    {
                        part_ring.acquire(part_state);
                        part_ring.expect_bytes(part_state.stage, PART_BYTES);
                        tma_load(epilogue + w * HALF_BYTES + part_state.stage * PART_BYTES, map_s, n0 + 64 * c, m0 + 64 * w,
                                 part_ring.full_at(part_state.stage));
                        part_state.advance();
                    }
                }
                return;
            }
        }
        if (threadIdx.x != 256)
            return;
        tensormap_prefetch(map_x);
        for (int p = 0; p < 3; p++)
        {
            if (parts.n_of(p) > 0)
                tensormap_prefetch(parts.w_of(p));
        }
        PipelineState<STAGES> state{0, 0};
        PipelineState<1> tile_state{0, 0};
        for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x)
        {
            const int m0 = (tile / n_tiles) * GEMM_BM;
            int part, n0;
            parts.locate(tile % n_tiles, part, n0);
            const TensorMap* map_w = parts.w_of(part);
            for (int kb = 0; kb < k_blocks; kb++)
            {
                ring.acquire(state);
                const unsigned a = base + gemm_layout::stages(STAGES).offset + state.stage * GEMM_STAGE_BYTES, b = a + GEMM_A_BYTES,
                               bar = ring.full_at(state.stage);
                ring.expect_bytes(state.stage, GEMM_STAGE_BYTES);
                tma_load(a, map_x, kb * GEMM_BK, m0, bar);
                if (W_N_MAJOR)
                {
                    #pragma unroll
                    for (int slab = 0; slab < GEMM_BN / 64; slab++)
                        tma_load(b + slab * 64 * GEMM_BK * 2, map_w, n0 + 64 * slab, kb * GEMM_BK, bar);
                }
                else
                    tma_load(b, map_w, kb * GEMM_BK, n0, bar);
                state.advance();
                // s for this tile's epilogue, after its last stage: the k-blocks never queue behind the last epilogue. (Loading
                // it from a second producer thread as soon as the tile is free, early in the products, measured 2 ms slower a
                // micro-step on the H200: the s loads then compete with the k-blocks'.)
                if (GATE && !RING && kb == k_blocks - 1)
                {
                    for (int w = 0; w < 2; w++)
                    {
                        const Pipeline<1> half_ring{tile_full + 8 * w, tile_empty + 8 * w};
                        half_ring.acquire(tile_state);
                        half_ring.expect_bytes(0, HALF_BYTES);
                        const unsigned half = epilogue + w * HALF_BYTES;
                        #pragma unroll
                        for (int slab = 0; slab < GEMM_BN / 64; slab++)
                            tma_load(half + slab * 64 * 64 * 2, map_s, n0 + 64 * slab, m0 + 64 * w, half_ring.full_at(0));
                    }
                    tile_state.advance();
                }
            }
        }
        return;
    }

    // Math warpgroup wg: rows 64·wg .. 64·wg + 63 of each tile.
    asm volatile("setmaxnreg.inc.sync.aligned.u32 224;\n" ::: "memory");
    const int wg = warp >> 2, tid = threadIdx.x & 127, lane = threadIdx.x & 31;
    // The epilogue's ldmatrix and stmatrix move four 8 × 8 matrices at a time (columns 8j .. 8j + 15, rows r and r + 8 of the
    // warp's 16): lane L addresses row L mod 8 of matrix L / 8, and holds the fragment words the accumulator layout gives it.
    const int q = lane >> 3, q_row = 16 * (warp & 3) + 8 * (q & 1) + (lane & 7), q_col = 8 * (q >> 1);
    const unsigned half_address = epilogue + wg * HALF_BYTES;
    const Pipeline<1> half_ring{tile_full + 8 * wg, tile_empty + 8 * wg};
    float acc[32][4];
    PipelineState<STAGES> state{0, 0};
    PipelineState<1> tile_state{0, 0};
    PipelineState<2> part_state{0, 0};
    const Pipeline<2> part_ring{part_full + 16 * wg, part_empty + 16 * wg};
    (void)part_state;
    (void)part_ring;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x)
    {
        const int m0 = (tile / n_tiles) * GEMM_BM;
        int part, n0;
        parts.locate(tile % n_tiles, part, n0);
        // This thread's accumulator rows, row_lo and row_lo + 8 (group and group + 8 of its warp's 16), and their row scales, read
        // before the products.
        const int row_lo = m0 + 64 * wg + 16 * (warp & 3) + (lane >> 2);
        float scale_lo = row_scale != nullptr && !NORM ? row_scale[row_lo] : 1.0f;
        float scale_hi = row_scale != nullptr && !NORM ? row_scale[row_lo + 8] : 1.0f;
        float sq_lo = 0.0f, sq_hi = 0.0f; // NORM: the sums of squares of x's rows row_lo and row_lo + 8 (this thread's part)
        int previous = 0;
        const bool first_tile = tile == (int)blockIdx.x;
        if (STAGGER > 0 && wg == 1 && first_tile)
            named_barrier(3, 256); // warpgroup 0 arrives once it has issued its first STAGGER k-blocks
        // The squares of one k-block's fragments added to the rows' sums: frag[kk][0] and [2] hold row row_lo, [1] and [3] row
        // row_lo + 8 (two values a word). Only once the products that read frag have finished: PTX leaves an access to a
        // wgmma's A registers before the wait that retires it undefined.
        auto add_squares = [&](const unsigned (&frag)[GEMM_BK / 16][4])
        {
            #pragma unroll
            for (int kk = 0; kk < GEMM_BK / 16; kk++)
            {
                #pragma unroll
                for (int i = 0; i < 4; i++)
                {
                    const float2 f = unpack_bf16(frag[kk][i]);
                    float& sq = (i & 1) ? sq_hi : sq_lo;
                    sq = fmaf(f.x, f.x, sq);
                    sq = fmaf(f.y, f.y, sq);
                }
            }
        };
        // One k-block: wait for its stage, issue its products, hand back the stage of the block before. With NORM the warp first
        // takes its 16 rows of the block into frag (the A fragments of the four k-steps, rows row_lo and row_lo + 8) and the
        // products read A from there; once the wait has retired the block before, its fragments (before) are summed while
        // this block's products run. frag must not be rewritten before the products that read it have finished, so the loop
        // below alternates two of them; the last block's are summed after the loop's final wait.
        auto k_block = [&](int kb, unsigned (&frag)[GEMM_BK / 16][4], const unsigned (&before)[GEMM_BK / 16][4])
        {
            ring.wait(state);
            const unsigned stage_address = base + gemm_layout::stages(STAGES).offset + state.stage * GEMM_STAGE_BYTES;
            const unsigned a = stage_address + wg * 64 * 128, b = stage_address + GEMM_A_BYTES;
            if constexpr (NORM)
            {
                #pragma unroll
                for (int kk = 0; kk < GEMM_BK / 16; kk++)
                    load_matrix_x4(frag[kk], a + 2 * sw128(q_row, 16 * kk + q_col, 64));
            }
            wgmma_fence();
            #pragma unroll
            for (int kk = 0; kk < GEMM_BK / 16; kk++)
            {
                const unsigned long long db = W_N_MAJOR ? mnmajor_descriptor(b, GEMM_BK, kk, 0) : kmajor_descriptor(b, GEMM_BN, kk);
                if constexpr (NORM)
                    wgmma_rs_n256<0>(acc, frag[kk], db, (kb | kk) != 0);
                else
                    wgmma_ss_n256<0, W_N_MAJOR ? 1 : 0>(acc, kmajor_descriptor(a, 64, kk), db, (kb | kk) != 0);
            }
            wgmma_commit();
            // The products of the block before have finished reading their stage: hand it back.
            wgmma_wait<1>();
            if constexpr (NORM)
            {
                if (kb > 0)
                    add_squares(before);
            }
            if (kb > 0 && lane == 0)
                ring.release(previous);
            previous = state.stage;
            state.advance();
            if (STAGGER > 0 && wg == 0 && first_tile && kb == min(k_blocks, STAGGER) - 1)
                asm volatile("bar.arrive 3, 256;\n" ::: "memory");
            if (RING && tid == 0 && kb == max(0, k_blocks - GEMM_GATE_S_LEAD))
                mbarrier_arrive(s_go + 8 * wg); // this warpgroup's producer may load the tile's s
        };
        unsigned frag[2][GEMM_BK / 16][4];
        if constexpr (NORM)
        {
            for (int kb = 0; kb < k_blocks; kb += 2)
            {
                k_block(kb, frag[0], frag[1]);
                if (kb + 1 < k_blocks)
                    k_block(kb + 1, frag[1], frag[0]);
            }
        }
        else
        {
            for (int kb = 0; kb < k_blocks; kb++)
                k_block(kb, frag[0], frag[1]);
        }
        // The rotary table's words for the epilogue, loaded while the last products run (for v's tiles too: no branch here).
        // Asked for at the tile's start instead, they made the q k launch 2.2 % slower on an H100 (bench/results/H100-profile.md).
        uint2 table_words[ACT == ACT_ROTARY ? ROT_D / 16 : 1][2];
        if constexpr (ACT == ACT_ROTARY)
            rotary_table_words<ROT_D>(table_words, cos_sin, row_lo, seq_len, lane & 3);
        (void)table_words;
        wgmma_wait<0>();
        #pragma unroll
        for (int j = 0; j < 32; j++)
            asm volatile("" : "+f"(acc[j][0]), "+f"(acc[j][1]), "+f"(acc[j][2]), "+f"(acc[j][3])::"memory");
        if (lane == 0)
            ring.release(previous);
        if constexpr (NORM)
        {
            // The last block's fragments, now that wgmma_wait<0> has retired its products (two branches keep frag's index
            // constant: an index known only at run time would put frag in local memory).
            if ((k_blocks - 1) & 1)
                add_squares(frag[1]);
            else
                add_squares(frag[0]);
            // The quad's four lanes hold the row's columns between them; its scale as rmsnorm_forward computes it.
            sq_lo += __shfl_xor_sync(0xffffffffu, sq_lo, 1);
            sq_lo += __shfl_xor_sync(0xffffffffu, sq_lo, 2);
            sq_hi += __shfl_xor_sync(0xffffffffu, sq_hi, 1);
            sq_hi += __shfl_xor_sync(0xffffffffu, sq_hi, 2);
            scale_lo = rsqrtf(sq_lo / k + RMS_EPS);
            scale_hi = rsqrtf(sq_hi / k + RMS_EPS);
            if (n0 == 0 && (lane & 3) == 0)
            {
                rstd_out[row_lo] = scale_lo;
                rstd_out[row_lo + 8] = scale_hi;
            }
        }
        if constexpr (ACT == ACT_ROTARY)
        {
            if (part < 2) // the same for the whole block: v's tile is stored as the product
                rotary_norm_epilogue<ROT_D>(acc, table_words, parts.rstd_of(part), row_lo, n0, parts.n_of(part), lane & 3);
        }

        if constexpr (RING && GEMM_GATE_DIRECT_STORES)
        {
            // The gate part by part from registers: wait for the part of s, read this warp's 16 rows of it, gate, free the part
            // for part c + 2, then store du's rows 16 bytes a lane.
            bf16* out_lo = du + (long)row_lo * parts.n[0] + n0;
            #pragma unroll
            for (int c = 0; c < GEMM_BN / 64; c++)
            {
                part_ring.wait(part_state);
                const int slot = part_state.stage;
                const unsigned part_address = half_address + slot * PART_BYTES;
                unsigned words[4][4];
                #pragma unroll
                for (int b = 0; b < 4; b++)
                    load_matrix_x4(words[b], part_address + 2 * sw128(q_row, 16 * b + q_col, 64));
                // gated[r][x]: du's pair of row row_lo + 8r at column 8·(8c + x) + 2·tig.
                unsigned gated[2][8];
                #pragma unroll
                for (int b = 0; b < 4; b++)
                {
                    float v[8];
                    scaled_pairs(v, acc, 8 * c + 2 * b, scale_lo, scale_hi);
                    gate_values<ACT>(v, words[b]);
                    gated[0][2 * b] = pack_bf16(v[0], v[1]);
                    gated[1][2 * b] = pack_bf16(v[2], v[3]);
                    gated[0][2 * b + 1] = pack_bf16(v[4], v[5]);
                    gated[1][2 * b + 1] = pack_bf16(v[6], v[7]);
                }
                // Every lane's reads of the part have been consumed: the warp frees it.
                __syncwarp();
                if (lane == 0)
                    part_ring.release(slot);
                part_state.advance();
                #pragma unroll
                for (int r = 0; r < 2; r++)
                {
                    #pragma unroll
                    for (int x0 = 0; x0 < 8; x0 += 4)
                    {
                        unsigned w[4] = {gated[r][x0], gated[r][x0 + 1], gated[r][x0 + 2], gated[r][x0 + 3]};
                        transpose_quad(w, lane & 3);
                        *reinterpret_cast<uint4*>(out_lo + (long)(8 * r) * parts.n[0] + 64 * c + 8 * (x0 + (lane & 3))) =
                            make_uint4(w[0], w[1], w[2], w[3]);
                    }
                }
            }
            continue;
        }
        if constexpr (RING)
        {
            // The gate part by part: wait for the part of s, gate it into du in place, store it, and free it for part c + 2.
            #pragma unroll
            for (int c = 0; c < GEMM_BN / 64; c++)
            {
                part_ring.wait(part_state);
                const int slot = part_state.stage;
                const unsigned part_address = half_address + slot * PART_BYTES;
                unsigned words[GEMM_GATE_BATCH][4];
                #pragma unroll
                for (int j = 8 * c; j < 8 * c + 8; j += 2)
                {
                    if ((j / 2) % GEMM_GATE_BATCH == 0)
                    {
                        #pragma unroll
                        for (int b = 0; b < GEMM_GATE_BATCH; b++)
                        {
                            load_matrix_x4(words[b], part_address + 2 * sw128(q_row, 8 * (j + 2 * b) - 64 * c + q_col, 64));
                        }
                    }
                    float v[8];
                    scaled_pairs(v, acc, j, scale_lo, scale_hi);
                    gate_values<ACT>(v, words[(j / 2) % GEMM_GATE_BATCH]);
                    store_matrix_x4(part_address + 2 * sw128(q_row, 8 * j - 64 * c + q_col, 64), v);
                }
                fence_async_shared();
                // With GEMM_GATE_WARP_STORES, this warp's 16 rows; else the warpgroup's 64, by its thread 0.
                store_tile_slabs<GEMM_GATE_WARP_STORES != 0>(parts.out_of(part), part_address, 1, n0 + 64 * c, m0 + 64 * wg, warp, lane,
                                                              tid, wg);
                if (GEMM_GATE_WARP_STORES ? lane == 0 : tid == 0)
                {
                    tma_store_wait_read();
                    part_ring.release(slot);
                }
                part_state.advance();
            }
            continue;
        }
        if (GATE)
        {
            half_ring.wait(tile_state);
            tile_state.advance();
        }
        else
        {
            // The last tile's stores must have read the epilogue tile before it is rewritten.
            await_tile_read<WARP_OUT>(lane, tid, wg);
        }
        if (!GATE && ACT == ACT_GELU)
        {
            // u first: the tile, then its store, which must have read the tile before s overwrites it.
            #pragma unroll
            for (int j = 0; j < GEMM_BN / 8; j += 2)
            {
                float u[8];
                scaled_pairs(u, acc, j, scale_lo, scale_hi);
                store_matrix_x4(half_address + 2 * sw128(q_row, 8 * j + q_col, 64), u);
            }
            fence_async_shared();
            store_tile_slabs<WARP_OUT>(map_u, half_address, GEMM_BN / 64, n0, m0 + 64 * wg, warp, lane, tid, wg);
            // s = gelu(u) in the accumulators (scaled, as u was) while the store reads the tile: the tanh and the FMAs
            // overlap the store's wait instead of following it.
            #pragma unroll
            for (int j = 0; j < GEMM_BN / 8; j++)
            {
                #pragma unroll
                for (int i = 0; i < 4; i++)
                {
                    const float v = acc[j][i] * (i < 2 ? scale_lo : scale_hi);
                    acc[j][i] = 0.5f * v * (1.0f + fast_tanh(GELU_K * fmaf(GELU_A * v * v, v, v)));
                }
            }
            await_tile_read<WARP_OUT>(lane, tid, wg);
        }
        // The GELU forward's accumulators already hold s (above), the rotary GEMM's its output: no scale, no activation here.
        constexpr bool DONE = !GATE && (ACT == ACT_GELU || ACT == ACT_ROTARY);
        const float s_lo = DONE ? 1.0f : scale_lo, s_hi = DONE ? 1.0f : scale_hi;
        unsigned s_words[GEMM_GATE_BATCH][4];
        #pragma unroll
        for (int pass = 0; pass < PASSES; pass++)
        {
            if (pass > 0)
            {
                // The pass before's store must have read the tile.
                await_tile_read<WARP_OUT>(lane, tid, wg);
            }
            #pragma unroll
            for (int j = pass * (PASS_COLS / 8); j < (pass + 1) * (PASS_COLS / 8); j += 2)
            {
                if (GATE && (j / 2) % GEMM_GATE_BATCH == 0)
                {
                    #pragma unroll
                    for (int b = 0; b < GEMM_GATE_BATCH; b++)
                    {
                        load_matrix_x4(s_words[b], half_address + 2 * sw128(q_row, 8 * (j + 2 * b) + q_col, 64));
                    }
                }
                const unsigned address = half_address + 2 * sw128(q_row, 8 * j - pass * PASS_COLS + q_col, 64);
                float v[8];
                scaled_pairs(v, acc, j, s_lo, s_hi);
                if (GATE)
                    gate_values<ACT>(v, s_words[(j / 2) % GEMM_GATE_BATCH]);
                else if (ACT == ACT_RELU2)
                {
                    #pragma unroll
                    for (int i = 0; i < 8; i++)
                    {
                        v[i] = fmaxf(v[i], 0.0f);
                        v[i] *= v[i];
                    }
                }
                store_matrix_x4(address, v);
            }
            fence_async_shared();
            store_tile_slabs<WARP_OUT>(parts.out_of(part), half_address, PASS_COLS / 64, n0 + pass * PASS_COLS, m0 + 64 * wg, warp, lane,
                                       tid, wg);
            if (GATE && tid == 0)
            {
                tma_store_wait_read();
                half_ring.release(0);
            }
        }
    }
    if ((RING && GEMM_GATE_WARP_STORES) || WARP_OUT ? lane == 0 : tid == 0)
        tma_store_wait();
}

#if !defined(MLP_GEMM_ONE) || defined(MLP_GEMM_ONE_mlp_fc_relu_square)
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
mlp_fc_relu_square(const __grid_constant__ TensorMap map_x, const __grid_constant__ TensorMap map_w,
                   const __grid_constant__ TensorMap map_out, float* row_scale, int m, int n, int k, int norm_rows)
{
    if (norm_rows)
        mlp_gemm<false, ACT_RELU2, 0, true>(&map_x, single_part(&map_w, &map_out, n), nullptr, nullptr, nullptr, m, k, nullptr, 0, nullptr, row_scale);
    else
        mlp_gemm<false, ACT_RELU2>(&map_x, single_part(&map_w, &map_out, n), nullptr, nullptr, row_scale, m, k);
}
#endif

#if !defined(MLP_GEMM_ONE) || defined(MLP_GEMM_ONE_mlp_proj_input_gradient)
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
mlp_proj_input_gradient(const __grid_constant__ TensorMap map_g, const __grid_constant__ TensorMap map_w,
                        const __grid_constant__ TensorMap map_s, const __grid_constant__ TensorMap map_out, const float* row_scale,
                        int m, int n, int k, bf16* du)
{
    mlp_gemm<true, ACT_RELU2>(&map_g, single_part(&map_w, &map_out, n), &map_s, nullptr, row_scale, m, k, nullptr, 0, du);
}
#endif

#if !defined(MLP_GEMM_ONE) || defined(MLP_GEMM_ONE_mlp_fc_gelu)
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
mlp_fc_gelu(const __grid_constant__ TensorMap map_x, const __grid_constant__ TensorMap map_w, const __grid_constant__ TensorMap map_u,
            const __grid_constant__ TensorMap map_out, float* row_scale, int m, int n, int k, int norm_rows)
{
    if (norm_rows)
        mlp_gemm<false, ACT_GELU, 0, true>(&map_x, single_part(&map_w, &map_out, n), nullptr, &map_u, nullptr, m, k, nullptr, 0, nullptr, row_scale);
    else
        mlp_gemm<false, ACT_GELU>(&map_x, single_part(&map_w, &map_out, n), nullptr, &map_u, row_scale, m, k);
}
#endif

#if !defined(MLP_GEMM_ONE) || defined(MLP_GEMM_ONE_mlp_proj_input_gradient_gelu)
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
mlp_proj_input_gradient_gelu(const __grid_constant__ TensorMap map_g, const __grid_constant__ TensorMap map_w,
                             const __grid_constant__ TensorMap map_u, const __grid_constant__ TensorMap map_out, const float* row_scale,
                             int m, int n, int k, bf16* du)
{
    mlp_gemm<true, ACT_GELU>(&map_g, single_part(&map_w, &map_out, n), &map_u, nullptr, row_scale, m, k, nullptr, 0, du);
}
#endif

// The q and k projections with the rotary embedding and QK-norm in their epilogue (ACT_ROTARY above), for heads of 128 or 64,
// and the v projection, in one launch over the same x: x [M, K] the normed attention input; W_q [N_q, K], W_k [N_k, K] and
// W_v [N_v, K] (c_q, c_k, c_v); q [M, N_q] and k [M, N_k] bf16 (written, box {64, 64}) with rstd_q [M · N_q / D] and rstd_k
// [M · N_k / D] fp32; v [M, N_v] = x·W_vᵀ bf16 (the model's N_v is N_k). N_k or N_v 0: that part is absent (the maps of an
// absent part are never read; pass any valid ones), so one projection alone is N_q with the other two 0. Each N a multiple
// of 256 (whole heads in a tile).
// cos_sin [seq_len, D/2] the rotary table as bf16 (cos, sin) pairs (common.cuh).
// qk_gemm_takes_v tells the launcher whether to give this kernel v's product (QK_GEMM_TAKES_V 0: cuBLAS computes it).
#if !defined(MLP_GEMM_ONE) || defined(MLP_GEMM_ONE_qk_gemm_rotary_norm_128) || defined(MLP_GEMM_ONE_qk_gemm_rotary_norm_64)
#ifndef QK_GEMM_TAKES_V
#define QK_GEMM_TAKES_V 0
#endif
extern "C" __constant__ int qk_gemm_takes_v = QK_GEMM_TAKES_V;
#endif

#if !defined(MLP_GEMM_ONE) || defined(MLP_GEMM_ONE_qk_gemm_rotary_norm_128)
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
qk_gemm_rotary_norm_128(const __grid_constant__ TensorMap map_x, const __grid_constant__ TensorMap map_wq, const __grid_constant__ TensorMap map_wk,
                       const __grid_constant__ TensorMap map_wv, const __grid_constant__ TensorMap map_q, const __grid_constant__ TensorMap map_k,
                       const __grid_constant__ TensorMap map_v, const unsigned* cos_sin, float* rstd_q, float* rstd_k, int m, int n_q, int n_k,
                       int n_v, int k, int seq_len)
{
    const GemmParts parts{{&map_wq, &map_wk, &map_wv}, {&map_q, &map_k, &map_v}, {rstd_q, rstd_k, nullptr}, {n_q, n_k, n_v}};
    mlp_gemm<false, ACT_ROTARY, 128>(&map_x, parts, nullptr, nullptr, nullptr, m, k, cos_sin, seq_len);
}
#endif

#if !defined(MLP_GEMM_ONE) || defined(MLP_GEMM_ONE_qk_gemm_rotary_norm_64)
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
qk_gemm_rotary_norm_64(const __grid_constant__ TensorMap map_x, const __grid_constant__ TensorMap map_wq, const __grid_constant__ TensorMap map_wk,
                       const __grid_constant__ TensorMap map_wv, const __grid_constant__ TensorMap map_q, const __grid_constant__ TensorMap map_k,
                       const __grid_constant__ TensorMap map_v, const unsigned* cos_sin, float* rstd_q, float* rstd_k, int m, int n_q, int n_k,
                       int n_v, int k, int seq_len)
{
    const GemmParts parts{{&map_wq, &map_wk, &map_wv}, {&map_q, &map_k, &map_v}, {rstd_q, rstd_k, nullptr}, {n_q, n_k, n_v}};
    mlp_gemm<false, ACT_ROTARY, 64>(&map_x, parts, nullptr, nullptr, nullptr, m, k, cos_sin, seq_len);
}
#endif

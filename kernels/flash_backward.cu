// flash_backward.cu: causal sliding-window attention backward, head dim 128, FA2 style on tensor cores (mma.sync m16n8k16).
//
// From the forward's q, k, v, o, lse and the output gradient do (all [B, T, H, 128] bf16; lse [B, H, T] fp32):
//   P = exp(q·kᵀ·scale − lse) on visible pairs (t − W ≤ s ≤ t), D_t = Σ_d do·o,
//   dV = Pᵀ·dO,  dS = P ∘ (dO·Vᵀ − D),  dK = dSᵀ·Q·scale,  dQ = dS·K·scale.
// flash_attention_backward_prepare: D [B, H, T] fp32 (written) and the fp32 dq accumulator [B, T, H, 128] zeroed.
//   Launch: one warp per (b, t, h) row, 8 warps per block.
// flash_attention_backward: one CTA per 64-key block (grid (ceil(T / 64), B·H), 128 threads, 4 warps × 16 keys); it loops over
//   the 64-query blocks that can see its keys, keeps dK and dV in registers and writes them (bf16) at the end; dQ is added to
//   the fp32 accumulator with vector atomics. Dynamic shared memory (swizzled tiles, flash_common.cuh): K and V (64 × 128 bf16
//   each), two stages of Q, dO (64 × 128 bf16 each), lse and D (64 fp32 each), copied asynchronously one query block ahead;
//   and dSᵀ (64 × 64 bf16).
// flash_attention_backward_finish: dq (bf16) = the fp32 accumulator. Any 1-D grid of 256-thread blocks.
// dq, dk and dv may be rows of a wider matrix: grad_stride elements from one token's row to the next (H·128 when dense), e.g.
// one [B·T, 3·H·128] matrix holding dq | dk | dv, so the q, k, v projections' backward is one GEMM.
#include "flash_common.cuh"

extern "C" __global__ void flash_attention_backward_prepare(const bf16* __restrict__ o, const bf16* __restrict__ dout,
    float* __restrict__ d, float* __restrict__ dq_accum, int batch, int seq_len, int heads)
{
    const long long row = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (long long)batch * seq_len * heads)
        return;
    const int h = row % heads, t = (row / heads) % seq_len, b = row / ((long long)heads * seq_len);
    // Four consecutive elements per lane: 8-byte loads of o and do, one 16-byte store of zeros.
    const long long i = row * HEAD + lane * 4;
    const uint2 ov = *reinterpret_cast<const uint2*>(o + i), dv = *reinterpret_cast<const uint2*>(dout + i);
    const __nv_bfloat162* op = reinterpret_cast<const __nv_bfloat162*>(&ov);
    const __nv_bfloat162* dp = reinterpret_cast<const __nv_bfloat162*>(&dv);
    float sum = 0.0f;
    #pragma unroll
    for (int p = 0; p < 2; p++)
    {
        const float2 a = __bfloat1622float2(op[p]), c = __bfloat1622float2(dp[p]);
        sum += a.x * c.x + a.y * c.y;
    }
    *reinterpret_cast<float4*>(dq_accum + i) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    sum = warp_sum(sum);
    if (lane == 0)
        d[((long long)b * heads + h) * seq_len + t] = sum;
}

extern "C" __global__ void flash_attention_backward_finish(const float* __restrict__ dq_accum, bf16* __restrict__ dq, long long count,
    int heads, long long grad_stride)
{
    // count is a multiple of 128 (head dim): four elements per thread and step.
    const long long quads = count / 4;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < quads; i += (long long)gridDim.x * blockDim.x)
    {
        const float4 f = reinterpret_cast<const float4*>(dq_accum)[i];
        uint2 out;
        out.x = pack_bf16(f.x, f.y);
        out.y = pack_bf16(f.z, f.w);
        const long long row = i / (HEAD / 4), token = row / heads;
        const int h = (int)(row % heads), d = (int)(i % (HEAD / 4)) * 4;
        *reinterpret_cast<uint2*>(dq + token * grad_stride + h * HEAD + d) = out;
    }
}

#define TILE_ELEMENTS (TILE * HEAD)

extern "C" __global__ void __launch_bounds__(128, 2) flash_attention_backward(const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ d,
    float* __restrict__ dq_accum, bf16* __restrict__ dk, bf16* __restrict__ dv, int batch, int seq_len, int heads, int window,
    long long grad_stride)
{
    extern __shared__ __align__(128) unsigned char smem[];
    bf16* ks = reinterpret_cast<bf16*>(smem);
    bf16* vs = ks + TILE_ELEMENTS;
    bf16* q_stages = vs + TILE_ELEMENTS;          // stage s at s · TILE_ELEMENTS
    bf16* do_stages = q_stages + 2 * TILE_ELEMENTS;
    bf16* dst = do_stages + 2 * TILE_ELEMENTS;    // dSᵀ [64 keys][64 queries], swizzled
    float* lse_stages = reinterpret_cast<float*>(dst + TILE * TILE); // stage s at 64·s
    float* d_stages = lse_stages + 2 * TILE;

    const int k0 = blockIdx.x * TILE;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const long long row_stride = (long long)heads * HEAD;
    const long long head_base = (long long)b * seq_len * row_stride + (long long)h * HEAD;
    const float* lse_bh = lse + ((long long)b * heads + h) * seq_len;
    const float* d_bh = d + ((long long)b * heads + h) * seq_len;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = lane >> 2, tig = lane & 3;
    const float scale = rsqrtf((float)HEAD);
    const float scale2 = scale * LOG2E;

    const int first = k0 / TILE, last = min(seq_len - 1, k0 + TILE - 1 + window) / TILE;
    // Q, dO, lse and D of query block qb into stage s (one commit group with whatever else was issued before it).
    auto load_queries = [&](int qb, int s) {
        const int q0 = qb * TILE;
        load_tile_async(q_stages + s * TILE_ELEMENTS, q + head_base, q0, seq_len, row_stride);
        load_tile_async(do_stages + s * TILE_ELEMENTS, dout + head_base, q0, seq_len, row_stride);
        const int i = threadIdx.x & 63;
        const bool valid = q0 + i < seq_len;
        const float* source = (threadIdx.x < 64 ? lse_bh : d_bh) + (valid ? q0 + i : 0);
        float* destination = (threadIdx.x < 64 ? lse_stages : d_stages) + s * TILE + i;
        copy_async<4>(shared_address(destination), source, valid);
    };
    load_tile_async(ks, k + head_base, k0, seq_len, row_stride);
    load_tile_async(vs, v + head_base, k0, seq_len, row_stride);
    load_queries(first, 0);
    copy_async_commit();

    float dk_acc[16][4], dv_acc[16][4];
    #pragma unroll
    for (int i = 0; i < 16; i++)
    {
        dk_acc[i][0] = dk_acc[i][1] = dk_acc[i][2] = dk_acc[i][3] = 0.0f;
        dv_acc[i][0] = dv_acc[i][1] = dv_acc[i][2] = dv_acc[i][3] = 0.0f;
    }
    const int key_a = k0 + warp * 16 + group, key_b = key_a + 8;

    for (int qb = first; qb <= last; qb++)
    {
        const int stage = (qb - first) & 1;
        if (qb < last)
        {
            load_queries(qb + 1, stage ^ 1);
            copy_async_commit();
            copy_async_wait<1>();
        }
        else
        {
            copy_async_wait<0>();
        }
        __syncthreads();
        const int q0 = qb * TILE;
        const bf16* qs = q_stages + stage * TILE_ELEMENTS;
        const bf16* dos = do_stages + stage * TILE_ELEMENTS;
        const float* lse_s = lse_stages + stage * TILE;
        const float* d_s = d_stages + stage * TILE;

        // Sᵀ (16 keys × 64 queries) = K·Qᵀ and dPᵀ = V·dOᵀ: A from this warp's rows of K and V, B from rows of Q and dO.
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
            unsigned ka[4], va[4];
            load_a(ka, ks, HEAD, warp * 16, kk * 16, lane);
            load_a(va, vs, HEAD, warp * 16, kk * 16, lane);
            #pragma unroll
            for (int np = 0; np < 4; np++)
            {
                unsigned bq[4], bo[4];
                load_b_nk(bq, qs, HEAD, np * 16, kk * 16, lane);
                mma_pair(st[2 * np], st[2 * np + 1], ka, bq);
                load_b_nk(bo, dos, HEAD, np * 16, kk * 16, lane);
                mma_pair(dpt[2 * np], dpt[2 * np + 1], va, bo);
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
                const float p = valid ? exp2f(st[nt][e] * scale2 - lse_s[qi] * LOG2E) : 0.0f;
                st[nt][e] = p;
                dpt[nt][e] = p * (dpt[nt][e] - d_s[qi]);
            }
        }

        // dV += Pᵀ·dO and dK += dSᵀ·Q (scaled at the end): B from dO and Q stored [query][d], transposed by ldmatrix.
        #pragma unroll
        for (int kk = 0; kk < 4; kk++)
        {
            unsigned pa[4], sa[4];
            accumulator_to_a(pa, st, kk);
            accumulator_to_a(sa, dpt, kk);
            #pragma unroll
            for (int dp = 0; dp < 8; dp++)
            {
                unsigned bo[4], bq[4];
                load_b_kn(bo, dos, HEAD, dp * 16, kk * 16, lane);
                mma_pair(dv_acc[2 * dp], dv_acc[2 * dp + 1], pa, bo);
                load_b_kn(bq, qs, HEAD, dp * 16, kk * 16, lane);
                mma_pair(dk_acc[2 * dp], dk_acc[2 * dp + 1], sa, bq);
            }
        }

        // dSᵀ to shared memory, so each warp can take 16 queries × all 64 keys for dQ = dS·K.
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            const int c = nt * 8 + tig * 2, r = warp * 16 + group;
            *reinterpret_cast<unsigned*>(dst + swizzle(r, c, TILE)) = pack_bf16(dpt[nt][0], dpt[nt][1]);
            *reinterpret_cast<unsigned*>(dst + swizzle(r + 8, c, TILE)) = pack_bf16(dpt[nt][2], dpt[nt][3]);
        }
        __syncthreads();
        {
            // A = dS[query][key] from dSᵀ (transposed by ldmatrix); B = K stored [key][d].
            float dq_acc[16][4];
            #pragma unroll
            for (int i = 0; i < 16; i++)
                dq_acc[i][0] = dq_acc[i][1] = dq_acc[i][2] = dq_acc[i][3] = 0.0f;
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
            {
                unsigned a[4];
                load_a_trans(a, dst, TILE, warp * 16, kk * 16, lane);
                #pragma unroll
                for (int dp = 0; dp < 8; dp++)
                {
                    unsigned bk[4];
                    load_b_kn(bk, ks, HEAD, dp * 16, kk * 16, lane);
                    mma_pair(dq_acc[2 * dp], dq_acc[2 * dp + 1], a, bk);
                }
            }
            const int query_a = q0 + warp * 16 + group, query_b = query_a + 8;
            #pragma unroll
            for (int dt = 0; dt < 16; dt++)
            {
                const int c = dt * 8 + tig * 2;
                if (query_a < seq_len)
                    atomicAdd(reinterpret_cast<float2*>(dq_accum + head_base + query_a * row_stride + c), make_float2(dq_acc[dt][0] * scale, dq_acc[dt][1] * scale));
                if (query_b < seq_len)
                    atomicAdd(reinterpret_cast<float2*>(dq_accum + head_base + query_b * row_stride + c), make_float2(dq_acc[dt][2] * scale, dq_acc[dt][3] * scale));
            }
        }
        __syncthreads(); // this stage and dSᵀ are read by everyone before the next iteration refills them
    }

    const long long grad_base = (long long)b * seq_len * grad_stride + (long long)h * HEAD;
    #pragma unroll
    for (int dt = 0; dt < 16; dt++)
    {
        const int c = dt * 8 + tig * 2;
        if (key_a < seq_len)
        {
            *reinterpret_cast<unsigned*>(dk + grad_base + key_a * grad_stride + c) = pack_bf16(dk_acc[dt][0] * scale, dk_acc[dt][1] * scale);
            *reinterpret_cast<unsigned*>(dv + grad_base + key_a * grad_stride + c) = pack_bf16(dv_acc[dt][0], dv_acc[dt][1]);
        }
        if (key_b < seq_len)
        {
            *reinterpret_cast<unsigned*>(dk + grad_base + key_b * grad_stride + c) = pack_bf16(dk_acc[dt][2] * scale, dk_acc[dt][3] * scale);
            *reinterpret_cast<unsigned*>(dv + grad_base + key_b * grad_stride + c) = pack_bf16(dv_acc[dt][2], dv_acc[dt][3]);
        }
    }
}

// embedding.cu: token and value-embedding lookups (SPEC §5 step 1 and the value embeddings) and their gradients.
//
// embedding_forward:  out[i, :] = table[ids[i], :]                     ids [n] int32, table [vocab, c] bf16, out [n, c] bf16 (written)
// embedding_backward: dtable[ids[i], :] += dout[i, :]                  dout [n, c] bf16, dtable [vocab, c] fp32 (accumulated)
// Launch: one warp per row, 8 rows per 256-thread block; c must be a multiple of 8 (16-byte accesses). The backward adds with
// fp32 atomics (repeated tokens collide), so its sum order, not its value, varies between runs.
#include "common.cuh"

extern "C" __global__ void embedding_forward(const int* __restrict__ ids, const bf16* __restrict__ table, bf16* __restrict__ out, int n, int c)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const bf16* src = table + (long)ids[row] * c;
    bf16* dst = out + (long)row * c;
    for (int j = lane * 8; j < c; j += 32 * 8)
        *reinterpret_cast<uint4*>(dst + j) = *reinterpret_cast<const uint4*>(src + j);
}

extern "C" __global__ void embedding_backward(const int* __restrict__ ids, const bf16* __restrict__ dout, float* __restrict__ dtable, int n, int c)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const bf16* src = dout + (long)row * c;
    float* dst = dtable + (long)ids[row] * c;
    // 16-byte reads of 8 values and two vector atomics of 4 (sm_90): c is a multiple of 8, dout and dtable 16-byte aligned.
    for (int j = lane * 8; j < c; j += 32 * 8)
    {
        float v[8];
        load8(src + j, v);
        atomicAdd(reinterpret_cast<float4*>(dst + j), make_float4(v[0], v[1], v[2], v[3]));
        atomicAdd(reinterpret_cast<float4*>(dst + j + 4), make_float4(v[4], v[5], v[6], v[7]));
    }
}

// The embedding and its norm in one pass, for the model's first step, and the two backward passes in one (x0 = norm(wte[ids])):
//
// embedding_norm_forward:  x0[i, :] = norm(table[ids[i], :]); rstd[i] = 1/sqrt(mean(row²) + eps)
//   x0 [n, c] bf16 (written), rstd [n] fp32 (written, kept for the backward). The gathered rows are not written: the table
//   (vocab × c bf16, 8 MB at the baseline) sits in L2, so the backward gathers them again instead of reading them back.
// embedding_norm_backward: dtable[ids[i], :] += bf16(rstd·(dy − x̂·mean(dy·x̂))), x̂ = table[ids[i], :]·rstd
//   dy [n, c] bf16 (the x0 gradient), rstd [n] the forward's; dtable [vocab, c] fp32 (accumulated, vector atomics).
// Both give bit for bit what the two-kernel path gives (rmsnorm.cu's rmsnorm_forward after embedding_forward; its
// rmsnorm_backward, bf16 in and out, then embedding_backward): the same sums in the same order, and the norm's gradient
// rounded to bf16 before it is added, as the x0 gradient is in that path. Only the atomics' order varies between runs.
// Launch: one warp per row, 8 rows per 256-thread block, c a multiple of 8 (16-byte accesses) and at most 4096;
// embedding_norm_backward_512 for c ≤ 512 (two 8-feature chunks a lane in registers, as rmsnorm_backward_512),
// embedding_norm_backward for wider rows (four chunks up to 1024, two passes beyond).
// embedding_norm_backward_grouped(_512): the same sums with the rows in grouped order (below), each run of equal ids summed in
// registers and added once; rows of at most 1024 (512) features.
extern "C" __global__ void embedding_norm_forward(const int* __restrict__ ids, const bf16* __restrict__ table, bf16* __restrict__ x0,
    float* __restrict__ rstd, int n, int c)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const bf16* src = table + (long)ids[row] * c;
    bf16* dst = x0 + (long)row * c;
    if (c <= 32 * 8 * 4)
    {
        // Rows of up to 1024 features: gathered once into registers.
        float v[4][8];
        float sum = 0.0f;
        #pragma unroll
        for (int k = 0; k < 4; k++)
        {
            const int j = lane * 8 + 256 * k;
            if (j < c)
            {
                load8(src + j, v[k]);
                #pragma unroll
                for (int i = 0; i < 8; i++)
                    sum += v[k][i] * v[k][i];
            }
        }
        const float r = rsqrtf(warp_sum(sum) / c + RMS_EPS);
        #pragma unroll
        for (int k = 0; k < 4; k++)
        {
            const int j = lane * 8 + 256 * k;
            if (j < c)
            {
                #pragma unroll
                for (int i = 0; i < 8; i++)
                    v[k][i] *= r;
                store8(dst + j, v[k]);
            }
        }
        if (lane == 0)
            rstd[row] = r;
        return;
    }
    // Wider rows: the table row twice (from L2).
    float sum = 0.0f;
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8];
        load8(src + j, v);
        #pragma unroll
        for (int i = 0; i < 8; i++)
            sum += v[i] * v[i];
    }
    const float r = rsqrtf(warp_sum(sum) / c + RMS_EPS);
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8];
        load8(src + j, v);
        #pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] *= r;
        store8(dst + j, v);
    }
    if (lane == 0)
        rstd[row] = r;
}

// The norm's gradient of one row of at most 32·CHUNKS·8 features, rounded to bf16 (what the two-kernel path stores between
// its kernels): chunk k holds features (lane + 32k)·8 .. + 8, set only where they are below c.
template <int CHUNKS>
__device__ __forceinline__ void norm_gradient_row(const bf16* __restrict__ x, const bf16* __restrict__ d, float r, int lane, int c,
    float g[CHUNKS][8])
{
    float xv[CHUNKS][8], gv[CHUNKS][8];
    float dot = 0.0f;
    #pragma unroll
    for (int k = 0; k < CHUNKS; k++)
    {
        const int j = (lane + 32 * k) * 8;
        if (j < c)
        {
            load8(x + j, xv[k]);
            load8(d + j, gv[k]);
            #pragma unroll
            for (int i = 0; i < 8; i++)
                dot += gv[k][i] * xv[k][i];
        }
    }
    const float mean_dot = warp_sum(dot) * r / c;
    #pragma unroll
    for (int k = 0; k < CHUNKS; k++)
    {
        const int j = (lane + 32 * k) * 8;
        if (j < c)
        {
            #pragma unroll
            for (int i = 0; i < 8; i++)
                g[k][i] = __bfloat162float(__float2bfloat16_rn(r * gv[k][i] - r * r * xv[k][i] * mean_dot));
        }
    }
}

// dst[0 .. 8) += v: two fp32 vector atomics (sm_90), dst 16-byte aligned.
__device__ __forceinline__ void add8(float* dst, const float v[8])
{
    atomicAdd(reinterpret_cast<float4*>(dst), make_float4(v[0], v[1], v[2], v[3]));
    atomicAdd(reinterpret_cast<float4*>(dst + 4), make_float4(v[4], v[5], v[6], v[7]));
}

// dst[(lane + 32k)·8 .. + 8) += v[k] for the chunks below c.
template <int CHUNKS>
__device__ __forceinline__ void add_chunks(float* dst, const float v[CHUNKS][8], int lane, int c)
{
    #pragma unroll
    for (int k = 0; k < CHUNKS; k++)
    {
        const int j = (lane + 32 * k) * 8;
        if (j < c)
            add8(dst + j, v[k]);
    }
}

template <int CHUNKS>
__device__ __forceinline__ void embedding_norm_backward_rows(const int* __restrict__ ids, const bf16* __restrict__ table,
    const float* __restrict__ rstd, const bf16* __restrict__ dy, float* __restrict__ dtable, int n, int c)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const int id = ids[row];
    const bf16* x = table + (long)id * c;
    const bf16* d = dy + (long)row * c;
    float* out = dtable + (long)id * c;
    const float r = rstd[row];
    if (c <= 32 * CHUNKS * 8)
    {
        float g[CHUNKS][8];
        norm_gradient_row<CHUNKS>(x, d, r, lane, c, g);
        add_chunks<CHUNKS>(out, g, lane, c);
        return;
    }
    float dot = 0.0f;
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8], g[8];
        load8(x + j, v);
        load8(d + j, g);
        #pragma unroll
        for (int i = 0; i < 8; i++)
            dot += g[i] * v[i] * r;
    }
    const float mean_dot = warp_sum(dot) / c;
    for (int j = lane * 8; j < c; j += 256)
    {
        float v[8], g[8];
        load8(x + j, v);
        load8(d + j, g);
        #pragma unroll
        for (int i = 0; i < 8; i++)
            g[i] = __bfloat162float(__float2bfloat16_rn(r * g[i] - r * r * v[i] * mean_dot));
        add8(out + j, g);
    }
}

extern "C" __global__ void embedding_norm_backward(const int* __restrict__ ids, const bf16* __restrict__ table, const float* __restrict__ rstd,
    const bf16* __restrict__ dy, float* __restrict__ dtable, int n, int c)
{
    embedding_norm_backward_rows<4>(ids, table, rstd, dy, dtable, n, c);
}

extern "C" __global__ void embedding_norm_backward_512(const int* __restrict__ ids, const bf16* __restrict__ table, const float* __restrict__ rstd,
    const bf16* __restrict__ dy, float* __restrict__ dtable, int n, int c)
{
    embedding_norm_backward_rows<2>(ids, table, rstd, dy, dtable, n, c);
}

// The same backward with the rows taken in grouped order (common.cuh's for_each_grouped_run): each warp walks GROUP_SPAN
// positions of `order`, sums the rounded gradients of a run of equal ids in registers and adds the run once. Rows of at most 32·CHUNKS·8
// features; any 1-D grid of 256-thread blocks (the warps stride over the spans). With one token an id each run is one row and
// the table gets the very values embedding_norm_backward adds (0 + g = g); otherwise only the fp32 sums' order differs.
template <int CHUNKS>
__device__ __forceinline__ void embedding_norm_backward_runs(const int* __restrict__ order, const int* __restrict__ ids,
    const bf16* __restrict__ table, const float* __restrict__ rstd, const bf16* __restrict__ dy, float* __restrict__ dtable, int n, int c)
{
    const int lane = threadIdx.x & 31;
    float run[CHUNKS][8];
    #pragma unroll
    for (int k = 0; k < CHUNKS; k++)
    {
        #pragma unroll
        for (int i = 0; i < 8; i++)
            run[k][i] = 0.0f;
    }
    for_each_grouped_run(order, ids, n,
        [&](int row, int id)
        {
            float g[CHUNKS][8];
            norm_gradient_row<CHUNKS>(table + (long)id * c, dy + (long)row * c, rstd[row], lane, c, g);
            #pragma unroll
            for (int k = 0; k < CHUNKS; k++)
            {
                if ((lane + 32 * k) * 8 < c)
                {
                    #pragma unroll
                    for (int i = 0; i < 8; i++)
                        run[k][i] += g[k][i];
                }
            }
        },
        [&](int id)
        {
            add_chunks<CHUNKS>(dtable + (long)id * c, run, lane, c);
            #pragma unroll
            for (int k = 0; k < CHUNKS; k++)
            {
                #pragma unroll
                for (int i = 0; i < 8; i++)
                    run[k][i] = 0.0f;
            }
        });
}

extern "C" __global__ void __launch_bounds__(256) embedding_norm_backward_grouped(const int* __restrict__ order, const int* __restrict__ ids,
    const bf16* __restrict__ table, const float* __restrict__ rstd, const bf16* __restrict__ dy, float* __restrict__ dtable, int n, int c)
{
    embedding_norm_backward_runs<4>(order, ids, table, rstd, dy, dtable, n, c);
}

extern "C" __global__ void __launch_bounds__(256) embedding_norm_backward_grouped_512(const int* __restrict__ order, const int* __restrict__ ids,
    const bf16* __restrict__ table, const float* __restrict__ rstd, const bf16* __restrict__ dy, float* __restrict__ dtable, int n, int c)
{
    embedding_norm_backward_runs<2>(order, ids, table, rstd, dy, dtable, n, c);
}

// Grouping the token positions by id (common.cuh), in three launches after cursor [vocab] int32 is zeroed:
// token_count:   cursor[id] = how many positions hold id (one atomic per id a warp: lanes with equal ids are counted together).
// token_offsets: cursor = its exclusive prefix sum, the first position of each id in `order`. One block of 1024 threads.
// token_scatter: order[cursor[ids[i]]++] = i; positions of one id land in no set order (the atomics' order), grouped all the same.
// ids must lie in [0, vocab). Launch token_count and token_scatter over n threads in 256-thread blocks.
extern "C" __global__ void token_count(const int* __restrict__ ids, int* __restrict__ cursor, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned live = __ballot_sync(0xffffffffu, i < n);
    if (i >= n)
        return;
    const int id = ids[i];
    const unsigned peers = __match_any_sync(live, id);
    if ((int)(threadIdx.x & 31) == __ffs(peers) - 1)
        atomicAdd(cursor + id, __popc(peers));
}

extern "C" __global__ void __launch_bounds__(1024) token_offsets(int* __restrict__ cursor, int vocab)
{
    __shared__ int warp_totals[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // Thread t takes ids [t·per, t·per + per): its total, the block's exclusive scan of the totals, then its ids in order.
    const int per = (vocab + blockDim.x - 1) / blockDim.x;
    const int begin = min(vocab, (int)threadIdx.x * per), end = min(vocab, begin + per);
    int total = 0;
    for (int v = begin; v < end; v++)
        total += cursor[v];
    int scan = total;
    #pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1)
    {
        const int up = __shfl_up_sync(0xffffffffu, scan, offset);
        if (lane >= offset)
            scan += up;
    }
    if (lane == 31)
        warp_totals[warp] = scan;
    __syncthreads();
    if (warp == 0)
    {
        int w = lane < (int)(blockDim.x >> 5) ? warp_totals[lane] : 0;
        #pragma unroll
        for (int offset = 1; offset < 32; offset <<= 1)
        {
            const int up = __shfl_up_sync(0xffffffffu, w, offset);
            if (lane >= offset)
                w += up;
        }
        warp_totals[lane] = w;
    }
    __syncthreads();
    int run = scan - total + (warp > 0 ? warp_totals[warp - 1] : 0);
    for (int v = begin; v < end; v++)
    {
        const int count = cursor[v];
        cursor[v] = run;
        run += count;
    }
}

extern "C" __global__ void token_scatter(const int* __restrict__ ids, int* __restrict__ cursor, int* __restrict__ order, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned live = __ballot_sync(0xffffffffu, i < n);
    if (i >= n)
        return;
    const int id = ids[i], lane = threadIdx.x & 31;
    const unsigned peers = __match_any_sync(live, id);
    const int leader = __ffs(peers) - 1;
    int base = 0;
    if (lane == leader)
        base = atomicAdd(cursor + id, __popc(peers));
    base = __shfl_sync(peers, base, leader);
    order[base + __popc(peers & ((1u << lane) - 1u))] = i;
}

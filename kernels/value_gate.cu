// value_gate.cu: the value-embedding gate of the ResFormer layers (SPEC §5), per kv head: head size D = HEAD_DIM and
// kv heads KV = GATE_HEADS are compile-time constants (the launcher builds one cubin per model with -DHEAD_DIM, -DGATE_HEADS),
// gate input width 32.
//
// value_gate_forward:  g[i, h] = 2·sigmoid(Σ_{j<32} x[i, j]·wg[h, j]);  v[i, h, :] += g[i, h]·ve[ids[i], h·D : h·D + D]
//   x [n, c] bf16 (the normed attention input), wg [KV, 32] bf16, ids [n] int32, ve [vocab, KV·D] bf16,
//   v [n, KV·D] bf16 (updated in place), gate [n, KV] fp32 (written, kept for backward).
// value_gate_backward: from dv = dL/dv [n, KV·D] bf16, rows dv_stride elements apart (the same gradient flows on to the v
//   projection; dv may be the last part of a [n, H·D + 2·KV·D] dq | dk | dv matrix):
//   dve[ids[i], h, :] += g·dv (fp32 vector atomics of D/32 floats: dve 16-byte aligned, dv_stride even);
//   dz = (Σ_d dv·ve)·g·(1 − g/2)   (dg/dz of 2·sigmoid(z));
//   dwg[h, j] += Σ_i dz[i, h]·x[i, j] (fp32, one atomic per block and weight); dx[i, j] += Σ_h dz[i, h]·wg[h, j] for j < 32 (bf16,
//   the sum in fp32 and rounded once; read-modify-write, one warp per token).
// Launch: forward one warp per token, 8 warps per block, v and ve 16-byte aligned (vector accesses); backward any 1-D grid of
// 256-thread blocks, one warp per token (grid-stride over tokens; the host sizes the grid from the device's multiprocessor count).
// value_gate_backward_grouped: the same with the tokens in grouped order (`order`, common.cuh), dve's share of a run of equal
// ids summed in registers and added once; any 1-D grid of 256-thread blocks (the warps stride over spans of GROUP_SPAN).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef GATE_HEADS
#define GATE_HEADS 4
#endif
#define GATE_WIDTH 32
#define PER_LANE (HEAD_DIM / 32) // features of a head each lane handles: 4 or 2
static_assert(HEAD_DIM == 64 || HEAD_DIM == 128, "the lanes' loads and the forward's gate selection assume heads of 64 or 128");

// PER_LANE consecutive bf16 values as floats (one 8- or 4-byte load).
__device__ __forceinline__ void load_lane(const bf16* p, float out[PER_LANE])
{
    if constexpr (PER_LANE == 4)
    {
        const uint2 raw = *reinterpret_cast<const uint2*>(p);
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
        const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
        out[0] = a.x;
        out[1] = a.y;
        out[2] = b.x;
        out[3] = b.y;
    }
    else
    {
        const unsigned raw = *reinterpret_cast<const unsigned*>(p);
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw));
        out[0] = a.x;
        out[1] = a.y;
    }
}

// p[0 .. PER_LANE) += g·v, one vector atomic (sm_90).
__device__ __forceinline__ void add_lane(float* p, float g, const float v[PER_LANE])
{
    if constexpr (PER_LANE == 4)
        atomicAdd(reinterpret_cast<float4*>(p), make_float4(g * v[0], g * v[1], g * v[2], g * v[3]));
    else
        atomicAdd(reinterpret_cast<float2*>(p), make_float2(g * v[0], g * v[1]));
}

// A run's sum added to the table (p: the run's id row at this lane's first feature, head 0), one vector atomic a head, and
// the sum zeroed for the next run.
__device__ __forceinline__ void add_gate_run(float* p, float run[GATE_HEADS][PER_LANE])
{
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
    {
        add_lane(p + h * HEAD_DIM, 1.0f, run[h]);
        #pragma unroll
        for (int e = 0; e < PER_LANE; e++)
            run[h][e] = 0.0f;
    }
}

// One warp a token, all its kv heads: the row of KV·D features moves in 16-byte chunks (8 features, within one head as D is
// a multiple of 8), lane L taking chunks L, L + 32, ...; every load of ve and v is issued before the gates' reductions, so
// the ve row waits on ids[i] only. Lane L holds x[i, L] and wg[:, L], and each head's logit is one warp sum, in the same
// order as one warp a head would take it.
#define GATE_ROW (GATE_HEADS * HEAD_DIM)
#define GATE_CHUNKS (GATE_ROW / 8)
#define GATE_CHUNKS_PER_LANE ((GATE_CHUNKS + 31) / 32)
extern "C" __global__ void value_gate_forward(const bf16* __restrict__ x, const bf16* __restrict__ wg, const int* __restrict__ ids,
    const bf16* __restrict__ ve, bf16* __restrict__ v, float* __restrict__ gate, int n, int c)
{
    const int i = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (i >= n)
        return;
    const bf16* erow = ve + (long)ids[i] * GATE_ROW;
    bf16* vrow = v + (long)i * GATE_ROW;
    uint4 e[GATE_CHUNKS_PER_LANE], o[GATE_CHUNKS_PER_LANE];
    #pragma unroll
    for (int k = 0; k < GATE_CHUNKS_PER_LANE; k++)
    {
        const int chunk = lane + 32 * k;
        if (GATE_CHUNKS % 32 == 0 || chunk < GATE_CHUNKS)
        {
            e[k] = *reinterpret_cast<const uint4*>(erow + chunk * 8);
            o[k] = *reinterpret_cast<const uint4*>(vrow + chunk * 8);
        }
    }
    const float xl = __bfloat162float(x[(long)i * c + lane]);
    float g[GATE_HEADS];
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
    {
        const float z = warp_sum(xl * __bfloat162float(wg[h * GATE_WIDTH + lane]));
        g[h] = 2.0f / (1.0f + __expf(-z));
    }
    #pragma unroll
    for (int k = 0; k < GATE_CHUNKS_PER_LANE; k++)
    {
        const int chunk = lane + 32 * k;
        if (GATE_CHUNKS % 32 == 0 || chunk < GATE_CHUNKS)
        {
            // The gate of this chunk's head, k·(256/D) + lane·8/D: picked by selects among the 256/D heads the k-th
            // 32 chunks span (a runtime index into g would put it in local memory).
            float gh = 0.0f;
            #pragma unroll
            for (int part = 0; part < 256 / HEAD_DIM; part++)
            {
                const int h = k * (256 / HEAD_DIM) + part;
                if (h < GATE_HEADS)
                    gh = lane * 8 / HEAD_DIM == part ? g[h] : gh;
            }
            float a[8], b[8];
            unpack8(e[k], a);
            unpack8(o[k], b);
            #pragma unroll
            for (int p = 0; p < 8; p++)
                b[p] += gh * a[p];
            store8(vrow + chunk * 8, b);
        }
    }
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
        if ((h & 31) == lane)
            gate[(long)i * GATE_HEADS + h] = g[h];
}

// One token's share of the backward: dz per kv head from dv·ve, into dwg_sum (this warp's dwg partials) and dx[i, :32] (one
// plain read-modify-write: a token is one warp's). g·dv goes to dve[ebase ..] with vector atomics (run null) or into run, the
// sum of the warp's current run of equal ids (value_gate_backward_grouped).
__device__ __forceinline__ void gate_token_backward(int i, long ebase, const float* __restrict__ gate, const bf16* __restrict__ dv,
    const bf16* __restrict__ ve, const bf16* __restrict__ x, const float w[GATE_HEADS], float* __restrict__ dve, bf16* __restrict__ dx,
    int c, long long dv_stride, int lane, float dwg_sum[GATE_HEADS], float (*run)[PER_LANE])
{
    const float xj = __bfloat162float(x[(long)i * c + lane]);
    float dxj = 0.0f;
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
    {
        const float g = gate[(long)i * GATE_HEADS + h];
        // Lane l takes features PER_LANE·l .. of the head: one load each of dv and ve.
        float gv[PER_LANE], ev[PER_LANE];
        load_lane(dv + (long)i * dv_stride + h * HEAD_DIM + lane * PER_LANE, gv);
        load_lane(ve + ebase + h * HEAD_DIM + lane * PER_LANE, ev);
        float dot = 0.0f;
        #pragma unroll
        for (int e = 0; e < PER_LANE; e++)
            dot += gv[e] * ev[e];
        if (run == nullptr)
            add_lane(dve + ebase + h * HEAD_DIM + lane * PER_LANE, g, gv);
        else
        {
            #pragma unroll
            for (int e = 0; e < PER_LANE; e++)
                run[h][e] += g * gv[e];
        }
        const float dz = warp_sum(dot) * g * (1.0f - 0.5f * g);
        dwg_sum[h] += dz * xj;
        dxj += dz * w[h];
    }
    bf16* dxi = dx + (long)i * c + lane;
    *dxi = __float2bfloat16_rn(__bfloat162float(*dxi) + dxj);
}

// The block's dwg partials (one a warp and weight, in registers) summed in shared memory, then one atomic a weight.
__device__ __forceinline__ void add_gate_weights(float* partial, const float dwg_sum[GATE_HEADS], float* __restrict__ dwg, int lane)
{
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
        atomicAdd(&partial[h * GATE_WIDTH + lane], dwg_sum[h]);
    __syncthreads();
    for (int k = threadIdx.x; k < GATE_HEADS * GATE_WIDTH; k += blockDim.x)
        atomicAdd(dwg + k, partial[k]);
}

extern "C" __global__ void value_gate_backward(const float* __restrict__ gate, const bf16* __restrict__ dv, const int* __restrict__ ids,
    const bf16* __restrict__ ve, const bf16* __restrict__ x, const bf16* __restrict__ wg,
    float* __restrict__ dve, float* __restrict__ dwg, bf16* __restrict__ dx, int n, int c, long long dv_stride)
{
    __shared__ float partial[GATE_HEADS * GATE_WIDTH];
    for (int k = threadIdx.x; k < GATE_HEADS * GATE_WIDTH; k += blockDim.x)
        partial[k] = 0.0f;
    __syncthreads();
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    float w[GATE_HEADS], dwg_sum[GATE_HEADS];
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
    {
        w[h] = __bfloat162float(wg[h * GATE_WIDTH + lane]);
        dwg_sum[h] = 0.0f;
    }
    // One warp per token, all kv heads: the token's x[:32] is read once, dx[:32] gets one plain update (no other writer), and
    // the gate weights' gradient stays in registers until the block's end.
    for (int i = blockIdx.x * warps + (threadIdx.x >> 5); i < n; i += gridDim.x * warps)
        gate_token_backward(i, (long)ids[i] * GATE_HEADS * HEAD_DIM, gate, dv, ve, x, w, dve, dx, c, dv_stride, lane, dwg_sum, nullptr);
    add_gate_weights(partial, dwg_sum, dwg, lane);
}

// value_gate_backward with the tokens in grouped order (common.cuh): each warp walks GROUP_SPAN positions of `order`, sums g·dv
// over a run of equal ids in registers (GATE_HEADS·PER_LANE floats a lane) and adds the run to dve once. dwg and dx as above.
extern "C" __global__ void __launch_bounds__(256) value_gate_backward_grouped(const int* __restrict__ order, const float* __restrict__ gate,
    const bf16* __restrict__ dv, const int* __restrict__ ids, const bf16* __restrict__ ve, const bf16* __restrict__ x, const bf16* __restrict__ wg,
    float* __restrict__ dve, float* __restrict__ dwg, bf16* __restrict__ dx, int n, int c, long long dv_stride)
{
    __shared__ float partial[GATE_HEADS * GATE_WIDTH];
    for (int k = threadIdx.x; k < GATE_HEADS * GATE_WIDTH; k += blockDim.x)
        partial[k] = 0.0f;
    __syncthreads();
    const int lane = threadIdx.x & 31;
    float w[GATE_HEADS], dwg_sum[GATE_HEADS];
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
    {
        w[h] = __bfloat162float(wg[h * GATE_WIDTH + lane]);
        dwg_sum[h] = 0.0f;
    }
    float run[GATE_HEADS][PER_LANE];
    #pragma unroll
    for (int h = 0; h < GATE_HEADS; h++)
    {
        #pragma unroll
        for (int e = 0; e < PER_LANE; e++)
            run[h][e] = 0.0f;
    }
    for_each_grouped_run(order, ids, n,
        [&](int i, int id)
        {
            gate_token_backward(i, (long)id * GATE_HEADS * HEAD_DIM, gate, dv, ve, x, w, dve, dx, c, dv_stride, lane, dwg_sum, run);
        },
        [&](int id) { add_gate_run(dve + (long)id * GATE_HEADS * HEAD_DIM + lane * PER_LANE, run); });
    add_gate_weights(partial, dwg_sum, dwg, lane);
}

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

// flash_common.cuh: tile loads and tensor-core helpers shared by the flash attention kernels (head dim 128, 64-row tiles).
// Fragment layouts (PTX ISA, mma.m16n8k16): lane = 4·group + tig; A rows group / group + 8, columns 2·tig (+1) and (+8);
// B (k × n) k = 2·tig (+1) and (+8), n = group; C rows group / group + 8, columns 2·tig (+1).
#pragma once
#include "common.cuh"

#define TILE 64
#define HEAD 128
#define PITCH 136
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

__device__ __forceinline__ unsigned pack_raw(bf16 lo, bf16 hi)
{
    __nv_bfloat162 v;
    v.x = lo;
    v.y = hi;
    return *reinterpret_cast<unsigned*>(&v);
}

__device__ __forceinline__ void mma_bf16(float c[4], const unsigned a[4], unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies rows [row0, row0 + 64) of one head into a padded shared tile; rows past T are zero.
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* base, int row0, int seq_len, int heads)
{
    for (int idx = threadIdx.x; idx < TILE * (HEAD / 8); idx += blockDim.x)
    {
        const int r = idx / (HEAD / 8), c = (idx % (HEAD / 8)) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (row0 + r < seq_len)
            v = *reinterpret_cast<const uint4*>(base + (long long)(row0 + r) * heads * HEAD + c);
        *reinterpret_cast<uint4*>(tile + r * PITCH + c) = v;
    }
}


// flash_common.cuh: tile loads and tensor-core helpers shared by the flash attention kernels (head dim 128, 64-row tiles,
// 128-thread blocks).
//
// Fragment layouts (PTX ISA, mma.m16n8k16): lane = 4·group + tig; A rows group / group + 8, columns 2·tig (+1) and (+8);
// B (k × n) k = 2·tig (+1) and (+8), n = group; C rows group / group + 8, columns 2·tig (+1).
//
// Shared tiles are unpadded and XOR-swizzled in 16-byte chunks: element (row, col) of a tile with W columns lives at
// row·W + ((col/8) XOR (row mod 8))·8 + col mod 8. An ldmatrix reads eight rows at one logical chunk; the swizzle puts
// them in eight different bank groups, so fragment loads are free of bank conflicts without padding.
#pragma once
#include "common.cuh"

#define TILE 64
#define HEAD 128
#define NEG_INF __int_as_float(0xff800000)
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

// Offset of element (row, col) in a swizzled tile of `width` bf16 columns (width a multiple of 64).
__device__ __forceinline__ int swizzle(int row, int col, int width)
{
    return row * width + ((((col >> 3) ^ (row & 7)) << 3) | (col & 7));
}

__device__ __forceinline__ unsigned shared_address(const void* p)
{
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mma_bf16(float c[4], const unsigned a[4], unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two MMAs sharing an A fragment, into adjacent n-tiles: b holds both tiles' B fragments as load_b_nk / load_b_kn give them.
__device__ __forceinline__ void mma_pair(float c0[4], float c1[4], const unsigned a[4], const unsigned b[4])
{
    mma_bf16(c0, a, b[0], b[1]);
    mma_bf16(c1, a, b[2], b[3]);
}

// The A fragment (bf16) of columns 16·kk .. 16·kk + 15 of a 16 × 64 fp32 accumulator tile c[8][4] (eight n-tiles of 8):
// how P or dS, computed as C, becomes the A operand of the next product.
__device__ __forceinline__ void accumulator_to_a(unsigned a[4], const float c[8][4], int kk)
{
    a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
    a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
    a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// Four 8×8 bf16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and register i receives matrix i.
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], unsigned address)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

// The same, each matrix transposed on the way (a row-major k × n tile becomes B fragments).
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], unsigned address)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

// A fragment (16 × 16 at rows row0.., columns col0..) of a row-major swizzled tile.
__device__ __forceinline__ void load_a(unsigned a[4], const bf16* tile, int width, int row0, int col0, int lane)
{
    ldmatrix_x4(a, shared_address(tile + swizzle(row0 + (lane & 7) + ((lane >> 3) & 1) * 8, col0 + (lane >> 4) * 8, width)));
}

// A fragment (16 m × 16 k at m0, k0) of a tile stored transposed, [k][m].
__device__ __forceinline__ void load_a_trans(unsigned a[4], const bf16* tile, int width, int m0, int k0, int lane)
{
    ldmatrix_x4_trans(a, shared_address(tile + swizzle(k0 + (lane & 7) + (lane >> 4) * 8, m0 + ((lane >> 3) & 1) * 8, width)));
}

// B fragments of two adjacent n-tiles (n0.., n0+8..; k0..k0+15) of a tile stored [n][k]: b[0], b[1] for the first, b[2], b[3]
// for the second.
__device__ __forceinline__ void load_b_nk(unsigned b[4], const bf16* tile, int width, int n0, int k0, int lane)
{
    ldmatrix_x4(b, shared_address(tile + swizzle(n0 + (lane & 7) + (lane >> 4) * 8, k0 + ((lane >> 3) & 1) * 8, width)));
}

// The same for a tile stored [k][n].
__device__ __forceinline__ void load_b_kn(unsigned b[4], const bf16* tile, int width, int n0, int k0, int lane)
{
    ldmatrix_x4_trans(b, shared_address(tile + swizzle(k0 + (lane & 7) + ((lane >> 3) & 1) * 8, n0 + (lane >> 4) * 8, width)));
}

// Asynchronous global → shared copy of `bytes` (4 or 16); with valid false the destination is zero-filled and nothing is read.
template <int bytes>
__device__ __forceinline__ void copy_async(unsigned destination, const void* source, bool valid)
{
    if (bytes == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(destination), "l"(source), "r"(valid ? 16 : 0) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(destination), "l"(source), "r"(valid ? 4 : 0) : "memory");
}

__device__ __forceinline__ void copy_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most `pending` committed groups of this thread are still in flight.
template <int pending>
__device__ __forceinline__ void copy_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

// Starts copying rows [row0, row0 + 64) of one head (rows `row_stride` elements apart) into a swizzled 64 × 128 tile;
// rows past T are zero. 128 threads, eight 16-byte chunks each.
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* base, int row0, int seq_len, long long row_stride)
{
    #pragma unroll
    for (int i = 0; i < 8; i++)
    {
        const int idx = threadIdx.x + i * 128, r = idx >> 4, c = (idx & 15) * 8;
        const bool valid = row0 + r < seq_len;
        const bf16* source = base + (valid ? (long long)(row0 + r) * row_stride + c : 0);
        copy_async<16>(shared_address(tile + swizzle(r, c, HEAD)), source, valid);
    }
}

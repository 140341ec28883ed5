// flash_common.cuh: constants and small helpers shared by the flash attention kernels: the head size, bf16 packing, shared
// addresses and cp.async copies. The wgmma tiles, descriptors and instructions are in wgmma.cuh.
#pragma once
#include "common.cuh"

// The head size, a compile-time constant: the launcher compiles one cubin per size with -DHEAD_DIM=64 or 128 (the model's
// HeadDim knob). HEAD / 64 slabs of 64 columns make a row of a swizzled tile (wgmma.cuh).
#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#if HEAD_DIM != 64 && HEAD_DIM != 128
#error "the flash attention kernels are built for head sizes 64 and 128"
#endif
#define HEAD HEAD_DIM
#define HEAD_SLABS (HEAD / 64)
#define LN2 0.6931471805599453f

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

__device__ __forceinline__ unsigned shared_address(const void* p)
{
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
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

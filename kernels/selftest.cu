// selftest.cu: tiny kernels that prove the toolchain works end to end (doctor and the Native GPU tests use them).
//
// add_f32:                out[i] = a[i] + b[i], i < n. Grid-stride loop; any grid/block.
// reverse_through_shared: out[i] = in[n-1-i] for one block, staged through n floats of DYNAMIC shared memory, so a
//                         launch with n = 32768 (128 KB) checks the attribute that raises the 48 KB limit.
// scale_bf16:             out[i] = bf16(float(in[i]) * s): checks that cuda_bf16.h is reachable from NVRTC.
// hopper_probe:           writes 1 when compiled for an arch-specific Hopper target (sm_90a: wgmma reachable), else 0.
//                         Launch with one warpgroup (128 threads): wgmma.fence is .sync.aligned, every lane must run it.
// selftest_exported_value: a compile-time value the module exports (= SELFTEST_VALUE, default 7), read by the launcher
//                         side with CudaModule.ReadInt32, as the kernels export their shared-memory sizes.
// All outputs are written (=), never accumulated.
#include <cuda_bf16.h>

#ifndef SELFTEST_VALUE
#define SELFTEST_VALUE 7
#endif
extern "C" __constant__ int selftest_exported_value = SELFTEST_VALUE;

extern "C" __global__ void add_f32(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

extern "C" __global__ void reverse_through_shared(const float* __restrict__ in, float* __restrict__ out, int n)
{
    extern __shared__ float staged[];
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        staged[i] = in[i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        out[i] = staged[n - 1 - i];
}

extern "C" __global__ void scale_bf16(const __nv_bfloat16* __restrict__ in, __nv_bfloat16* __restrict__ out, float s, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = __float2bfloat16(__bfloat162float(in[i]) * s);
}

extern "C" __global__ void hopper_probe(int* flag)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    if (threadIdx.x == 0)
        *flag = 1;
#else
    if (threadIdx.x == 0)
        *flag = 0;
#endif
}

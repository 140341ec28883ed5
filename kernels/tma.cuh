// tma.cuh: the Hopper asynchronous-copy machinery shared by the GEMM and flash attention kernels: tensor maps (TMA), mbarriers
// that count arrivals and transferred bytes, TMA loads into and stores out of 128-byte-swizzled tiles (wgmma.cuh), and bulk
// groups for the stores and reductions.
#pragma once
#include "wgmma.cuh"

// The host's CUtensorMap: 128 opaque bytes, 64-byte aligned, passed by value as a __grid_constant__ parameter.
struct __align__(64) TensorMap
{
    unsigned long long raw[16];
};

__device__ __forceinline__ void mbarrier_init(unsigned barrier, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(barrier), "r"(count) : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(unsigned barrier)
{
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(barrier) : "memory");
}

// An arrival from the threads whose `predicate` is true, as a predicated instruction rather than a branch: between a wgmma's
// issue and its wait, a branch that ptxas cannot prove uniform may make it serialise the products (C7520).
__device__ __forceinline__ void mbarrier_arrive_if(unsigned barrier, bool predicate)
{
    asm volatile("{\n.reg .pred p;\n.reg .b64 state;\nsetp.ne.b32 p, %1, 0;\n@p mbarrier.arrive.shared::cta.b64 state, [%0];\n}\n"
                 ::"r"(barrier), "r"((int)predicate) : "memory");
}

// The producer's arrival, announcing the bytes the TMA copies will complete on this barrier.
__device__ __forceinline__ void mbarrier_expect_bytes(unsigned barrier, unsigned bytes)
{
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(barrier), "r"(bytes) : "memory");
}

// Waits for the phase of parity `parity` to complete. A fresh barrier counts the phase of parity 1 as complete, so a
// producer's first wait on an "empty" barrier (parity phase ^ 1) passes at once.
__device__ __forceinline__ void mbarrier_wait(unsigned barrier, unsigned parity)
{
    asm volatile("{\n.reg .pred done;\nWAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT;\n}\n" ::"r"(barrier), "r"(parity) : "memory");
}

// TMA: the box at (c0 innermost, c1) of the map's tensor into shared memory, completing on `barrier`.
__device__ __forceinline__ void tma_load(unsigned destination, const TensorMap* map, int c0, int c1, unsigned barrier)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(destination), "l"(map), "r"(c0), "r"(c1), "r"(barrier) : "memory");
}

// TMA: shared memory into the box at (c0, c1); completion is tracked by bulk groups.
__device__ __forceinline__ void tma_store(const TensorMap* map, unsigned source, int c0, int c1)
{
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group [%0, {%2, %3}], [%1];\n"
                 ::"l"(map), "r"(source), "r"(c0), "r"(c1) : "memory");
}

__device__ __forceinline__ void tma_store_commit()
{
    asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}

// Waits until this thread's committed stores have read their shared memory (the source may be rewritten).
__device__ __forceinline__ void tma_store_wait_read()
{
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}

// Waits until this thread's committed stores are complete.
__device__ __forceinline__ void tma_store_wait()
{
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}

// TMA: the box at (c0 innermost, c1, c2) of a rank-3 map's tensor into shared memory, completing on `barrier`. The attention
// kernels' maps are [B, T, H·128] (c0 = column, c1 = token, c2 = sequence), so a box past T is zero-filled.
__device__ __forceinline__ void tma_load_3d(unsigned destination, const TensorMap* map, int c0, int c1, int c2, unsigned barrier)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n"
                 ::"r"(destination), "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(barrier) : "memory");
}

// Makes the barriers one thread initialised visible to the other threads and to the TMA unit.
__device__ __forceinline__ void mbarrier_init_fence()
{
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// An arrival on `barrier` once all of this thread's earlier cp.async copies have landed; counted in the barrier's expected
// arrivals (.noinc).
__device__ __forceinline__ void copy_async_arrive(unsigned barrier)
{
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(barrier) : "memory");
}

// Asks for the box at (c0 innermost, c1) of a rank-2 map's tensor in L2: no shared memory, no barrier, nothing to wait for.
__device__ __forceinline__ void tma_prefetch_l2(const TensorMap* map, int c0, int c1)
{
    asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];\n" ::"l"(map), "r"(c0), "r"(c1) : "memory");
}

__device__ __forceinline__ void tensormap_prefetch(const TensorMap* map)
{
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(map) : "memory");
}

// Adds `bytes` of fp32 from shared memory to global memory, element by element (one bulk operation; completion tracked by
// bulk groups like the TMA stores).
__device__ __forceinline__ void bulk_reduce_add_f32(float* destination, unsigned source, unsigned bytes)
{
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n"
                 ::"l"(destination), "r"(source), "r"(bytes) : "memory");
}

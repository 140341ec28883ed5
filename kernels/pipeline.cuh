// pipeline.cuh: what the Hopper kernels (flash_forward.cu, flash_backward.cu, mlp_gemm.cu) build on besides the instructions
// of tma.cuh and wgmma.cuh: their shared memory layout, computed at compile time, and the producer/consumer pipeline of a ring
// of buffers guarded by mbarriers.
//
// Layout. A kernel lists its regions in order as constexpr functions returning SharedRegion, each placed after the one before
// at the alignment it needs (1024 bytes for a 128-byte-swizzled tile, 8 for mbarriers); functions rather than constexpr
// variables, which NVRTC would also emit as device globals. Offsets count from the dynamic window's base aligned up to 1024
// bytes (aligned_shared_base), so the size a launcher asks for is the last region's end plus 1024 bytes of slack
// (shared_window_bytes), and a static_assert holds it to the 227 KB an SM offers a block.
//
// Pipeline. A ring of STAGES buffers; buffer s has two mbarriers, full[s] (completes when the buffer holds its data: the bytes
// the TMA announced, plus whatever arrivals the kernel counts) and empty[s] (completes when every consumer has released it).
// The kernel's n-th use of the ring (n = 0, 1, ...) is stage n mod STAGES in phase (n / STAGES) mod 2; PipelineState follows
// the uses one at a time, PipelineState::at(n) jumps to one. The producer waits for empty[s] at the phase's parity ^ 1 (a
// fresh mbarrier counts the phase before phase 0 as complete, so its first STAGES waits pass at once), consumers wait for
// full[s] at the phase's parity.
#pragma once
#include "tma.cuh"

// The 227 KB of shared memory one block may ask for on Hopper (sm_90).
#define HOPPER_MAX_SHARED_BYTES (227 * 1024)

// One region of a kernel's shared memory: its offset from the aligned base and its size, both in bytes.
struct SharedRegion
{
    unsigned offset, bytes;

    constexpr unsigned end() const { return offset + bytes; }
};

// The first region of a layout, at the aligned base.
constexpr SharedRegion first_region(unsigned bytes)
{
    return SharedRegion{0, bytes};
}

// A region of `bytes` after `previous`, its offset rounded up to `align` (a power of two; 1024 for swizzled tiles).
constexpr SharedRegion place_after(SharedRegion previous, unsigned bytes, unsigned align = 1024)
{
    return SharedRegion{(previous.end() + align - 1) & ~(align - 1), bytes};
}

// The dynamic shared memory a launcher sets for a layout whose last region is `last`: the window's start is aligned up to
// 1024 bytes at run time, which may take up to 1024 bytes.
constexpr int shared_window_bytes(SharedRegion last)
{
    return (int)last.end() + 1024;
}

// The dynamic shared window's first 1024-byte boundary (a shared-window address): tiles must start on one for the hardware
// swizzle (wgmma.cuh).
__device__ __forceinline__ unsigned aligned_shared_base(const void* window)
{
    return (shared_address(window) + 1023) & ~1023u;
}

// Where one role (the producer, or one consumer) stands in a ring of STAGES buffers: the stage of its next use and that use's
// phase parity.
template <int STAGES>
struct PipelineState
{
    int stage;
    unsigned phase;

    // The state of use n of the ring.
    static __device__ __forceinline__ PipelineState at(int n)
    {
        return PipelineState{n % STAGES, (unsigned)(n / STAGES) & 1};
    }

    __device__ __forceinline__ void advance()
    {
        if (++stage == STAGES)
        {
            stage = 0;
            phase ^= 1;
        }
    }
};

// The mbarriers of a ring of STAGES buffers: full[s] and empty[s] (shared-window addresses of full[0] and empty[0]; the
// entries are 8 bytes apart).
template <int STAGES>
struct Pipeline
{
    unsigned full, empty;

    __device__ __forceinline__ unsigned full_at(int stage) const { return full + 8 * stage; }
    __device__ __forceinline__ unsigned empty_at(int stage) const { return empty + 8 * stage; }

    // One thread, before mbarrier_init_fence: full[s] completes on `producers` arrivals (with the TMA's announced bytes),
    // empty[s] on `consumers`.
    __device__ __forceinline__ void init_stage(int stage, unsigned producers, unsigned consumers) const
    {
        mbarrier_init(full_at(stage), producers);
        mbarrier_init(empty_at(stage), consumers);
    }

    __device__ __forceinline__ void init(unsigned producers, unsigned consumers) const
    {
        for (int s = 0; s < STAGES; s++)
            init_stage(s, producers, consumers);
    }

    // The producer: waits until every consumer has released the stage's previous contents.
    __device__ __forceinline__ void acquire(PipelineState<STAGES> state) const { mbarrier_wait(empty_at(state.stage), state.phase ^ 1); }

    // The producer's arrival on full[stage], announcing the bytes its TMA copies will complete there.
    __device__ __forceinline__ void expect_bytes(int stage, unsigned bytes) const { mbarrier_expect_bytes(full_at(stage), bytes); }

    // The producer's plain arrival on full[stage] (one of its `producers` counts), once it has written the stage itself.
    __device__ __forceinline__ void produced(int stage) const { mbarrier_arrive(full_at(stage)); }

    // A consumer: waits until the stage holds the data of this use.
    __device__ __forceinline__ void wait(PipelineState<STAGES> state) const { mbarrier_wait(full_at(state.stage), state.phase); }

    // A consumer's release of the stage (one arrival of the `consumers` empty[stage] counts).
    __device__ __forceinline__ void release(int stage) const { mbarrier_arrive(empty_at(stage)); }

    // produced and release from the threads whose `predicate` is true, without a branch (mbarrier_arrive_if).
    __device__ __forceinline__ void produced_if(int stage, bool predicate) const { mbarrier_arrive_if(full_at(stage), predicate); }
    __device__ __forceinline__ void release_if(int stage, bool predicate) const { mbarrier_arrive_if(empty_at(stage), predicate); }
};

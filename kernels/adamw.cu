// adamw.cu: one fused AdamW step over every Adam-managed tensor (SPEC §6), updating fp32 masters and their bf16 copies.
//
//   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − (lr/(1−β1^t))·m / (sqrt(v/(1−β2^t)) + eps)
// adamw_step: segments [count] describe the tensors (offset and length in the flat parameter layout, the offset of their moments
//   in m and v, and their group's lr, betas, eps, wd and bias corrections for this step); params, grads [total] fp32 and
//   params_bf16 [total] bf16 (written) at the parameter offsets; m, v fp32 at the state offsets (only the Adam tensors have
//   moments: Muon's matrices keep their own state). A segment with bf16_parameter set is a bf16 parameter (the Precision
//   knob's reference mode, for wte and the value embeddings): its gradient, both moments and its new value are rounded to
//   bf16 as they are read or stored (kept in the fp32 arrays as bf16 values), with fp32 arithmetic between them.
// Launch: grid (x: blocks per segment, grid-stride inside it; y: segment index), 256 threads.
#include "common.cuh"

struct AdamSegment
{
    long long offset;
    long long count;
    long long state_offset;
    float lr;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    float bias_correction1; // 1 − β1^t
    float bias_correction2; // 1 − β2^t
    int bf16_parameter;     // 1: round g, m, v and p to bf16 (see above)
};

__device__ __forceinline__ float round_bf16(float x)
{
    return __bfloat162float(__float2bfloat16_rn(x));
}

extern "C" __global__ void adamw_step(const AdamSegment* __restrict__ segments, float* __restrict__ params, const float* __restrict__ grads,
    float* __restrict__ m, float* __restrict__ v, bf16* __restrict__ params_bf16)
{
    const AdamSegment s = segments[blockIdx.y];
    const float step_size = s.lr / s.bias_correction1;
    const float decay = 1.0f - s.lr * s.weight_decay;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < s.count; i += (long long)gridDim.x * blockDim.x)
    {
        const long long k = s.offset + i, j = s.state_offset + i;
        const bool b = s.bf16_parameter != 0;
        const float g = b ? round_bf16(grads[k]) : grads[k];
        float mk = s.beta1 * m[j] + (1.0f - s.beta1) * g;
        float vk = s.beta2 * v[j] + (1.0f - s.beta2) * g * g;
        if (b)
        {
            mk = round_bf16(mk);
            vk = round_bf16(vk);
        }
        m[j] = mk;
        v[j] = vk;
        float p = params[k] * decay - step_size * mk / (sqrtf(vk / s.bias_correction2) + s.eps);
        if (b)
            p = round_bf16(p);
        params[k] = p;
        params_bf16[k] = __float2bfloat16_rn(p);
    }
}

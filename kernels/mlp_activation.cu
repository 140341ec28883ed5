// mlp_activation.cu: the MLP's activations as element-wise passes (the Activation knob), for the path where the MLP's GEMMs
// are cuBLAS (mlp_gemm.cu fuses relu² into its GEMMs where the shape allows). All bf16 in and out, fp32 math.
//
// relu2_forward:    s = relu(u)²                       u, s [count] (s may not alias u)
// relu2_backward:   du = ds·2·sqrt(s)                  from the forward's OUTPUT s (relu(u) = sqrt(s)), so u need not be kept;
//                                                      s, ds, du [count] (du may alias ds)
// gelu_forward:     s = 0.5·u·(1 + tanh(k·(u + 0.044715·u³))), k = sqrt(2/π)     u, s [count]
// gelu_backward:    du = ds·gelu'(u)                   u, ds, du [count] (du may alias u or ds)
// swiglu_forward:   s[i, j] = silu(z[i, j])·z[i, h + j], silu(x) = x·sigmoid(x)    z [n, 2h] = [gate | up], s [n, h]
// swiglu_backward:  dz[i, j] = ds·up·silu'(gate), dz[i, h + j] = ds·silu(gate)     z, dz [n, 2h] (dz may alias z), ds [n, h]
// Launch: count (and h) a multiple of 8 (16-byte accesses); any 1-D grid of 256-thread blocks (grid-stride, 8 elements a
// thread and step).
#include "common.cuh"

#define GELU_K 0.7978845608028654f // sqrt(2/π)
#define GELU_A 0.044715f

#define FOR_EACH_8(i, count) \
    for (long i = (blockIdx.x * (long)blockDim.x + threadIdx.x) * 8; i < (count); i += (long)gridDim.x * blockDim.x * 8)

extern "C" __global__ void relu2_forward(const bf16* __restrict__ u, bf16* __restrict__ s, long count)
{
    FOR_EACH_8(i, count)
    {
        float v[8];
        load8(u + i, v);
        #pragma unroll
        for (int k = 0; k < 8; k++)
        {
            const float r = fmaxf(v[k], 0.0f);
            v[k] = r * r;
        }
        store8(s + i, v);
    }
}

extern "C" __global__ void relu2_backward(const bf16* __restrict__ s, const bf16* ds, bf16* du, long count)
{
    FOR_EACH_8(i, count)
    {
        float v[8], g[8];
        load8(s + i, v);
        load8(ds + i, g);
        #pragma unroll
        for (int k = 0; k < 8; k++)
            g[k] = g[k] * 2.0f * sqrtf(v[k]);
        store8(du + i, g);
    }
}

extern "C" __global__ void gelu_forward(const bf16* __restrict__ u, bf16* __restrict__ s, long count)
{
    FOR_EACH_8(i, count)
    {
        float v[8];
        load8(u + i, v);
        #pragma unroll
        for (int k = 0; k < 8; k++)
        {
            const float x = v[k];
            v[k] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
        }
        store8(s + i, v);
    }
}

extern "C" __global__ void gelu_backward(const bf16* u, const bf16* ds, bf16* du, long count)
{
    FOR_EACH_8(i, count)
    {
        float v[8], g[8];
        load8(u + i, v);
        load8(ds + i, g);
        #pragma unroll
        for (int k = 0; k < 8; k++)
        {
            const float x = v[k], t = tanhf(GELU_K * (x + GELU_A * x * x * x));
            g[k] *= 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        }
        store8(du + i, g);
    }
}

extern "C" __global__ void swiglu_forward(const bf16* __restrict__ z, bf16* __restrict__ s, long n, int hidden)
{
    FOR_EACH_8(i, n * hidden)
    {
        const long row = i / hidden, j = i % hidden;
        float gate[8], up[8];
        load8(z + row * 2 * hidden + j, gate);
        load8(z + row * 2 * hidden + hidden + j, up);
        #pragma unroll
        for (int k = 0; k < 8; k++)
            gate[k] = gate[k] / (1.0f + __expf(-gate[k])) * up[k];
        store8(s + i, gate);
    }
}

extern "C" __global__ void swiglu_backward(const bf16* z, const bf16* __restrict__ ds, bf16* dz, long n, int hidden)
{
    FOR_EACH_8(i, n * hidden)
    {
        const long row = i / hidden, j = i % hidden;
        float gate[8], up[8], g[8];
        load8(z + row * 2 * hidden + j, gate);
        load8(z + row * 2 * hidden + hidden + j, up);
        load8(ds + i, g);
        #pragma unroll
        for (int k = 0; k < 8; k++)
        {
            const float sig = 1.0f / (1.0f + __expf(-gate[k])), silu = gate[k] * sig;
            gate[k] = g[k] * up[k] * sig * (1.0f + gate[k] * (1.0f - sig));
            up[k] = g[k] * silu;
        }
        store8(dz + row * 2 * hidden + j, gate);
        store8(dz + row * 2 * hidden + hidden + j, up);
    }
}

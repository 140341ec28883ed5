namespace AutoResearch.Testing;

/// <summary>Small kernel sources whose compiled resources are known, for the tests of resource reports.</summary>
public static class ProbeKernels
{
    /// <summary>
    /// local_array: a thread-local array of 64 floats indexed at run time (it must live in local memory, 256 bytes a thread);
    /// static_shared: a static shared array of 100 floats; plain: neither.
    /// </summary>
    public const string Resources = """
        extern "C" __global__ void local_array(float* out, int n)
        {
            float staged[64];
            for (int i = 0; i < 64; i++)
                staged[i] = out[i] * (float)(threadIdx.x + i);
            out[threadIdx.x] = staged[n & 63];
        }
        extern "C" __global__ void static_shared(float* out)
        {
            __shared__ float tile[100];
            tile[threadIdx.x % 100] = out[threadIdx.x];
            __syncthreads();
            out[threadIdx.x] = tile[(threadIdx.x + 1) % 100];
        }
        extern "C" __global__ void plain(float* out) { out[threadIdx.x] = 1.0f; }
        """;

    /// <summary>One kernel that compiles, with a warning in NVRTC's log (a variable declared and never used).</summary>
    public const string Warning = """
        extern "C" __global__ void with_unused(float* out)
        {
            int never_used_here = 3;
            out[threadIdx.x] = 2.0f;
        }
        """;
}

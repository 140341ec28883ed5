using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

[Trait("Category", "GPU")]
public class KernelTests
{
    private static CudaDevice Device => TestGpu.Device;

    [GpuFact]
    public void Compiled_kernel_adds_vectors_exactly()
    {
        var kernel = TestGpu.Kernels.Load("selftest.cu").GetKernel("add_f32");
        var random = new Random(11);
        int n = 1_000_001;
        var a = Numerics.RandomUniform(random, n);
        var b = Numerics.RandomUniform(random, n);
        using var da = Device.Allocate<float>(n, "a");
        using var db = Device.Allocate<float>(n, "b");
        using var dout = Device.Allocate<float>(n, "out");
        da.CopyFrom(a);
        db.CopyFrom(b);
        dout.FillBytes(0xFF); // NaN poison: an unwritten element fails
        kernel.Launch(Dim3.Blocks(n, 256), 256, 0, TestGpu.Stream, da.Pointer, db.Pointer, dout.Pointer, n);
        TestGpu.Stream.Synchronize();
        var result = dout.ToArray();
        for (int i = 0; i < n; i++)
            Assert.True(result[i] == a[i] + b[i], $"element {i}: {result[i]} != {a[i] + b[i]} (seed 11)");
    }

    [GpuFact]
    public void Kernel_uses_more_than_48KB_of_dynamic_shared_memory_once_raised()
    {
        var kernel = TestGpu.Kernels.Load("selftest.cu").GetKernel("reverse_through_shared");
        int n = 32_768; // 128 KB of floats
        int shared = n * sizeof(float);
        Assert.True(Device.Properties.MaxSharedMemoryPerBlockOptIn >= shared, "device lacks 128 KB of shared memory per block");
        kernel.SetMaxDynamicSharedMemory(shared);
        var data = Numerics.RandomUniform(new Random(12), n);
        using var din = Device.Allocate<float>(n, "in");
        using var dout = Device.Allocate<float>(n, "out");
        din.CopyFrom(data);
        dout.FillBytes(0xFF);
        kernel.Launch(1, 1024, shared, TestGpu.Stream, din.Pointer, dout.Pointer, n);
        TestGpu.Stream.Synchronize();
        var result = dout.ToArray();
        for (int i = 0; i < n; i++)
            Assert.Equal(data[n - 1 - i], result[i]);
    }

    [GpuFact]
    public void Launch_failure_names_the_kernel_and_configuration()
    {
        var kernel = TestGpu.Kernels.Load("selftest.cu").GetKernel("add_f32");
        using var d = Device.Allocate<float>(16, "tiny");
        // 4096 threads per block is over every GPU's limit of 1024.
        var e = Assert.Throws<CudaException>(() => kernel.Launch(1, 4096, 0, TestGpu.Stream, d.Pointer, d.Pointer, d.Pointer, 16));
        Assert.Contains("add_f32", e.Message, StringComparison.Ordinal);
        Assert.Contains("block 4096x1x1", e.Message, StringComparison.Ordinal);
    }

    [GpuFact]
    public void Bf16_header_is_reachable_from_nvrtc()
    {
        var kernel = TestGpu.Kernels.Load("selftest.cu").GetKernel("scale_bf16");
        var random = new Random(13);
        int n = 10_007;
        var values = Numerics.RandomUniform(random, n, 4f);
        var input = Bf16.FromFloat(values);
        using var din = Device.Allocate<ushort>(n, "in");
        using var dout = Device.Allocate<ushort>(n, "out");
        din.CopyFrom(input);
        dout.FillBytes(0xFF);
        kernel.Launch(Dim3.Blocks(n, 128), 128, 0, TestGpu.Stream, din.Pointer, dout.Pointer, 1.5f, n);
        TestGpu.Stream.Synchronize();
        var output = dout.ToArray();
        var expected = new double[n];
        var actual = new float[n];
        for (int i = 0; i < n; i++)
        {
            expected[i] = Bf16.ToFloat(input[i]) * 1.5;
            actual[i] = Bf16.ToFloat(output[i]);
        }
        Numerics.AssertClose("scale_bf16", actual, expected, 1e-2, 13);
    }

    [GpuFact]
    public void Hopper_features_are_reachable_on_hopper()
    {
        var kernel = TestGpu.Kernels.Load("selftest.cu").GetKernel("hopper_probe");
        using var flag = Device.Allocate<int>(1, "flag");
        flag.Fill(-1);
        kernel.Launch(1, 128, 0, TestGpu.Stream, flag.Pointer);
        TestGpu.Stream.Synchronize();
        int expected = Device.Properties.GpuArchitecture == "sm_90a" ? 1 : 0;
        Assert.Equal(expected, flag.ToArray()[0]);
    }

    [GpuFact]
    public void Compile_error_reports_file_and_line()
    {
        var source = "extern \"C\" __global__ void broken(float* x)\n{\n    x[0] = undefined_name;\n}\n";
        var options = TestGpu.Kernels.BaseOptions(null);
        var e = Assert.Throws<NvrtcCompileException>(() => NvrtcCompiler.Compile(source, "kernels/broken.cu", options));
        Assert.Contains("kernels/broken.cu(3)", e.Message, StringComparison.Ordinal);
        Assert.Contains("undefined_name", e.Message, StringComparison.Ordinal);
    }

    [GpuFact]
    public void A_value_the_module_exports_is_read_and_a_missing_one_is_null_or_a_named_error()
    {
        const int value = 1234; // not the file's default (7): the -D option reaches the build and its cached cubin
        var module = TestGpu.Kernels.Load("selftest.cu", [$"-DSELFTEST_VALUE={value}"]);
        Assert.Equal(value, module.ReadInt32("selftest_exported_value"));
        Assert.Equal(value, module.TryReadInt32("selftest_exported_value"));
        Assert.Null(module.TryReadInt32("no_such_value"));
        var e = Assert.Throws<InvalidOperationException>(() => module.ReadInt32("no_such_value"));
        Assert.Contains("no_such_value", e.Message);
    }

    [GpuFact]
    public void Missing_kernel_name_is_a_clear_error()
    {
        var module = TestGpu.Kernels.Load("selftest.cu");
        var e = Assert.Throws<InvalidOperationException>(() => module.GetKernel("no_such_kernel"));
        Assert.Contains("no_such_kernel", e.Message, StringComparison.Ordinal);
    }

    [GpuFact]
    public void Nvrtc_gives_ptx_on_request()
    {
        var source = File.ReadAllText(Path.Combine(KernelCache.DefaultKernelDirectory, "selftest.cu"));
        var output = NvrtcCompiler.Compile(source, "kernels/selftest.cu", TestGpu.Kernels.BaseOptions(null), includePtx: true);
        Assert.NotNull(output.Ptx);
        Assert.Contains(".entry add_f32", output.Ptx, StringComparison.Ordinal);
        Assert.True(output.Cubin.Length > 0);
    }
}

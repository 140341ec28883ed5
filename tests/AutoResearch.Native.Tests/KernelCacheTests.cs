using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

[Trait("Category", "GPU")]
public class KernelCacheTests
{
    private static CudaDevice Device => TestGpu.Device;

    private static string CopyKernels(string source)
    {
        var dir = TestGpu.NewTempDirectory("src");
        File.WriteAllText(Path.Combine(dir, "selftest.cu"), source);
        return dir;
    }

    [GpuFact]
    public void Second_cache_compiles_nothing_and_loads_the_cubin_from_disk()
    {
        var source = File.ReadAllText(Path.Combine(KernelCache.DefaultKernelDirectory, "selftest.cu"));
        var kernels = CopyKernels(source);
        var cacheDir = TestGpu.NewTempDirectory("cache");
        using (var cold = new KernelCache(Device, kernels, cacheDir))
        {
            cold.Load("selftest.cu").GetKernel("add_f32");
            Assert.Equal(1, cold.Compiled);
            Assert.Equal(0, cold.DiskHits);
        }
        Assert.Single(Directory.GetFiles(cacheDir, "selftest-*.cubin"));
        using var warm = new KernelCache(Device, kernels, cacheDir);
        var kernel = warm.Load("selftest.cu").GetKernel("add_f32");
        Assert.Equal(0, warm.Compiled);
        Assert.Equal(1, warm.DiskHits);
        Assert.True(kernel.Registers > 0);
        // Loaded twice in one process: the module is reused, nothing more is read.
        warm.Load("selftest.cu");
        Assert.Equal(1, warm.DiskHits);
    }

    [GpuFact]
    public void Resources_list_each_kernel_asked_for_with_its_registers_local_and_shared_memory()
    {
        // ProbeKernels.Resources: local_array and static_shared are asked for, plain is not.
        var kernels = TestGpu.NewTempDirectory("src");
        File.WriteAllText(Path.Combine(kernels, "resources.cu"), ProbeKernels.Resources);
        var cacheDir = TestGpu.NewTempDirectory("cache");
        using var cache = new KernelCache(Device, kernels, cacheDir);
        var module = cache.Load("resources.cu", ["-DUNUSED=1"]);
        module.GetKernel("static_shared");
        module.GetKernel("local_array");

        var rows = cache.Resources();

        Assert.Equal(["local_array", "static_shared"], rows.Select(r => r.Kernel));
        Assert.All(rows, r => Assert.Equal(("resources.cu", "-DUNUSED=1"), (r.File, r.Options)));
        Assert.All(rows, r => Assert.InRange(r.Registers, 1, 255));
        Assert.True(rows[0].LocalBytes >= 64 * sizeof(float), $"local_array: {rows[0].LocalBytes} B of local memory");
        Assert.Equal(0, rows[1].LocalBytes);
        Assert.Equal(100 * sizeof(float), rows[1].StaticSharedBytes);
        Assert.Equal(0, rows[0].StaticSharedBytes);

        // The cubin itself says the same, read without the driver (CubinResources: what compile-kernel --resources prints).
        var fromCubin = CubinResources.Read(File.ReadAllBytes(Assert.Single(Directory.GetFiles(cacheDir, "resources-*.cubin"))), "resources.cu", "-DUNUSED=1");
        Assert.Equal(["local_array", "plain", "static_shared"], fromCubin.Select(r => r.Kernel));
        // Registers and local memory as the driver reports them; the static shared memory as the cubin's section holds it,
        // which on sm_90 is 1 KB more than the driver reports (400 B against 1,424 B on an H200).
        var asked = fromCubin.Where(r => r.Kernel != "plain").ToList();
        Assert.Equal(rows.Select(r => (r.Kernel, r.Registers, r.LocalBytes)), asked.Select(r => (r.Kernel, r.Registers, r.LocalBytes)));
        Assert.All(rows.Zip(asked), p => Assert.Contains(p.Second.StaticSharedBytes - p.First.StaticSharedBytes, new[] { 0, 1024 }));
    }

    [GpuFact]
    public void Changing_source_options_or_headers_changes_the_key()
    {
        var source = File.ReadAllText(Path.Combine(KernelCache.DefaultKernelDirectory, "selftest.cu"));
        var kernels = CopyKernels(source);
        var cacheDir = TestGpu.NewTempDirectory("cache");
        using var cache = new KernelCache(Device, kernels, cacheDir);
        var key = cache.CacheKey(source, cache.BaseOptions(null));
        Assert.NotEqual(key, cache.CacheKey(source + "\n// changed", cache.BaseOptions(null)));
        Assert.NotEqual(key, cache.CacheKey(source, cache.BaseOptions(["-DEXTRA=1"])));
        File.WriteAllText(Path.Combine(kernels, "common.cuh"), "#pragma once\n");
        using var withHeader = new KernelCache(Device, kernels, cacheDir);
        Assert.NotEqual(key, withHeader.CacheKey(source, withHeader.BaseOptions(null)));

        cache.Load("selftest.cu");
        cache.Load("selftest.cu", ["-DEXTRA=1"]);
        Assert.Equal(2, cache.Compiled);
        Assert.Equal(2, Directory.GetFiles(cacheDir, "*.cubin").Length);
    }

    [GpuFact]
    public void Missing_kernel_file_names_the_path()
    {
        var e = Assert.Throws<FileNotFoundException>(() => TestGpu.Kernels.Load("does_not_exist.cu"));
        Assert.Contains("does_not_exist.cu", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>Tests that change the process's working directory; they run alone, after the parallel ones.</summary>
[CollectionDefinition(nameof(WorkingDirectoryCollection), DisableParallelization = true)]
public sealed class WorkingDirectoryCollection;

[Trait("Category", "GPU")]
[Collection(nameof(WorkingDirectoryCollection))]
public class KernelCacheWorkingDirectoryTests
{
    [GpuFact]
    public void Headers_come_from_the_kernel_folder_not_from_a_kernels_folder_in_the_working_directory()
    {
        var device = TestGpu.Device;
        var kernels = TestGpu.NewTempDirectory("src");
        File.WriteAllText(Path.Combine(kernels, "probe.cu"),
            "#include \"probe.cuh\"\nextern \"C\" __global__ void probe(int* out) { *out = PROBE_VALUE; }\n");
        File.WriteAllText(Path.Combine(kernels, "probe.cuh"), "#pragma once\n#define PROBE_VALUE 7\n");
        // Another checkout's kernels/ in the working directory, with a header of the same name.
        var elsewhere = TestGpu.NewTempDirectory("cwd");
        Directory.CreateDirectory(Path.Combine(elsewhere, "kernels"));
        File.WriteAllText(Path.Combine(elsewhere, "kernels", "probe.cuh"), "#pragma once\n#define PROBE_VALUE 13\n");

        var saved = Environment.CurrentDirectory;
        int[] result;
        try
        {
            Environment.CurrentDirectory = elsewhere;
            using var cache = new KernelCache(device, kernels, TestGpu.NewTempDirectory("cache"));
            var kernel = cache.Load("probe.cu").GetKernel("probe");
            using var d = device.Allocate<int>(1, "probe");
            d.FillBytes(0xFF);
            kernel.Launch(1, 1, 0, TestGpu.Stream, d.Pointer);
            TestGpu.Stream.Synchronize();
            result = d.ToArray();
        }
        finally
        {
            Environment.CurrentDirectory = saved;
        }
        Assert.Equal(7, result[0]);
    }
}

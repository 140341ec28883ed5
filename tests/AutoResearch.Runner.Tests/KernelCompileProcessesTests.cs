using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Optim.Gpu;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>A cold kernel cache compiled ahead, on the CPU: the files a run lists, and the compile-kernel worker processes.</summary>
public class KernelCompileProcessesTests
{
    private static readonly DeviceProperties H200 = Testing.FakeDevices.H200;

    /// <summary>The worker that starts the CLI built beside the tests: `dotnet autoresearch.dll compile-kernel ...`.</summary>
    private static KernelCompileWorker BuiltRunner()
        => KernelCompileProcesses.For(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", [Path.Combine(AppContext.BaseDirectory, "autoresearch.dll")]);

    [Fact]
    public void The_baseline_run_lists_every_kernel_file_once_and_each_exists()
    {
        var shape = Hyperparameters.Default.Shape(ExperimentConstants.VocabSize, ExperimentConstants.MaxSeqLen);
        var sources = GpuGpt.KernelSources(H200, shape, Hyperparameters.Default.DeviceBatchSize).Concat(MuonAdamWGpu.KernelSources).ToList();

        Assert.Equal(sources.Count, sources.Distinct().Count());
        Assert.All(sources, s => Assert.True(File.Exists(Path.Combine(KernelCache.DefaultKernelDirectory, s.FileName)), s.ToString()));
        // The files the baseline's constructors load: the attention, the fused MLP GEMMs, the optimizer's.
        var files = sources.Select(s => s.FileName).ToHashSet();
        Assert.Superset(new HashSet<string> { "flash_forward.cu", "flash_backward.cu", "mlp_gemm.cu", "rotary.cu", "adamw.cu", "muon.cu" }, files);
        Assert.Contains(new KernelSource("rotary.cu", [$"-DHEAD_DIM={shape.HeadDim}"]), sources);
        // The norms' file in its three parts, side by side, never whole.
        Assert.Equal(["-DRMSNORM_PART=1", "-DRMSNORM_PART=2", "-DRMSNORM_PART=3"],
            sources.Where(s => s.FileName == "rmsnorm.cu").Select(s => string.Join(' ', s.Options)));
        // A shape the fused MLP does not take (SwiGLU) still compiles mlp_gemm.cu for its q and k projections (rotary in the
        // epilogue), and none without them.
        var swiglu = (Hyperparameters.Default with { Activation = "swiglu" }).Shape(ExperimentConstants.VocabSize, ExperimentConstants.MaxSeqLen);
        Assert.Contains(GpuGpt.KernelSources(H200, swiglu, Hyperparameters.Default.DeviceBatchSize), s => s.FileName == "mlp_gemm.cu");
        Assert.DoesNotContain(GpuGpt.KernelSources(H200, swiglu, Hyperparameters.Default.DeviceBatchSize, fusedQk: false), s => s.FileName == "mlp_gemm.cu");
    }

    [Fact]
    public void A_test_host_has_no_compile_kernel_command_so_no_process_worker()
        => Assert.Null(KernelCompileProcesses.Worker());

    [Fact]
    public async Task A_cancelled_compile_stops_its_child_process()
    {
        if (!File.Exists("/bin/sh"))
            Assert.Skip("needs /bin/sh to stand in for the compile-kernel child");
        using var folder = new TempFolder();
        var kernels = Directory.CreateDirectory(folder.File("kernels")).FullName;
        File.WriteAllText(Path.Combine(kernels, "slow.cu"), "// slow\n");
        var marker = folder.File("child-finished");
        // The stand-in child: works for a second, then leaves a mark. Cancelled before that, it must be gone without a mark.
        var worker = KernelCompileProcesses.For("/bin/sh", ["-c", $"sleep 1; touch '{marker}'", "sh"]);
        var source = Path.Combine(kernels, "slow.cu");
        var job = new KernelCompileJob("slow.cu", source, File.ReadAllText(source), ["--gpu-architecture=sm_90a"], "key", folder.File("slow.cubin"));
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var watch = System.Diagnostics.Stopwatch.StartNew();

        Assert.ThrowsAny<OperationCanceledException>(() => worker(job, stop.Token));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(0.9), $"the cancel took {watch.Elapsed}");
        await Task.Delay(1500, TestContext.Current.CancellationToken);
        Assert.False(File.Exists(marker), "the child ran on after its compile was cancelled");
    }

    [Fact]
    public void The_worker_asks_its_child_to_keep_the_compile_log_beside_the_cubin()
    {
        if (!File.Exists("/bin/sh"))
            Assert.Skip("needs /bin/sh to stand in for the compile-kernel child");
        using var folder = new TempFolder();
        var arguments = folder.File("arguments");
        // The stand-in child: writes its arguments one a line, and a cubin where --out says, as compile-kernel would.
        var worker = KernelCompileProcesses.For("/bin/sh", ["-c", $"printf '%s\\n' \"$@\" > '{arguments}'; cat > /dev/null; printf x > \"$5\"", "sh"]);
        var source = folder.File("k.cu");
        File.WriteAllText(source, "// k\n");
        var job = new KernelCompileJob("k.cu", source, "// k\n", ["--gpu-architecture=sm_90a", "-DX=1"], "key", folder.File("k-sm_90a-key.cubin"));

        worker(job, TestContext.Current.CancellationToken);

        var given = File.ReadAllLines(arguments);
        Assert.Equal(["compile-kernel", "--name", source, "--out", job.CubinPath, "--log", CubinStore.LogPath(job.CubinPath), "--", "--gpu-architecture=sm_90a", "-DX=1"], given);
        Assert.True(File.Exists(job.CubinPath));
    }

    [NvrtcFact]
    public async Task Worker_processes_write_the_cubins_and_a_broken_file_fails_with_nvrtcs_log()
    {
        using var folder = new TempFolder();
        var kernels = Directory.CreateDirectory(folder.File("kernels")).FullName;
        File.WriteAllText(Path.Combine(kernels, "scale.cu"),
            "// a comment with non-ASCII text: ‖x‖ · α\nextern \"C\" __global__ void scale(float* x, int n) { int i = threadIdx.x; if (i < n) x[i] *= FACTOR; }\n");
        File.WriteAllText(Path.Combine(kernels, "broken.cu"), "extern \"C\" __global__ void broken() { undeclared_name = 1; }\n");
        var store = new CubinStore(NvrtcFactAttribute.PortableArchitecture, kernels, folder.File("cache"));
        var two = new KernelSource("scale.cu", ["-DFACTOR=2.0f"]);

        var failures = await store.CompileAhead([two, new("scale.cu", ["-DFACTOR=3.0f"]), new("broken.cu")], BuiltRunner(),
            cancel: TestContext.Current.CancellationToken);

        var failure = Assert.Single(failures);
        Assert.Contains("broken.cu", failure.Message, StringComparison.Ordinal);
        Assert.Contains("exited with 1", failure.Message, StringComparison.Ordinal);
        Assert.Contains("undeclared_name", failure.Message, StringComparison.Ordinal);
        Assert.Equal(2, store.CompiledAhead);
        Assert.Equal(0, store.Compiled);
        // The child compiled exactly what this process would have: the same cubin bytes.
        var job = store.Job(two);
        var fromChild = File.ReadAllBytes(job.CubinPath);
        var here = new CubinStore(NvrtcFactAttribute.PortableArchitecture, kernels, folder.File("cache-here"));
        Assert.Equal(here.Compile(here.Job(two)), fromChild);
        Assert.Empty(Directory.GetFiles(folder.File("cache"), "*.tmp"));
    }
}

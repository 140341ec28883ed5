using System.CommandLine;
using AutoResearch.Data;
using System.Diagnostics;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Optim.Gpu;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch doctor`: what this machine has for training. Prints the GPU, driver, CUDA, NVRTC and cuBLAS versions and
/// memory; compiles a test kernel cold (in a private folder) and from the cache; loads the project's kernels through the
/// real kernel cache (the second start must compile nothing); times a bf16 GEMM at the model's shapes; with --compile-timing,
/// times the baseline run's kernel files compiled cold all at once, as train compiles them, with each compile's time.
/// Exits non-zero, with one paragraph saying what is missing, when there is no usable GPU or library.
/// </summary>
public static class DoctorCommand
{
    public static Command Create()
    {
        var gemmM = new Option<int>("--gemm-m") { Description = "Rows of the benchmark GEMM (tokens: B·T)", DefaultValueFactory = _ => 262_144 };
        var gemmN = new Option<int>("--gemm-n") { Description = "Output features of the benchmark GEMM", DefaultValueFactory = _ => 2048 };
        var gemmK = new Option<int>("--gemm-k") { Description = "Input features of the benchmark GEMM", DefaultValueFactory = _ => 512 };
        var skipGemm = new Option<bool>("--skip-gemm") { Description = "Skip the GEMM and copy timings" };
        var compileTiming = new Option<bool>("--compile-timing")
        {
            Description = "Also compile the baseline run's kernel files cold, all at once as train does, and time each compile",
        };
        var command = new Command("doctor", "Report the GPU, driver, CUDA/NVRTC/cuBLAS versions and memory; compile a test kernel (cold and cached) and time a bf16 GEMM.")
        {
            gemmM, gemmN, gemmK, skipGemm, compileTiming,
        };
        command.SetAction(parse => Run(parse.GetValue(gemmM), parse.GetValue(gemmN), parse.GetValue(gemmK), parse.GetValue(skipGemm), parse.GetValue(compileTiming)));
        return command;
    }

    private static int Run(int m, int n, int k, bool skipGemm, bool compileTiming)
    {
        CudaDevice device;
        try
        {
            int count = CudaDevice.Count();
            if (count == 0)
                return Missing("the NVIDIA driver is installed (libcuda loaded) but reports no CUDA device.");
            device = CudaDevice.Open(0);
        }
        catch (NativeLibraryNotFoundException e)
        {
            return Missing($"{e.Library} could not be loaded from any of {e.Attempts.Count} places tried "
                + $"({string.Join(", ", e.Attempts.Take(3).Select(a => a.Split(':')[0]))}, ...).");
        }
        catch (CudaException e)
        {
            return Missing($"the CUDA driver failed to start: {e.Message}");
        }

        using (device)
        {
            var p = device.Properties;
            Line("GPU", $"{p}, target {p.GpuArchitecture}");
            Line("Driver", $"{CudaDevice.DriverKernelModuleVersion() ?? "version unknown"} (CUDA {CudaDevice.DriverCudaVersion()})");
            using (var power = GpuPowerMonitor.TryOpen(device, out string? unmeasured))
            {
                Line("Power", power is null ? $"not measured ({unmeasured}): `profile` reports no energy or clocks"
                    : $"limit {(double.IsNaN(power.PowerLimitWatts) ? "not reported" : $"{power.PowerLimitWatts:F0} W")}; "
                        + "`profile` reports the energy of a step and the SM clock (NVML)");
            }
            var (free, total) = device.MemoryInfo();
            Line("Memory", $"{free / 1073741824.0:F1} GiB free of {total / 1073741824.0:F1} GiB; L2 {p.L2CacheBytes >> 20} MiB; "
                + $"shared memory per block up to {p.MaxSharedMemoryPerBlockOptIn >> 10} KiB");
            try
            {
                var (major, minor) = NvrtcCompiler.Version();
                Line("NVRTC", $"{major}.{minor}");
            }
            catch (NativeLibraryNotFoundException e)
            {
                return Missing($"{e.Library} is missing, so kernels cannot be compiled. {e.Message}");
            }

            using var stream = new CudaStream(device);
            Blas blas;
            try
            {
                blas = new Blas(device, stream);
            }
            catch (NativeLibraryNotFoundException e)
            {
                return Missing($"{e.Library} is missing, so matrix products cannot run. {e.Message}");
            }
            using (blas)
            {
                Line("cuBLAS", $"{Blas.FormatVersion(blas.CublasVersion)}; cuBLASLt {Blas.FormatVersion(Blas.CublasLtVersion)}");
                Line("GEMM choices", GpuTrainer.DescribeGemmChoices(Path.Combine(CachePaths.Default().Kernels, GpuTrainer.GemmChoicesFile),
                    Blas.ChoicesContext(p, GpuTrainer.GemmCandidates), GpuTrainer.ShippedGemmChoices()));
                CheckTestKernel(device);
                if (p.ComputeMajor != 9)
                {
                    return Missing($"{p} is not a Hopper GPU (compute 9.x, such as an H100 or H200), and the model's attention kernels "
                        + "use Hopper's wgmma and TMA, so they do not compile for it.");
                }
                CheckProjectKernels(device);
                if (compileTiming)
                    TimeColdCompiles(device);
                if (!skipGemm)
                {
                    foreach (var useLt in new[] { false, true })
                    {
                        var r = GemmThroughput.Measure(device, blas, m, n, k, useLt);
                        Line(useLt ? "GEMM (Lt)" : "GEMM", $"bf16 {m}x{k} · ({n}x{k})ᵀ: {r.MedianMilliseconds:F3} ms, "
                            + $"{r.TeraflopsPerSecond:F0} TFLOP/s (median of {r.Iterations} after warm-up)");
                    }
                    var copy = CopyThroughput.Measure(device, stream);
                    Line("Copy", $"device to device {copy.Bytes >> 20} MiB: {copy.MedianMilliseconds:F3} ms, "
                        + $"{copy.TerabytesPerSecond:F2} TB/s read + written (median of {copy.Iterations} after warm-up)");
                }
                Line("Peak VRAM", $"{device.Memory.PeakMegabytes:F1} MB tracked");
            }
        }
        Console.WriteLine("doctor: OK");
        return 0;
    }

    private static void CheckTestKernel(CudaDevice device)
    {
        var temp = Path.Combine(Path.GetTempPath(), $"autoresearch-doctor-{Guid.NewGuid():N}");
        try
        {
            var watch = Stopwatch.StartNew();
            using (var cold = new KernelCache(device, KernelCache.DefaultKernelDirectory, temp))
                cold.Load("selftest.cu").GetKernel("add_f32");
            var coldMs = watch.Elapsed.TotalMilliseconds;
            watch.Restart();
            using (var warm = new KernelCache(device, KernelCache.DefaultKernelDirectory, temp))
                warm.Load("selftest.cu").GetKernel("add_f32");
            Line("Test kernel", $"selftest.cu compiled cold in {coldMs:F0} ms; loaded from cache in {watch.Elapsed.TotalMilliseconds:F1} ms");
        }
        finally
        {
            try
            {
                Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void CheckProjectKernels(CudaDevice device)
    {
        var watch = Stopwatch.StartNew();
        using var cache = new KernelCache(device, KernelCache.DefaultKernelDirectory, CachePaths.Default().Kernels);
        var files = Directory.GetFiles(cache.KernelDirectory, "*.cu").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        foreach (var file in files)
            cache.Load(file!);
        Line("Kernels", $"{files.Count} file(s) from {cache.CacheDirectory}: compiled {cache.Compiled}, cache hits {cache.DiskHits}; "
            + $"total {watch.Elapsed.TotalMilliseconds:F1} ms (compile {cache.CompileTime.TotalMilliseconds:F0} ms, load {cache.LoadTime.TotalMilliseconds:F1} ms)");
    }

    /// <summary>
    /// The kernel files of a baseline run (<see cref="GpuGpt.KernelSources"/> and the optimizer's), compiled into an empty folder
    /// all at once, in processes of their own as `train` does on a cold cache (in threads where this process is not the runner).
    /// The wall time is what a cold start pays, less what it overlaps; the longest single compiles are its floor. Then
    /// mlp_gemm.cu compiled whole, every kernel in one NVRTC run, against the kernels compiled one each as the model does.
    /// </summary>
    private static void TimeColdCompiles(CudaDevice device)
    {
        var shape = Hyperparameters.Default.Shape(ExperimentConstants.VocabSize, ExperimentConstants.MaxSeqLen);
        var sources = GpuGpt.KernelSources(device.Properties, shape, Hyperparameters.Default.DeviceBatchSize).Concat(MuonAdamWGpu.KernelSources).ToList();
        var processes = KernelCompileProcesses.Worker();
        // In processes of their own where this is the runner (as train compiles them), else in threads.
        var (way, worker) = processes is null ? ("threads", (KernelCompileWorker?)null) : ("processes", processes);
        var (elapsed, times) = TimedCold(device, sources, worker);
        Line("Cold compile", $"{sources.Count} files in {way} ({Environment.ProcessorCount} processors): {elapsed.TotalSeconds:F2} s");
        Line("Longest", string.Join(", ", times.OrderByDescending(t => t.Elapsed).Take(5).Select(t => $"{t.Label} {t.Elapsed.TotalSeconds:F2} s"))
            + $" (of {times.Count}, {times.Sum(t => t.Elapsed.TotalSeconds):F1} s in all)");
        var whole = TimedCold(device, [MlpGemm.Source()], worker).Elapsed;
        Line("mlp_gemm.cu", $"whole, its six kernels in one NVRTC run: {whole.TotalSeconds:F2} s; the model's "
            + string.Join(", ", times.Where(t => t.FileName == "mlp_gemm.cu").Select(t =>
                $"{t.Options.Last(o => o.StartsWith(MlpGemm.OneKernelDefine, StringComparison.Ordinal))[MlpGemm.OneKernelDefine.Length..]} {t.Elapsed.TotalSeconds:F2} s")));
    }

    // Compiles the sources into an empty folder, all at once with the worker; the wall time and each compile's time (labelled
    // without the nonce). A repeat of an earlier compile can be much faster than the first (on an H200 with NVRTC 13.0 a quarter
    // of a second, where a new machine's first took two), and a define no earlier compile had did not change that (an unused
    // define leaves the preprocessed source as it was). So each compile here also includes a header that declares a device
    // variable of a fresh name: the source the compiler sees, and the PTX it makes, are new.
    private static (TimeSpan Elapsed, IReadOnlyList<KernelCompileTime> Times) TimedCold(CudaDevice device, IReadOnlyList<KernelSource> sources, KernelCompileWorker? worker)
    {
        var temp = Path.Combine(Path.GetTempPath(), $"autoresearch-doctor-{Guid.NewGuid():N}");
        string id = Guid.NewGuid().ToString("N");
        var header = Path.Combine(temp, $"cold-{id}.cuh");
        string nonce = $"--pre-include={header}";
        try
        {
            Directory.CreateDirectory(temp);
            File.WriteAllText(header, $"__device__ int autoresearch_cold_compile_{id};\n");
            var store = new CubinStore(device.Properties.GpuArchitecture, KernelCache.DefaultKernelDirectory, temp);
            var watch = Stopwatch.StartNew();
            var failures = store.CompileAhead(sources.Select(s => s with { Options = [.. s.Options, nonce] }), worker).GetAwaiter().GetResult();
            var elapsed = watch.Elapsed;
            if (failures.Count > 0)
                throw new InvalidOperationException($"{failures.Count} kernel file(s) failed to compile: {failures[0].Message}", failures[0]);
            return (elapsed, [.. store.AheadTimes.Select(t => t with { Options = [.. t.Options.Where(o => o != nonce)] })]);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    // "Key:" padded to a column, and at least one space after it ("Cold compile:" and "GEMM choices:" fill the column).
    private static void Line(string key, string value) => Console.WriteLine($"{key + ":",-13}{(key.Length + 1 >= 13 ? " " : "")}{value}");

    private static int Missing(string what)
    {
        Console.Error.WriteLine(
            $"doctor: no usable NVIDIA GPU here: {what} Training needs an NVIDIA GPU with a CUDA 12 or 13 driver and the "
            + "CUDA toolkit's NVRTC and cuBLAS libraries (set " + NativeLibraryResolver.OverrideVariable + " to their folder if they "
            + "are installed somewhere unusual). Without a GPU, `autoresearch train --device cpu` runs a tiny model on the CPU.");
        return 2;
    }
}

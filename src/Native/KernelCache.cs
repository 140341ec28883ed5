using System.Collections.Concurrent;
using System.Diagnostics;

namespace AutoResearch.Native;

/// <summary>
/// Compiles each kernel file once per (source and the kernel folder's headers, options, GPU architecture, NVRTC version)
/// for the device's own architecture, keeps the cubin on disk under the cache folder (<see cref="Store"/>), and loads it from
/// there on later starts. Modules are also kept in memory, so a file is loaded once per process. A model that lists its files
/// first (<see cref="CompileAhead"/>) has the missing ones compiled at once, and each load then waits only for its own file.
/// </summary>
public sealed class KernelCache : IDisposable
{
    private readonly CudaDevice _device;
    private readonly ConcurrentDictionary<string, Lazy<CudaModule>> _modules = new();
    private readonly ConcurrentDictionary<string, KernelSource> _sources = new();
    private long _diskHits;
    private long _aheadHits;
    private long _aheadWaitTicks;
    private long _loadTicks;
    // Cancelled at Dispose: compiles started ahead that have not begun are dropped, running ones stopped (a process worker
    // kills its child).
    private readonly CancellationTokenSource _stop = new();

    /// <param name="kernelDirectory">Folder holding the .cu (and .cuh) files; see <see cref="DefaultKernelDirectory"/>.</param>
    /// <param name="cacheDirectory">Folder for the cubins (the runner passes the cache's <c>kernels/</c>, <c>~/.cache/autoresearch/kernels</c> by default).</param>
    public KernelCache(CudaDevice device, string kernelDirectory, string cacheDirectory)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        Store = new CubinStore(device.Properties.GpuArchitecture, kernelDirectory, cacheDirectory);
    }

    /// <summary>The kernels/ folder next to the running binaries.</summary>
    public static string DefaultKernelDirectory => Path.Combine(AppContext.BaseDirectory, "kernels");

    /// <summary>The device the kernels are compiled for (launchers size their grids from its multiprocessor count).</summary>
    public CudaDevice Device => _device;

    /// <summary>The cubins on disk, and the compiler.</summary>
    public CubinStore Store { get; }

    public string KernelDirectory => Store.KernelDirectory;

    public string CacheDirectory => Store.CacheDirectory;

    /// <summary>Files compiled for this process: by NVRTC in it, and by <see cref="CompileAhead"/>'s workers.</summary>
    public long Compiled => Store.Compiled + Store.CompiledAhead;

    /// <summary>Files loaded from a cubin that was on disk before this process asked for it.</summary>
    public long DiskHits => Interlocked.Read(ref _diskHits);

    /// <summary>Files loaded from a cubin <see cref="CompileAhead"/> compiled.</summary>
    public long AheadHits => Interlocked.Read(ref _aheadHits);

    /// <summary>Time loads spent waiting for <see cref="CompileAhead"/>'s compiles: what the compiles still cost the caller.</summary>
    public TimeSpan AheadWaitTime => TimeSpan.FromTicks(Interlocked.Read(ref _aheadWaitTicks));

    /// <summary>Time spent in NVRTC in this process, summed over threads.</summary>
    public TimeSpan CompileTime => Store.CompileTime;

    /// <summary>The longest compile <see cref="CompileAhead"/> ran (what a cold start's compiles cannot be shorter than), or null.</summary>
    public KernelCompileTime? LongestAheadCompile => Store.AheadTimes.MaxBy(t => t.Elapsed);

    /// <summary>Time spent reading cubins and loading modules.</summary>
    public TimeSpan LoadTime => TimeSpan.FromTicks(Interlocked.Read(ref _loadTicks));

    /// <summary>The options every kernel is compiled with, for this device.</summary>
    public IReadOnlyList<string> BaseOptions(IReadOnlyList<string>? extra) => Store.BaseOptions(extra);

    /// <summary>
    /// Starts compiling, at once and in the background, every file of <paramref name="sources"/> whose cubin is missing (see
    /// <see cref="CubinStore.CompileAhead"/>); <paramref name="worker"/> null compiles in this process's threads.
    /// </summary>
    public Task<IReadOnlyList<Exception>> CompileAhead(IEnumerable<KernelSource> sources, KernelCompileWorker? worker = null, int parallelism = 0)
        => Store.CompileAhead(sources, worker, parallelism, _stop.Token);

    /// <summary>Files the compiles started ahead failed on (see <see cref="CubinStore.AheadFailures"/>), each compiled again when loaded.</summary>
    public long AheadFailures => Store.AheadFailures;

    /// <summary>Loads the module for <paramref name="fileName"/> (e.g. "attention.cu"), compiling it if no cubin is cached.</summary>
    public CudaModule Load(string fileName, IReadOnlyList<string>? extraOptions = null)
        => Load(new KernelSource(fileName, extraOptions ?? []));

    /// <summary>Loads the module of <paramref name="source"/>, compiling it if no cubin is cached.</summary>
    public CudaModule Load(KernelSource source)
    {
        var job = Store.Job(source);
        _sources.TryAdd(job.Key, source);
        return _modules.GetOrAdd(job.Key, _ => new Lazy<CudaModule>(() => LoadOrCompile(job))).Value;
    }

    /// <summary>
    /// What each kernel asked for so far was compiled to (registers, local memory, static shared memory), by file, options
    /// and name: the resource report of a compiler's verbose mode, read from the driver, for <c>profile --resources</c>.
    /// </summary>
    public IReadOnlyList<KernelResources> Resources()
    {
        var rows = new List<KernelResources>();
        foreach (var (_, source, module) in Loaded())
        {
            foreach (var kernel in module.Kernels)
                rows.Add(new KernelResources(source.FileName, string.Join(' ', source.Options), kernel.Name, kernel.Registers, kernel.LocalBytes, kernel.StaticSharedBytes));
        }
        return [.. rows.OrderBy(r => r.File, StringComparer.Ordinal).ThenBy(r => r.Options, StringComparer.Ordinal).ThenBy(r => r.Kernel, StringComparer.Ordinal)];
    }

    /// <summary>
    /// The performance notes of the compiles of the files loaded so far (<see cref="CompilerWarnings"/>: e.g. wgmma products
    /// serialised by ptxas), read from the logs kept beside their cubins, by file and options; empty when there are none.
    /// </summary>
    public IReadOnlyList<KernelCompileNote> PerformanceNotes()
    {
        var notes = new List<KernelCompileNote>();
        foreach (var (key, source, _) in Loaded())
        {
            foreach (var note in CubinStore.PerformanceNotes(Store.CubinPath(source.FileName, key)))
                notes.Add(new KernelCompileNote(source.FileName, string.Join(' ', source.Options), note));
        }
        return [.. notes.OrderBy(n => n.File, StringComparer.Ordinal).ThenBy(n => n.Options, StringComparer.Ordinal)];
    }

    /// <summary>Files loaded so far whose cubin has no compile log beside it (compiled before logs were kept): their notes are unknown.</summary>
    public int LoadedWithoutLog() => Loaded().Count(l => !CubinStore.HasLog(Store.CubinPath(l.Source.FileName, l.Key)));

    /// <summary>The files loaded so far: each one's cache key, what was asked for, and its module.</summary>
    private IEnumerable<(string Key, KernelSource Source, CudaModule Module)> Loaded()
    {
        foreach (var (key, module) in _modules)
        {
            if (module.IsValueCreated && _sources.TryGetValue(key, out var source))
                yield return (key, source, module.Value);
        }
    }

    /// <summary>The digest that names a cubin: the source, the headers beside it, the options, the architecture and NVRTC's version.</summary>
    public string CacheKey(string source, IReadOnlyList<string> options) => Store.CacheKey(source, options);

    /// <summary>The cubin file a key maps to.</summary>
    public string CubinPath(string fileName, string key) => Store.CubinPath(fileName, key);

    private CudaModule LoadOrCompile(KernelCompileJob job)
    {
        var watch = Stopwatch.StartNew();
        bool ahead = Store.WaitForAhead(job.Key, out var failure);
        if (ahead)
        {
            Interlocked.Add(ref _aheadWaitTicks, watch.Elapsed.Ticks);
            watch.Restart();
        }
        byte[] image;
        if (File.Exists(job.CubinPath))
        {
            image = File.ReadAllBytes(job.CubinPath);
            Interlocked.Increment(ref ahead && failure is null ? ref _aheadHits : ref _diskHits);
        }
        else
        {
            // Not cached, or the ahead compile failed: compile here, so that a compile error carries NVRTC's log.
            image = Store.Compile(job);
            watch.Restart();
        }
        var module = new CudaModule(_device, image, job.FileName);
        Interlocked.Add(ref _loadTicks, watch.Elapsed.Ticks);
        return module;
    }

    /// <summary>CUDA's include folder for headers such as cuda_bf16.h: <c>$CUDA_HOME/include</c> or /usr/local/cuda/include, when present.</summary>
    public static string? ToolkitIncludeDirectory() => CubinStore.ToolkitIncludeDirectory();

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var module in _modules.Values)
        {
            if (module.IsValueCreated)
                module.Value.Dispose();
        }
        _modules.Clear();
    }
}

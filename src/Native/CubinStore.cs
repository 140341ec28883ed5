using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace AutoResearch.Native;

/// <summary>One compile: what NVRTC is given (the source text, its full path for includes and messages, every option) and where the cubin goes.</summary>
public sealed record KernelCompileJob(string FileName, string SourcePath, string Source, IReadOnlyList<string> Options, string Key, string CubinPath);

/// <summary>One compile's wall time: the file, every option it was given, and how long it took (start to cubin on disk).</summary>
public sealed record KernelCompileTime(string FileName, IReadOnlyList<string> Options, TimeSpan Elapsed)
{
    /// <summary>The file and the options that tell its compiles apart (the -D defines), e.g. "rotary.cu -DHEAD_DIM=128".</summary>
    public string Label => string.Join(' ', [FileName, .. Options.Where(o => o.StartsWith("-D", StringComparison.Ordinal))]);
}

/// <summary>Compiles <paramref name="job"/> and writes its cubin to <see cref="KernelCompileJob.CubinPath"/> (whole or not at all); throws when it cannot.</summary>
public delegate void KernelCompileWorker(KernelCompileJob job, CancellationToken cancel);

/// <summary>
/// The cubins of one GPU architecture and NVRTC version under a cache folder: one per (kernel file and the kernel folder's
/// headers, options), named by a digest of them all. Compiles what is missing, one file at a time or many at once
/// (<see cref="CompileAhead"/>). Needs NVRTC, not a GPU; <see cref="KernelCache"/> loads the cubins into a device's context.
/// </summary>
public sealed class CubinStore
{
    private readonly string _headerDigest;
    private readonly (int Major, int Minor) _nvrtcVersion;
    private readonly ConcurrentDictionary<string, Task<Exception?>> _ahead = new();
    private readonly ConcurrentQueue<KernelCompileTime> _aheadTimes = new();
    private long _compiled;
    private long _compileTicks;
    private long _compiledAhead;
    private long _aheadFailures;

    /// <param name="architecture">NVRTC's --gpu-architecture, a real one (e.g. "sm_90a"): the cubin is for it.</param>
    /// <param name="kernelDirectory">Folder holding the .cu (and .cuh) files.</param>
    /// <param name="cacheDirectory">Folder for the cubins.</param>
    public CubinStore(string architecture, string kernelDirectory, string cacheDirectory)
        : this(architecture, kernelDirectory, cacheDirectory, null)
    {
    }

    /// <summary>As the public constructor, with NVRTC's version given (tests of the bookkeeping, where NVRTC need not load).</summary>
    internal CubinStore(string architecture, string kernelDirectory, string cacheDirectory, (int Major, int Minor)? nvrtcVersion)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(architecture);
        ArgumentException.ThrowIfNullOrWhiteSpace(cacheDirectory);
        if (!Directory.Exists(kernelDirectory))
            throw new DirectoryNotFoundException($"kernel folder '{kernelDirectory}' does not exist (the .cu files ship beside the binaries under kernels/).");
        Architecture = architecture;
        KernelDirectory = Path.GetFullPath(kernelDirectory);
        CacheDirectory = cacheDirectory;
        _nvrtcVersion = nvrtcVersion ?? NvrtcCompiler.Version();
        _headerDigest = DigestHeaders(KernelDirectory);
        DeleteAbandonedTemporaryFiles(CacheDirectory);
    }

    /// <summary>
    /// Temporary cubins and logs (<c>NAME.cubin.PID.GUID.tmp</c>, <c>NAME.cubin.log.PID.GUID.tmp</c>) of processes that no longer run: a compile-kernel child killed while
    /// writing, a run killed outright. Those of running processes (another run compiling now) are left alone.
    /// </summary>
    private static void DeleteAbandonedTemporaryFiles(string cacheDirectory)
    {
        if (!Directory.Exists(cacheDirectory))
            return;
        foreach (var file in Directory.GetFiles(cacheDirectory, "*.cubin.*.tmp"))
        {
            var parts = Path.GetFileName(file).Split('.');
            if (parts.Length < 4 || !int.TryParse(parts[^3], out int pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                using var process = Process.GetProcessById(pid);
            }
            catch (ArgumentException)
            {
                try
                {
                    File.Delete(file); // no such process
                }
                catch (IOException)
                {
                    // another run removed it first, or it is in use: leave it
                }
            }
        }
    }

    public string Architecture { get; }

    public string KernelDirectory { get; }

    public string CacheDirectory { get; }

    /// <summary>Files <see cref="Compile"/> compiled: compiles a caller waited for whole.</summary>
    public long Compiled => Interlocked.Read(ref _compiled);

    /// <summary>Time spent in NVRTC in this process, summed over threads.</summary>
    public TimeSpan CompileTime => TimeSpan.FromTicks(Interlocked.Read(ref _compileTicks));

    /// <summary>Files <see cref="CompileAhead"/> compiled, by whichever worker.</summary>
    public long CompiledAhead => Interlocked.Read(ref _compiledAhead);

    /// <summary>Each compile <see cref="CompileAhead"/> ran that wrote its cubin, with its wall time from start to cubin on disk, in the
    /// order they ended (with the in-process worker, a compile NVRTC queued behind another counts its wait).</summary>
    public IReadOnlyList<KernelCompileTime> AheadTimes => [.. _aheadTimes];

    /// <summary>Files <see cref="CompileAhead"/> failed to compile (not counting cancelled ones): each is compiled again, in-process, when loaded.</summary>
    public long AheadFailures => Interlocked.Read(ref _aheadFailures);

    /// <summary>The language standard every kernel is compiled with (<see cref="BaseOptions"/>).</summary>
    public const string LanguageStandardOption = "--std=c++17";

    /// <summary>Functions without an execution space are device functions, in every kernel (<see cref="BaseOptions"/>).</summary>
    public const string DeviceDefaultOption = "--device-as-default-execution-space";

    /// <summary>The options every kernel is compiled with, then <paramref name="extra"/>.</summary>
    public IReadOnlyList<string> BaseOptions(IReadOnlyList<string>? extra)
    {
        var options = new List<string>
        {
            $"--gpu-architecture={Architecture}",
            LanguageStandardOption,
            DeviceDefaultOption,
            "-lineinfo",
            $"--include-path={KernelDirectory}",
        };
        var toolkitInclude = ToolkitIncludeDirectory();
        if (toolkitInclude is not null)
            options.Add($"--include-path={toolkitInclude}");
        if (extra is not null)
            options.AddRange(extra);
        return options;
    }

    /// <summary>The digest that names a cubin: the source, the headers beside it, the options, the architecture and NVRTC's version.</summary>
    public string CacheKey(string source, IReadOnlyList<string> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var text = new StringBuilder()
            .Append("source\n").Append(source).Append('\n')
            .Append("headers\n").Append(_headerDigest).Append('\n')
            .Append("options\n").AppendJoin('\n', options).Append('\n')
            .Append("arch\n").Append(Architecture).Append('\n')
            .Append("nvrtc\n").Append(_nvrtcVersion.Major).Append('.').Append(_nvrtcVersion.Minor);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..24];
    }

    /// <summary>The cubin file a key maps to.</summary>
    public string CubinPath(string fileName, string key)
        => Path.Combine(CacheDirectory, $"{Path.GetFileNameWithoutExtension(fileName)}-{Architecture}-{key}.cubin");

    /// <summary>The compile of <paramref name="source"/>: its text as it is now, the options, the key and the cubin's path.</summary>
    public KernelCompileJob Job(KernelSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var path = Path.Combine(KernelDirectory, source.FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"kernel source '{path}' does not exist.", path);
        var text = File.ReadAllText(path);
        var options = BaseOptions(source.Options);
        var key = CacheKey(text, options);
        return new KernelCompileJob(source.FileName, path, text, options, key, CubinPath(source.FileName, key));
    }

    /// <summary>
    /// Compiles <paramref name="job"/> with NVRTC in this process, writes the cubin and returns it. The program is named by the
    /// source's full path: NVRTC looks for a quoted #include first in the folder of that name, so a relative name
    /// ("kernels/x.cu") would take headers from the working directory's kernels/ folder (another checkout's) instead of the
    /// ones beside the source, which the key digests.
    /// </summary>
    public byte[] Compile(KernelCompileJob job)
    {
        var image = CompileAndWrite(job);
        Interlocked.Increment(ref _compiled);
        return image;
    }

    /// <summary>The in-process worker of <see cref="CompileAhead"/>. NVRTC may serialise the compiles of one process (some versions
    /// do); a worker that runs each job in a process of its own is not bound by that.</summary>
    public void CompileInProcess(KernelCompileJob job, CancellationToken cancel) => CompileAndWrite(job);

    private byte[] CompileAndWrite(KernelCompileJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var watch = Stopwatch.StartNew();
        var compiled = NvrtcCompiler.Compile(job.Source, job.SourcePath, job.Options);
        Interlocked.Add(ref _compileTicks, watch.Elapsed.Ticks);
        TryKeepLog(LogPath(job.CubinPath), compiled.Log);
        WriteAtomically(job.CubinPath, compiled.Cubin);
        return compiled.Cubin;
    }

    /// <summary>Where the compile log of the cubin at <paramref name="cubinPath"/> is kept, when its compile logged anything.</summary>
    public static string LogPath(string cubinPath)
    {
        ArgumentNullException.ThrowIfNull(cubinPath);
        return cubinPath + ".log";
    }

    /// <summary>
    /// Keeps <paramref name="log"/> (a successful compile's warnings, ptxas's among them; empty for a clean compile) at
    /// <paramref name="path"/>, whole or not at all, creating its folder. The store writes a cubin's log (at <see cref="LogPath"/>)
    /// before the cubin, so that whoever sees the cubin sees its log, and a cubin without one was compiled before logs were kept.
    /// </summary>
    public static void KeepLog(string path, string? log)
    {
        ArgumentNullException.ThrowIfNull(path);
        WriteAtomically(path, Encoding.UTF8.GetBytes(log ?? ""));
    }

    /// <summary><see cref="KeepLog"/>, where a log that cannot be written (a full or read-only disk) costs only the log: a warning
    /// on standard error, and the compile goes on to write its cubin.</summary>
    public static bool TryKeepLog(string path, string? log)
    {
        try
        {
            KeepLog(path, log);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"warning: could not keep the compile log at {path} ({e.Message}); the cubin is kept without it");
            return false;
        }
    }

    /// <summary>Whether the cubin at <paramref name="cubinPath"/> has its compile log beside it (cubins compiled before logs were kept have none).</summary>
    public static bool HasLog(string cubinPath) => File.Exists(LogPath(cubinPath));

    /// <summary>The performance notes (<see cref="CompilerWarnings.PerformanceNotes"/>) of the log kept beside the cubin at
    /// <paramref name="cubinPath"/>: none where its compile logged none, or where it has no log (<see cref="HasLog"/>).</summary>
    public static IReadOnlyList<string> PerformanceNotes(string cubinPath)
    {
        var path = LogPath(cubinPath);
        return File.Exists(path) ? CompilerWarnings.PerformanceNotes(File.ReadAllText(path)) : [];
    }

    /// <summary>
    /// Starts compiling every source of <paramref name="sources"/> whose cubin is not on disk, up to <paramref name="parallelism"/>
    /// at a time (default: one per processor), the longest sources first, each with <paramref name="worker"/> (default
    /// <see cref="CompileInProcess"/>), and returns at once. A source listed twice, or already started, is compiled once.
    /// <see cref="KernelCache.Load(KernelSource)"/> waits for a started compile of what it loads; a compile that failed leaves
    /// no cubin, so the load compiles it again in-process, where NVRTC's log reaches the caller. The returned task completes
    /// when every started compile has ended, with the failures (never faulted).
    /// </summary>
    public Task<IReadOnlyList<Exception>> CompileAhead(IEnumerable<KernelSource> sources, KernelCompileWorker? worker = null, int parallelism = 0,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(sources);
        worker ??= CompileInProcess;
        if (parallelism <= 0)
            parallelism = Environment.ProcessorCount;
        var jobs = sources.Distinct().Select(Job).Where(j => !File.Exists(j.CubinPath) && !_ahead.ContainsKey(j.Key))
            .OrderByDescending(j => j.Source.Length).ToList();
        // A queue in that order, drained by `parallelism` threads: each compile starts as soon as one before it ends.
        var queue = new ConcurrentQueue<(KernelCompileJob Job, TaskCompletionSource<Exception?> Done)>();
        var started = new List<Task<Exception?>>();
        foreach (var job in jobs)
        {
            var done = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_ahead.TryAdd(job.Key, done.Task))
            {
                queue.Enqueue((job, done));
                started.Add(done.Task);
            }
        }
        for (int i = 0; i < Math.Min(parallelism, started.Count); i++)
        {
            var thread = new Thread(() =>
            {
                while (queue.TryDequeue(out var item))
                    item.Done.SetResult(Run(item.Job, worker, cancel));
            })
            {
                IsBackground = true,
                Name = "kernel compile",
            };
            thread.Start();
        }
        return Task.WhenAll(started).ContinueWith(
            all => (IReadOnlyList<Exception>)all.Result.OfType<Exception>().ToList(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private Exception? Run(KernelCompileJob job, KernelCompileWorker worker, CancellationToken cancel)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            cancel.ThrowIfCancellationRequested();
            worker(job, cancel);
            if (!File.Exists(job.CubinPath))
            {
                Interlocked.Increment(ref _aheadFailures);
                return new InvalidOperationException($"the compile of {job.FileName} ended without writing {job.CubinPath}");
            }
            _aheadTimes.Enqueue(new KernelCompileTime(job.FileName, job.Options, watch.Elapsed));
            Interlocked.Increment(ref _compiledAhead);
            return null;
        }
#pragma warning disable CA1031 // a failed ahead compile is handed back, and the load compiles the file again where it can report it
        catch (Exception e)
#pragma warning restore CA1031
        {
            if (!cancel.IsCancellationRequested)
                Interlocked.Increment(ref _aheadFailures);
            return e;
        }
    }

    /// <summary>Waits for the <see cref="CompileAhead"/> compile of <paramref name="key"/>, if one was started; returns whether one was, and its failure.</summary>
    public bool WaitForAhead(string key, out Exception? failure)
    {
        failure = null;
        if (!_ahead.TryGetValue(key, out var task))
            return false;
        failure = task.Result;
        return true;
    }

    /// <summary>Writes to a temporary name beside <paramref name="path"/>, then renames: a reader sees the whole file or none.</summary>
    public static void WriteAtomically(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(bytes);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp); // nothing there once moved; a partial file when the write failed
        }
    }

    private static string DigestHeaders(string directory)
    {
        var builder = new StringBuilder();
        foreach (var header in Directory.GetFiles(directory, "*.cuh", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            builder.Append(Path.GetRelativePath(directory, header)).Append('\n').Append(File.ReadAllText(header)).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(builder.ToString())));
    }

    /// <summary>CUDA's include folder for headers such as cuda_bf16.h: <c>$CUDA_HOME/include</c> or /usr/local/cuda/include, when present.</summary>
    public static string? ToolkitIncludeDirectory()
    {
        foreach (var root in new[] { Environment.GetEnvironmentVariable("CUDA_HOME"), Environment.GetEnvironmentVariable("CUDA_PATH"), "/usr/local/cuda" })
        {
            if (string.IsNullOrWhiteSpace(root))
                continue;
            var include = Path.Combine(root, "include");
            if (File.Exists(Path.Combine(include, "cuda_bf16.h")))
                return include;
        }
        return null;
    }
}

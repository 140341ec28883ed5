using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace AutoResearch.Native;

/// <summary>
/// Compiles each kernel file once per (source and the kernel folder's headers, options, GPU architecture, NVRTC version)
/// for the device's own architecture, keeps the cubin on disk under the cache folder, and loads it from there on later
/// starts. Modules are also kept in memory, so a file is loaded once per process.
/// </summary>
public sealed class KernelCache : IDisposable
{
    private readonly CudaDevice _device;
    private readonly ConcurrentDictionary<string, Lazy<CudaModule>> _modules = new();
    private readonly string _headerDigest;
    private readonly (int Major, int Minor) _nvrtcVersion;
    private long _compiled;
    private long _diskHits;
    private long _compileTicks;
    private long _loadTicks;

    /// <param name="kernelDirectory">Folder holding the .cu (and .cuh) files; see <see cref="DefaultKernelDirectory"/>.</param>
    /// <param name="cacheDirectory">Folder for the cubins (the runner passes the cache's <c>kernels/</c>, <c>~/.cache/autoresearch/kernels</c> by default).</param>
    public KernelCache(CudaDevice device, string kernelDirectory, string cacheDirectory)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!Directory.Exists(kernelDirectory))
            throw new DirectoryNotFoundException($"kernel folder '{kernelDirectory}' does not exist (the .cu files ship beside the binaries under kernels/).");
        _device = device;
        KernelDirectory = Path.GetFullPath(kernelDirectory);
        CacheDirectory = cacheDirectory;
        _nvrtcVersion = NvrtcCompiler.Version();
        _headerDigest = DigestHeaders(kernelDirectory);
    }

    /// <summary>The kernels/ folder next to the running binaries.</summary>
    public static string DefaultKernelDirectory => Path.Combine(AppContext.BaseDirectory, "kernels");

    /// <summary>The device the kernels are compiled for (launchers size their grids from its multiprocessor count).</summary>
    public CudaDevice Device => _device;

    public string KernelDirectory { get; }

    public string CacheDirectory { get; }

    /// <summary>Files compiled by NVRTC in this process.</summary>
    public long Compiled => Interlocked.Read(ref _compiled);

    /// <summary>Files loaded from a cubin already on disk.</summary>
    public long DiskHits => Interlocked.Read(ref _diskHits);

    /// <summary>Time spent in NVRTC.</summary>
    public TimeSpan CompileTime => TimeSpan.FromTicks(Interlocked.Read(ref _compileTicks));

    /// <summary>Time spent reading cubins and loading modules.</summary>
    public TimeSpan LoadTime => TimeSpan.FromTicks(Interlocked.Read(ref _loadTicks));

    /// <summary>The options every kernel is compiled with, for this device.</summary>
    public IReadOnlyList<string> BaseOptions(IReadOnlyList<string>? extra)
    {
        var options = new List<string>
        {
            $"--gpu-architecture={_device.Properties.GpuArchitecture}",
            "--std=c++17",
            "--device-as-default-execution-space",
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

    /// <summary>Loads the module for <paramref name="fileName"/> (e.g. "attention.cu"), compiling it if no cubin is cached.</summary>
    public CudaModule Load(string fileName, IReadOnlyList<string>? extraOptions = null)
    {
        var path = Path.Combine(KernelDirectory, fileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"kernel source '{path}' does not exist.", path);
        var source = File.ReadAllText(path);
        var options = BaseOptions(extraOptions);
        var key = CacheKey(source, options);
        return _modules.GetOrAdd(key, _ => new Lazy<CudaModule>(() => LoadOrCompile(fileName, source, options, key))).Value;
    }

    /// <summary>The digest that names a cubin: the source, the headers beside it, the options, the architecture and NVRTC's version.</summary>
    public string CacheKey(string source, IReadOnlyList<string> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var text = new StringBuilder()
            .Append("source\n").Append(source).Append('\n')
            .Append("headers\n").Append(_headerDigest).Append('\n')
            .Append("options\n").AppendJoin('\n', options).Append('\n')
            .Append("arch\n").Append(_device.Properties.GpuArchitecture).Append('\n')
            .Append("nvrtc\n").Append(_nvrtcVersion.Major).Append('.').Append(_nvrtcVersion.Minor);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..24];
    }

    /// <summary>The cubin file a key maps to.</summary>
    public string CubinPath(string fileName, string key)
        => Path.Combine(CacheDirectory, $"{Path.GetFileNameWithoutExtension(fileName)}-{_device.Properties.GpuArchitecture}-{key}.cubin");

    private CudaModule LoadOrCompile(string fileName, string source, IReadOnlyList<string> options, string key)
    {
        var cubinPath = CubinPath(fileName, key);
        var watch = Stopwatch.StartNew();
        byte[]? image = null;
        if (File.Exists(cubinPath))
        {
            image = File.ReadAllBytes(cubinPath);
            Interlocked.Increment(ref _diskHits);
        }
        else
        {
            // The program is named by its full path: NVRTC looks for a quoted #include first in the folder of
            // that name, so a relative name ("kernels/x.cu") would take headers from the working directory's
            // kernels/ folder (another checkout's) instead of the ones beside the source, which the key digests.
            var output = NvrtcCompiler.Compile(source, Path.Combine(KernelDirectory, fileName), options);
            image = output.Cubin;
            Interlocked.Add(ref _compileTicks, watch.Elapsed.Ticks);
            Interlocked.Increment(ref _compiled);
            WriteAtomically(cubinPath, image);
            watch.Restart();
        }
        var module = new CudaModule(_device, image, fileName);
        Interlocked.Add(ref _loadTicks, watch.Elapsed.Ticks);
        return module;
    }

    private static void WriteAtomically(string path, byte[] bytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
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

    public void Dispose()
    {
        foreach (var module in _modules.Values)
        {
            if (module.IsValueCreated)
                module.Value.Dispose();
        }
        _modules.Clear();
    }
}

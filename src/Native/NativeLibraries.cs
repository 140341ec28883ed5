using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>
/// Maps the logical library names used by the <c>[LibraryImport]</c> declarations ("cuda", "nvrtc", "cublas",
/// "cublasLt", "nvml") to the real shared objects, found once by <see cref="NativeLibraryResolver"/>.
/// Call <see cref="Ensure"/> before the first call into a library so a missing one fails with the full list of attempts.
/// </summary>
public static class NativeLibraries
{
    public const string Cuda = "cuda";
    public const string Nvrtc = "nvrtc";
    public const string Cublas = "cublas";
    public const string CublasLt = "cublasLt";
    public const string Nvml = "nvml";

    private const string ToolkitHint =
        "Install the CUDA 12 or 13 toolkit libraries (NVRTC and cuBLAS, e.g. the 'cuda-toolkit' or 'cuda-libraries' packages) "
        + "or point " + NativeLibraryResolver.OverrideVariable + " at the folder that holds them.";

    private static readonly Dictionary<string, (string Display, string[] Files, string Hint)> Known = new()
    {
        [Cuda] = ("the CUDA driver (libcuda)", ["libcuda.so.1", "libcuda.so"],
            "Install an NVIDIA driver with CUDA 12 or 13 support (it provides libcuda.so.1); training needs an NVIDIA GPU."),
        [Nvrtc] = ("NVRTC (libnvrtc)", ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], ToolkitHint),
        [Cublas] = ("cuBLAS (libcublas)", ["libcublas.so.13", "libcublas.so.12", "libcublas.so"], ToolkitHint),
        [CublasLt] = ("cuBLASLt (libcublasLt)", ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], ToolkitHint),
        [Nvml] = ("NVML (libnvidia-ml)", ["libnvidia-ml.so.1", "libnvidia-ml.so"],
            "It comes with the NVIDIA driver; without it `profile` reports no energy or clocks (nothing else needs it)."),
    };

    private static readonly ConcurrentDictionary<string, Lazy<IntPtr>> Handles = new();

    /// <summary>Loads a library by its logical name (once), or throws <see cref="NativeLibraryNotFoundException"/>.</summary>
    public static IntPtr Ensure(string name)
    {
        if (!Known.TryGetValue(name, out var entry))
            throw new ArgumentException($"unknown native library '{name}'", nameof(name));
        return Handles.GetOrAdd(name, _ => new Lazy<IntPtr>(() => NativeLibraryResolver.Load(entry.Display, entry.Files, entry.Hint))).Value;
    }

#pragma warning disable CA2255 // The resolver must be installed before any P/Invoke in this assembly binds.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void InstallResolver()
        => NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!Known.ContainsKey(libraryName))
            return IntPtr.Zero;
        try
        {
            return Ensure(libraryName);
        }
        catch (NativeLibraryNotFoundException)
        {
            // The runtime then throws DllNotFoundException; public entry points call Ensure first, so users see the full list.
            return IntPtr.Zero;
        }
    }
}

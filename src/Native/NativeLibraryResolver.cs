using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>
/// The one place that finds a native library: an override folder from an environment variable first,
/// then each versioned name in the usual CUDA folders and on the loader path. Every attempt is kept,
/// so a failure can say exactly which names and folders were tried.
/// </summary>
public static class NativeLibraryResolver
{
    /// <summary>Environment variable naming a folder searched before every other place.</summary>
    public const string OverrideVariable = "AUTORESEARCH_CUDA_LIB_DIR";

    /// <summary>The folders searched by path, in order, after the override folder.</summary>
    public static IReadOnlyList<string> StandardFolders { get; } =
    [
        "/usr/local/cuda/lib64",
        "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/local/nvidia/lib64",
    ];

    /// <summary>
    /// The candidate paths for a library, in the order they are tried: each file name in the override
    /// folder, then in each standard folder, then each bare name (the dynamic loader's own search path).
    /// </summary>
    public static IReadOnlyList<string> Candidates(IReadOnlyList<string> fileNames, string? overrideFolder, IReadOnlyList<string> folders)
    {
        var result = new List<string>();
        if (!string.IsNullOrWhiteSpace(overrideFolder))
        {
            foreach (var name in fileNames)
                result.Add(Path.Combine(overrideFolder, name));
        }
        foreach (var folder in folders)
        {
            foreach (var name in fileNames)
                result.Add(Path.Combine(folder, name));
        }
        result.AddRange(fileNames);
        return result;
    }

    /// <summary>Loads the first candidate that opens, or throws a <see cref="NativeLibraryNotFoundException"/> listing every attempt.</summary>
    public static IntPtr Load(string displayName, IReadOnlyList<string> fileNames, string installHint)
        => Load(displayName, fileNames, installHint, Environment.GetEnvironmentVariable(OverrideVariable), StandardFolders, TryLoadOne);

    /// <summary>The testable core of <see cref="Load(string, IReadOnlyList{string}, string)"/>: the loader is passed in.</summary>
    public static IntPtr Load(string displayName, IReadOnlyList<string> fileNames, string installHint,
        string? overrideFolder, IReadOnlyList<string> folders, Func<string, (IntPtr Handle, string? Error)> tryLoad)
    {
        var attempts = new List<string>();
        foreach (var candidate in Candidates(fileNames, overrideFolder, folders))
        {
            bool isPath = candidate.Contains('/', StringComparison.Ordinal);
            if (isPath && !File.Exists(candidate))
            {
                attempts.Add($"{candidate}: no such file");
                continue;
            }
            var (handle, error) = tryLoad(candidate);
            if (handle != IntPtr.Zero)
                return handle;
            attempts.Add($"{candidate}: {error ?? "could not be loaded"}");
        }
        throw new NativeLibraryNotFoundException(displayName, attempts, overrideFolder, installHint);
    }

    private static (IntPtr, string?) TryLoadOne(string candidate)
    {
        try
        {
            return (NativeLibrary.Load(candidate), null);
        }
        catch (DllNotFoundException e)
        {
            return (IntPtr.Zero, e.Message);
        }
        catch (BadImageFormatException e)
        {
            return (IntPtr.Zero, e.Message);
        }
    }
}

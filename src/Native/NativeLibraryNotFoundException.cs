namespace AutoResearch.Native;

/// <summary>A native library could not be found: names every file tried and says what to install.</summary>
public sealed class NativeLibraryNotFoundException : Exception
{
    public NativeLibraryNotFoundException(string library, IReadOnlyList<string> attempts, string? overrideFolder, string installHint)
        : base(Format(library, attempts, overrideFolder, installHint))
    {
        Library = library;
        Attempts = attempts;
        InstallHint = installHint;
    }

    /// <summary>The library's display name, e.g. "CUDA driver (libcuda)".</summary>
    public string Library { get; }

    /// <summary>Every candidate tried, with the reason it failed.</summary>
    public IReadOnlyList<string> Attempts { get; }

    /// <summary>What to install (or which variable to set) to get the library.</summary>
    public string InstallHint { get; }

    private static string Format(string library, IReadOnlyList<string> attempts, string? overrideFolder, string installHint)
    {
        var overrideText = string.IsNullOrWhiteSpace(overrideFolder)
            ? $"{NativeLibraryResolver.OverrideVariable} is not set"
            : $"{NativeLibraryResolver.OverrideVariable}={overrideFolder}";
        return $"{library} was not found ({overrideText}). Tried {attempts.Count} places:{Environment.NewLine}  "
            + string.Join(Environment.NewLine + "  ", attempts)
            + Environment.NewLine + installHint;
    }
}

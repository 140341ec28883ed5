namespace AutoResearch.Native;

/// <summary>A kernel source failed to compile: carries NVRTC's log, whose lines name the file and line ("file.cu(12): error: ...").</summary>
public sealed class NvrtcCompileException : Exception
{
    public NvrtcCompileException(string sourceName, string log, IReadOnlyList<string> options)
        : base($"{sourceName} failed to compile with NVRTC ({string.Join(' ', options)}):{Environment.NewLine}{log.TrimEnd()}")
    {
        SourceName = sourceName;
        Log = log;
    }

    public string SourceName { get; }

    public string Log { get; }
}

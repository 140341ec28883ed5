namespace AutoResearch.Native;

/// <summary>
/// One kernel file as a launcher compiles it: the file under the kernel folder (e.g. "rotary.cu") and the options beyond the
/// base ones (e.g. "-DHEAD_DIM=128"). Launchers expose theirs so a model can list every file it will load and have them
/// compiled at once (<see cref="CubinStore.CompileAhead"/>) before its constructors ask for them one by one.
/// </summary>
public sealed record KernelSource(string FileName, IReadOnlyList<string> Options)
{
    public KernelSource(string fileName)
        : this(fileName, [])
    {
    }

    /// <summary>Equal when the file and the options (in order) are.</summary>
    public bool Equals(KernelSource? other)
        => other is not null && FileName == other.FileName && Options.SequenceEqual(other.Options);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(FileName);
        foreach (var option in Options)
            hash.Add(option);
        return hash.ToHashCode();
    }

    public override string ToString() => Options.Count == 0 ? FileName : $"{FileName} {string.Join(' ', Options)}";
}

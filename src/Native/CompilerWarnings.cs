namespace AutoResearch.Native;

/// <summary>A compiler's performance note on one kernel file compiled with some options (the -D defines that pick a variant).</summary>
public sealed record KernelCompileNote(string File, string Options, string Note)
{
    /// <summary>"file options: note".</summary>
    public override string ToString() => $"{File}{(Options.Length > 0 ? " " + Options : "")}: {Note}";
}

/// <summary>
/// The lines of a compile log that say the compiler gave up speed: ptxas's "Potential Performance Loss" notes, such as wgmma
/// products serialised (C7510–C7515: a product under divergent control flow, too few registers for the products in flight).
/// Such a compile succeeds and the kernel is correct, only slower, often by far; NVRTC shows the note only in its log, which a
/// successful compile otherwise leaves unread. <see cref="CubinStore"/> keeps each cubin's log beside it (<see cref="CubinStore.LogPath"/>),
/// so the note is found again when the cubin is loaded from the cache on a later run.
/// </summary>
public static class CompilerWarnings
{
    private const string Marker = "Performance Loss";

    /// <summary>The performance notes of <paramref name="log"/>, without ptxas's "ptxas info :" prefix, each once, in their order.</summary>
    public static IReadOnlyList<string> PerformanceNotes(string? log)
    {
        if (string.IsNullOrEmpty(log))
            return [];
        var notes = new List<string>();
        foreach (var raw in log.Split('\n'))
        {
            var line = raw.Trim();
            if (!line.Contains(Marker, StringComparison.OrdinalIgnoreCase))
                continue;
            // "ptxas info    : (C7511) Potential Performance Loss: ..." → "(C7511) Potential Performance Loss: ..."
            if (line.StartsWith("ptxas", StringComparison.Ordinal) && line.IndexOf(':', StringComparison.Ordinal) is int colon and > 0)
                line = line[(colon + 1)..].Trim();
            if (!notes.Contains(line))
                notes.Add(line);
        }
        return notes;
    }
}

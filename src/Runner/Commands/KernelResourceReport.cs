using System.Globalization;
using AutoResearch.Native;

namespace AutoResearch.Runner;

/// <summary>
/// The loaded kernels' compiled resources as `profile` prints them: one line on local memory (spills show there first), one on
/// the compiler's performance notes, and with --resources a table of every kernel's registers, local and static shared memory.
/// </summary>
public static class KernelResourceReport
{
    /// <summary>One line: no local memory in any kernel, or which kernels use how much a thread (<paramref name="which"/>: "loaded",
    /// "of the cubin").</summary>
    public static string LocalMemoryLine(IReadOnlyList<KernelResources> rows, string which = "loaded")
    {
        ArgumentNullException.ThrowIfNull(rows);
        var local = rows.Where(r => r.LocalBytes > 0).ToList();
        if (local.Count == 0)
            return $"local memory (register spills): none in the {rows.Count} kernels {which}";
        return $"local memory (register spills, or arrays indexed at run time) in {local.Count} of {rows.Count} kernels: "
            + string.Join("; ", local.Select(r => $"{r.Kernel} ({Source(r)}) {r.LocalBytes} B a thread"));
    }

    /// <summary>
    /// One line: no performance note in the compile logs of the loaded kernel files, or a warning with each note, its file and
    /// options (ptxas's "Potential Performance Loss", e.g. wgmma products serialised: correct, but often far slower); and how
    /// many loaded files have no log (<paramref name="withoutLog"/>: cubins compiled before logs were kept), whose notes are unknown.
    /// </summary>
    public static string PerformanceNotesLine(IReadOnlyList<KernelCompileNote> notes, int withoutLog = 0)
    {
        ArgumentNullException.ThrowIfNull(notes);
        var unknown = withoutLog > 0
            ? $"; {withoutLog} loaded file(s) have no compile log (cached before logs were kept: empty the kernel cache to check them)"
            : "";
        if (notes.Count == 0)
            return "compiler performance notes: none in the loaded kernels' compile logs" + unknown;
        return $"warning: the compiler gave up speed in {notes.Select(n => (n.File, n.Options)).Distinct().Count()} kernel file(s) (correct, but slower): "
            + string.Join("; ", notes.Select(n => n.ToString())) + unknown;
    }

    /// <summary>A header and one row a kernel: name, file and options, registers, local bytes, static shared bytes.</summary>
    public static IReadOnlyList<string> Table(IReadOnlyList<KernelResources> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        int nameWidth = Math.Max("kernel".Length, rows.Select(r => r.Kernel.Length).DefaultIfEmpty(0).Max());
        int sourceWidth = Math.Max("file".Length, rows.Select(r => Source(r).Length).DefaultIfEmpty(0).Max());
        var lines = new List<string>
        {
            $"{"kernel".PadRight(nameWidth)}  {"file".PadRight(sourceWidth)}  {"registers",9}  {"local B",7}  {"static shared B",15}",
        };
        foreach (var r in rows)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"{r.Kernel.PadRight(nameWidth)}  {Source(r).PadRight(sourceWidth)}  {r.Registers,9}  {r.LocalBytes,7}  {r.StaticSharedBytes,15}"));
        }
        return lines;
    }

    private static string Source(KernelResources r) => r.Options.Length == 0 ? r.File : $"{r.File} {r.Options}";
}

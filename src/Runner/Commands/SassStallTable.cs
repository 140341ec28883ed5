using System.Globalization;
using System.Text;

namespace AutoResearch.Runner;

/// <summary>One SASS instruction of a kernel as Nsight Compute's source page lists it.</summary>
/// <param name="Offset">Bytes from the kernel's first instruction: the offset <c>cuobjdump -sass</c> prints.</param>
/// <param name="Samples">Warp stall samples taken while a warp's next instruction was this one (all samples).</param>
/// <param name="Reasons">Those samples by reason (<c>long_sb</c>, <c>wait</c>, ...; the column names without their <c>stall_</c> prefix).</param>
/// <param name="GlobalExcessSectors">L2 sectors beyond what a coalesced access would have needed (0 when not collected).</param>
/// <param name="SharedExcessWavefronts">Shared-memory wavefronts beyond the ideal: bank conflicts (0 when not collected).</param>
public sealed record SassInstruction(int Index, long Offset, string Source, double Samples, double Executed,
    IReadOnlyDictionary<string, double> Reasons, double GlobalExcessSectors, double SharedExcessWavefronts)
{
    /// <summary>Whether the instruction reads or writes local memory (register spills, or arrays indexed at run time).</summary>
    public bool IsLocalMemory
    {
        get
        {
            var opcode = Opcode;
            return opcode.StartsWith("LDL", StringComparison.Ordinal) || opcode.StartsWith("STL", StringComparison.Ordinal);
        }
    }

    /// <summary>The opcode with its modifiers, after any predicate (<c>@!P1 BRA ...</c> gives <c>BRA</c>).</summary>
    public string Opcode
    {
        get
        {
            var words = Source.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return words.FirstOrDefault(w => !w.StartsWith('@')) ?? "";
        }
    }
}

/// <summary>One kernel's instructions from the source page.</summary>
public sealed record KernelStalls(string Kernel, IReadOnlyList<SassInstruction> Instructions)
{
    public double TotalSamples => Instructions.Sum(i => i.Samples);

    /// <summary>Samples by stall reason over the whole kernel, largest first.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> ReasonTotals()
    {
        var totals = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var instruction in Instructions)
        {
            foreach (var (reason, samples) in instruction.Reasons)
                totals[reason] = totals.GetValueOrDefault(reason) + samples;
        }
        return [.. totals.Where(t => t.Value > 0).OrderByDescending(t => t.Value).ThenBy(t => t.Key, StringComparer.Ordinal)];
    }
}

/// <summary>
/// Reads the per-instruction table Nsight Compute exports from a report that has the SourceCounters section
/// (<c>ncu --import R.ncu-rep --page source --csv --print-source sass</c>): for each kernel a line <c>"Kernel Name","NAME",</c>,
/// a header line and one line an instruction; and turns it into the few lines a kernel tuner reads first (<see cref="Report"/>).
/// </summary>
public static class SassStallTable
{
    public const string SamplesColumn = "Warp Stall Sampling (All Samples)";
    public const string ExecutedColumn = "Instructions Executed";
    public const string GlobalExcessColumn = "L2 Theoretical Sectors Global Excessive";
    public const string SharedExcessColumn = "L1 Wavefronts Shared Excessive";
    private const string ReasonPrefix = "stall_";

    /// <summary>Every kernel in the file, in its order. Throws <see cref="InvalidDataException"/> naming the file and what was expected.</summary>
    public static IReadOnlyList<KernelStalls> Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: no such file (expected the CSV of `ncu --import REPORT --page source --csv --print-source sass`)", path);
        using var reader = new StreamReader(path);
        return Parse(reader, path);
    }

    public static IReadOnlyList<KernelStalls> Parse(TextReader reader, string fileName)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var kernels = new List<KernelStalls>();
        string? kernel = null;
        Columns? columns = null;
        List<SassInstruction>? instructions = null;
        long firstAddress = 0;
        int lineNumber = 0;
        void Finish()
        {
            if (kernel is null)
                return;
            if (columns is null || instructions is not { Count: > 0 })
                throw new InvalidDataException($"{fileName}:{lineNumber}: the kernel {kernel} has {(columns is null ? "no header line" : "no instructions")} (a truncated export?)");
            kernels.Add(new KernelStalls(kernel, instructions));
        }
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            lineNumber++;
            if (line.Length == 0 || line.StartsWith("==", StringComparison.Ordinal)) // ncu's own messages (==PROF==, ==WARNING==)
                continue;
            var fields = SplitCsvLine(line);
            if (fields[0] == "Kernel Name")
            {
                Finish();
                kernel = fields.Count > 1 && fields[1].Length > 0 ? fields[1] : throw new InvalidDataException($"{fileName}:{lineNumber}: a \"Kernel Name\" line without the name");
                columns = null;
                instructions = [];
                continue;
            }
            if (kernel is null)
                throw new InvalidDataException($"{fileName}:{lineNumber}: expected a \"Kernel Name\" line first: is this the CSV of ncu's source page (--page source --csv --print-source sass)?");
            if (columns is null)
            {
                columns = Columns.Of(fields, fileName, lineNumber);
                continue;
            }
            if (fields.Count < columns.Count)
                throw new InvalidDataException($"{fileName}:{lineNumber}: {fields.Count} fields where the header has {columns.Count}");
            long address = ParseAddress(fields[columns.Address], fileName, lineNumber);
            if (instructions!.Count == 0)
                firstAddress = address;
            var reasons = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var (name, index) in columns.Reasons)
                reasons[name] = Number(fields[index], fileName, lineNumber, name);
            instructions.Add(new SassInstruction(instructions.Count, address - firstAddress, fields[columns.Source].Trim(),
                Number(fields[columns.Samples], fileName, lineNumber, SamplesColumn), Number(fields[columns.Executed], fileName, lineNumber, ExecutedColumn),
                reasons, columns.GlobalExcess is int g ? Number(fields[g], fileName, lineNumber, GlobalExcessColumn) : 0,
                columns.SharedExcess is int s ? Number(fields[s], fileName, lineNumber, SharedExcessColumn) : 0));
        }
        Finish();
        if (kernels.Count == 0)
            throw new InvalidDataException($"{fileName}: no kernel in it (expected the CSV of `ncu --import REPORT --page source --csv --print-source sass`)");
        return kernels;
    }

    /// <summary>
    /// The kernel's summary: its samples by reason, the <paramref name="top"/> instructions with the most samples (their offset,
    /// share of the samples, executions and two largest reasons), then local memory, uncoalesced global accesses and bank
    /// conflicts where there are any.
    /// </summary>
    public static IReadOnlyList<string> Report(KernelStalls kernel, int top)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        var lines = new List<string>();
        double total = kernel.TotalSamples;
        string Share(double samples) => total > 0 ? (100 * samples / total).ToString("0.0", CultureInfo.InvariantCulture) + " %" : "-";
        string Count(double value) => value.ToString("#,0", CultureInfo.InvariantCulture);
        lines.Add($"{kernel.Kernel}: {Count(total)} stall samples over {Count(kernel.Instructions.Count)} SASS instructions");
        if (total <= 0)
        {
            lines.Add("  no stall samples: was the report collected with --section SourceCounters?");
            return lines;
        }
        lines.Add("  by reason: " + string.Join(", ", kernel.ReasonTotals().Take(10).Select(r => $"{r.Key} {Share(r.Value)}")));

        var hottest = kernel.Instructions.Where(i => i.Samples > 0).OrderByDescending(i => i.Samples).ThenBy(i => i.Index).Take(top).ToList();
        if (hottest.Count > 0)
        {
            lines.Add($"  the {hottest.Count} instructions with the most samples (offset as cuobjdump -sass prints it):");
            var rows = hottest.Select(i => new[]
            {
                $"{i.Offset:x4}", Share(i.Samples), Count(i.Executed), Reasons(i), i.Source + WaitNote(kernel, i),
            }).ToList();
            string[] header = ["offset", "samples", "executed", "reasons", "instruction"];
            var width = header.Select((title, c) => rows.Select(r => r[c].Length).Append(title.Length).Max()).ToArray();
            // Offset and reasons left-aligned, the counts right-aligned, the instruction last and unpadded.
            foreach (var c in rows.Prepend(header))
                lines.Add($"    {c[0].PadRight(width[0])}  {c[1].PadLeft(width[1])}  {c[2].PadLeft(width[2])}  {c[3].PadRight(width[3])}  {c[4]}".TrimEnd());
        }

        var local = kernel.Instructions.Where(i => i.IsLocalMemory).ToList();
        lines.Add(local.Count == 0
            ? "  local memory: none"
            : $"  local memory: {local.Count} instruction{(local.Count == 1 ? "" : "s")} (LDL/STL), executed {Count(local.Sum(i => i.Executed))} times, {Share(local.Sum(i => i.Samples))} of the samples");
        AddWorst(lines, kernel, "uncoalesced global accesses (excess L2 sectors)", i => i.GlobalExcessSectors, Count);
        AddWorst(lines, kernel, "shared-memory bank conflicts (excess wavefronts)", i => i.SharedExcessWavefronts, Count);
        return lines;
    }

    private static void AddWorst(List<string> lines, KernelStalls kernel, string title, Func<SassInstruction, double> measure, Func<double, string> count)
    {
        var worst = kernel.Instructions.Where(i => measure(i) > 0).OrderByDescending(measure).ThenBy(i => i.Index).ToList();
        if (worst.Count == 0)
            return;
        lines.Add($"  {title}: {count(worst.Sum(measure))} in {worst.Count} instruction{(worst.Count == 1 ? "" : "s")}; the largest:");
        foreach (var i in worst.Take(5))
            lines.Add($"    {i.Offset,5:x4}  {count(measure(i)),12}  {i.Source}");
    }

    /// <summary>
    /// For the branch of an mbarrier's try-wait loop (the instruction before it a <c>SYNCS.PHASECHK</c>), which barrier it
    /// waits on: the samples there are time spent waiting for a pipeline stage, not the branch's.
    /// </summary>
    private static string WaitNote(KernelStalls kernel, SassInstruction instruction)
    {
        if (instruction.Index == 0 || !instruction.Opcode.StartsWith("BRA", StringComparison.Ordinal))
            return "";
        var before = kernel.Instructions[instruction.Index - 1];
        if (!before.Opcode.StartsWith("SYNCS.PHASECHK", StringComparison.Ordinal))
            return "";
        int open = before.Source.IndexOf('[', StringComparison.Ordinal), close = before.Source.IndexOf(']', StringComparison.Ordinal);
        return open >= 0 && close > open ? $"  (waits on the mbarrier at {before.Source[open..(close + 1)]})" : "  (an mbarrier wait)";
    }

    private static string Reasons(SassInstruction instruction)
    {
        var largest = instruction.Reasons.Where(r => r.Value > 0).OrderByDescending(r => r.Value).ThenBy(r => r.Key, StringComparer.Ordinal).Take(2);
        return string.Join(" ", largest.Select(r => $"{r.Key}:{(100 * r.Value / instruction.Samples).ToString("0", CultureInfo.InvariantCulture)}%"));
    }

    /// <summary>The fields of one CSV line: commas split fields outside double quotes; "" inside quotes is one quote.</summary>
    public static IReadOnlyList<string> SplitCsvLine(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                    quoted = false;
                else
                    field.Append(c);
            }
            else if (c == '"')
                quoted = true;
            else if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
                field.Append(c);
        }
        fields.Add(field.ToString());
        return fields;
    }

    private static long ParseAddress(string text, string fileName, int lineNumber)
    {
        var digits = text.Trim();
        if (digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            digits = digits[2..];
        return long.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long address)
            ? address
            : throw new InvalidDataException($"{fileName}:{lineNumber}: the Address \"{text}\" is not a hexadecimal address");
    }

    /// <summary>A count as ncu writes it: digits with or without thousands separators; "-" or nothing for none.</summary>
    private static double Number(string text, string fileName, int lineNumber, string column)
    {
        var trimmed = text.Trim();
        if (trimmed.Length == 0 || trimmed == "-")
            return 0;
        return double.TryParse(trimmed.Replace(",", "", StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new InvalidDataException($"{fileName}:{lineNumber}: \"{column}\" is \"{text}\", not a number");
    }

    private sealed record Columns(int Count, int Address, int Source, int Samples, int Executed, IReadOnlyList<(string Name, int Index)> Reasons,
        int? GlobalExcess, int? SharedExcess)
    {
        public static Columns Of(IReadOnlyList<string> header, string fileName, int lineNumber)
        {
            int? Optional(string name)
            {
                int c = header.ToList().IndexOf(name);
                return c >= 0 ? c : null;
            }
            int Required(string name) => Optional(name) ?? throw new InvalidDataException($"{fileName}:{lineNumber}: the header has no \"{name}\" column "
                + "(export the source page of a report collected with --section SourceCounters: ncu --import REPORT --page source --csv --print-source sass)");
            var reasons = header.Select((h, c) => (h, c))
                .Where(x => x.h.StartsWith(ReasonPrefix, StringComparison.Ordinal) && !x.h.Contains("(Not Issued)", StringComparison.Ordinal))
                .Select(x => (x.h[ReasonPrefix.Length..], x.c)).ToList();
            if (reasons.Count == 0)
                throw new InvalidDataException($"{fileName}:{lineNumber}: the header has no stall_* columns (the warp stall reasons of the SourceCounters section)");
            return new Columns(header.Count, Required("Address"), Required("Source"), Required(SamplesColumn), Required(ExecutedColumn), reasons,
                Optional(GlobalExcessColumn), Optional(SharedExcessColumn));
        }
    }
}

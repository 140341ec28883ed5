using System.CommandLine;
using System.Globalization;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class StallsCommandTests
{
    // The columns of Nsight Compute's source page that the reader uses, in a different order than ncu writes them and with
    // others between, plus a "(Not Issued)" reason column, which must not be counted.
    private static readonly string[] Header =
    [
        "Address", "Source", "Warp Stall Sampling (All Samples)", "Warp Stall Sampling (Not-issued Samples)", "Instructions Executed",
        "L2 Theoretical Sectors Global Excessive", "L1 Wavefronts Shared Excessive", "stall_long_sb", "stall_wait", "stall_short_sb",
        "stall_long_sb (Not Issued)",
    ];

    private sealed record Row(long Address, string Source, int LongSb, int Wait, int ShortSb, long Executed, long GlobalExcess = 0, long SharedExcess = 0)
    {
        public int Samples => LongSb + Wait + ShortSb;
    }

    private static string Csv(string value) => "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>One kernel's block as ncu writes it; counts of 1,000 and more with thousands separators, as ncu may print them.</summary>
    private static IEnumerable<string> Block(string kernel, IEnumerable<Row> rows)
    {
        yield return $"{Csv("Kernel Name")},{Csv(kernel)},";
        yield return string.Join(",", Header.Select(Csv));
        foreach (var r in rows)
        {
            string N(long v) => v.ToString("#,0", CultureInfo.InvariantCulture);
            yield return string.Join(",", new[]
            {
                $"0x{r.Address:x}", "      " + r.Source, N(r.Samples), N(r.Samples / 2), N(r.Executed), N(r.GlobalExcess), N(r.SharedExcess),
                N(r.LongSb), N(r.Wait), N(r.ShortSb), N(r.LongSb / 3),
            }.Select(Csv));
        }
    }

    /// <summary>Instructions with random counts (seeded by the caller, so each test's values do not depend on the others).</summary>
    private static List<Row> RandomRows(Random random, long firstAddress, int count)
    {
        var rows = new List<Row>();
        for (int i = 0; i < count; i++)
            rows.Add(new Row(firstAddress + 16 * i, $"IMAD R{i}, R{i + 1}, 0x{i:x}, RZ", random.Next(1, 500), random.Next(0, 300), random.Next(0, 200), random.Next(1, 5000) * 32L));
        return rows;
    }

    [Fact]
    public void The_reader_keeps_each_kernels_instructions_with_offsets_from_its_first_and_quoted_commas_inside_one_field()
    {
        var random = new Random(7);
        var first = RandomRows(random, 0x7f356f7c1300, 6);
        first.Insert(3, new Row(0x7f356f7c1300 + 16 * 3, "HGMMA.64x64x16.F32.BF16 R152, gdesc[UR16], RZ, !UPT", 5, 1200, 3, 278_528));
        var second = RandomRows(random, 0x7ea746c0b000, 4);
        // ncu's own messages may precede a block when its standard error went to the same file.
        var text = string.Join("\n", Block("kernel_a", first).Prepend("==PROF== Disconnected.").Concat(Block("kernel_b", second).Prepend("==WARNING== a note")));

        var kernels = SassStallTable.Parse(new StringReader(text), "test.csv");

        Assert.Equal(["kernel_a", "kernel_b"], kernels.Select(k => k.Kernel));
        Assert.Equal(first.Count, kernels[0].Instructions.Count);
        Assert.Equal(second.Count, kernels[1].Instructions.Count);
        var hgmma = kernels[0].Instructions[3];
        Assert.Equal("HGMMA.64x64x16.F32.BF16 R152, gdesc[UR16], RZ, !UPT", hgmma.Source);
        Assert.Equal(1208, hgmma.Samples);
        Assert.Equal(278_528, hgmma.Executed);
        Assert.Equal(first[3].Address - first[0].Address, hgmma.Offset);
        Assert.Equal(0, kernels[1].Instructions[0].Offset); // each kernel's offsets start at its own first instruction
        Assert.Equal(second[3].Address - second[0].Address, kernels[1].Instructions[3].Offset);
        // The reasons are the stall_ columns without "(Not Issued)", named without the prefix.
        Assert.Equal(["long_sb", "short_sb", "wait"], hgmma.Reasons.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(1200, hgmma.Reasons["wait"]);
        Assert.Equal(first.Sum(r => (double)r.Samples), kernels[0].TotalSamples);
        var totals = kernels[0].ReasonTotals();
        Assert.Equal(first.Sum(r => (double)r.Wait), totals.Single(t => t.Key == "wait").Value);
        Assert.True(totals.Zip(totals.Skip(1)).All(p => p.First.Value >= p.Second.Value), "largest reason first");
    }

    [Fact]
    public void The_report_lists_the_hottest_instructions_first_names_mbarrier_waits_and_counts_local_memory_and_excess_sectors()
    {
        const long Base = 0x1000;
        var rows = new List<Row>
        {
            new(Base, "LDC R1, c[0x0][0x28]", 2, 0, 0, 132),
            new(Base + 0x10, "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR17+0x34000], R5", 1, 0, 0, 131_072),
            new(Base + 0x20, "@!P0  BRA 0x7ea746c11ba0", 900, 3, 0, 131_072),
            new(Base + 0x30, "STL [R1+0x4], R0", 0, 0, 4, 1_584),
            new(Base + 0x40, "LDL R234, [R1+0x4]", 1, 0, 6, 278_528),
            new(Base + 0x50, "FMUL R17, R12, -1.4426950216293334961", 0, 2, 400, 278_528),
            new(Base + 0x60, "@!P2  STG.E desc[UR14][R10.64], R153", 0, 0, 0, 8_192, GlobalExcess: 65_536),
            new(Base + 0x70, "STS.64 [R13+0x28000], R174", 0, 30, 0, 278_528, SharedExcess: 1_024),
        };
        double total = rows.Sum(r => (double)r.Samples);
        var kernel = SassStallTable.Parse(new StringReader(string.Join("\n", Block("k", rows))), "k.csv").Single();

        var lines = SassStallTable.Report(kernel, top: 3);

        Assert.StartsWith($"k: {total:#,0} stall samples over {rows.Count} SASS instructions", lines[0], StringComparison.Ordinal);
        double longSb = rows.Sum(r => (double)r.LongSb);
        Assert.Contains($"long_sb {100 * longSb / total:0.0} %", lines[1], StringComparison.Ordinal);
        Assert.True(lines[1].IndexOf("long_sb", StringComparison.Ordinal) < lines[1].IndexOf("short_sb", StringComparison.Ordinal), "reasons largest first");
        // The three hottest, in order, after the table's header: the branch of the try-wait loop, the FMUL, the STS.
        int header = lines.ToList().FindIndex(l => l.TrimStart().StartsWith("offset", StringComparison.Ordinal));
        Assert.True(header > 0);
        var table = lines.Skip(header + 1).Take(3).ToList();
        Assert.StartsWith("0020 ", table[0].TrimStart(), StringComparison.Ordinal); // cuobjdump's four hex digits
        Assert.Contains($"{100 * 903 / total:0.0} %", table[0], StringComparison.Ordinal);
        Assert.Contains("131,072", table[0], StringComparison.Ordinal);
        Assert.Contains("long_sb:100%", table[0], StringComparison.Ordinal); // 900 of 903
        Assert.EndsWith("(waits on the mbarrier at [UR17+0x34000])", table[0], StringComparison.Ordinal);
        Assert.Contains("FMUL R17", table[1], StringComparison.Ordinal);
        Assert.DoesNotContain("mbarrier", table[1], StringComparison.Ordinal);
        Assert.Contains("STS.64", table[2], StringComparison.Ordinal);
        Assert.DoesNotContain(lines, l => l.Contains("LDC R1", StringComparison.Ordinal)); // not among the top 3
        Assert.Contains(lines, l => l.Contains($"local memory: 2 instructions (LDL/STL), executed {1_584 + 278_528:#,0} times, {100 * 11 / total:0.0} % of the samples", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("uncoalesced global accesses (excess L2 sectors): 65,536 in 1 instruction;", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("bank conflicts (excess wavefronts): 1,024 in 1 instruction;", StringComparison.Ordinal));
    }

    [Fact]
    public void A_kernel_without_local_memory_or_excess_says_none_and_lists_no_empty_sections()
    {
        var rows = RandomRows(new Random(11), 0x2000, 5);
        var kernel = SassStallTable.Parse(new StringReader(string.Join("\n", Block("clean", rows))), "c.csv").Single();

        var lines = SassStallTable.Report(kernel, top: 10);

        Assert.Contains("  local memory: none", lines);
        Assert.DoesNotContain(lines, l => l.Contains("uncoalesced", StringComparison.Ordinal) || l.Contains("bank conflicts", StringComparison.Ordinal));
        int header = lines.ToList().FindIndex(l => l.TrimStart().StartsWith("offset", StringComparison.Ordinal));
        Assert.Equal(rows.Count, lines.Count(l => l.Contains("IMAD", StringComparison.Ordinal))); // all five, as fewer than --top
        var order = lines.Skip(header + 1).Take(rows.Count).Select(l => rows.Single(r => l.EndsWith(r.Source, StringComparison.Ordinal)).Samples).ToList();
        Assert.Equal(order.OrderByDescending(s => s), order);
    }

    [Fact]
    public void Files_that_are_not_a_source_page_are_refused_with_the_file_line_and_what_was_expected()
    {
        var noKernel = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader("\"Section\",\"GPU Speed Of Light\"\n"), "details.txt"));
        Assert.Contains("details.txt:1", noKernel.Message, StringComparison.Ordinal);
        Assert.Contains("Kernel Name", noKernel.Message, StringComparison.Ordinal);

        var header = string.Join(",", Header.Where(h => h != "Instructions Executed").Select(Csv));
        var missing = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader($"\"Kernel Name\",\"k\",\n{header}\n"), "old.csv"));
        Assert.Contains("old.csv:2", missing.Message, StringComparison.Ordinal);
        Assert.Contains("\"Instructions Executed\"", missing.Message, StringComparison.Ordinal);

        var noReasons = string.Join(",", Header.Where(h => !h.StartsWith("stall_", StringComparison.Ordinal)).Select(Csv));
        var reasons = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader($"\"Kernel Name\",\"k\",\n{noReasons}\n"), "r.csv"));
        Assert.Contains("stall_", reasons.Message, StringComparison.Ordinal);

        var lines = Block("k", RandomRows(new Random(13), 0x10, 2)).ToArray();
        lines[3] = "\"zz" + lines[3][3..]; // the second instruction's address, "0x20", becomes "zz20"
        var address = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader(string.Join("\n", lines)), "a.csv"));
        Assert.Contains("a.csv:4", address.Message, StringComparison.Ordinal);

        var empty = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader(""), "empty.csv"));
        Assert.StartsWith("empty.csv: ", empty.Message, StringComparison.Ordinal);

        var block = Block("k", RandomRows(new Random(19), 0x10, 3)).ToArray();
        var truncatedHeader = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader(block[0]), "t.csv"));
        Assert.Contains("the kernel k has no header line", truncatedHeader.Message, StringComparison.Ordinal);
        var truncatedRows = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader(string.Join("\n", block.Take(2))), "t.csv"));
        Assert.Contains("the kernel k has no instructions", truncatedRows.Message, StringComparison.Ordinal);

        var shortRow = block.ToArray();
        shortRow[2] = string.Join(",", SassStallTable.SplitCsvLine(shortRow[2]).Take(4).Select(Csv));
        var fields = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader(string.Join("\n", shortRow)), "f.csv"));
        Assert.Contains("f.csv:3: 4 fields where the header has " + Header.Length, fields.Message, StringComparison.Ordinal);

        var notNumber = block.ToArray();
        var cells = SassStallTable.SplitCsvLine(notNumber[3]).ToArray();
        cells[Array.IndexOf(Header, "Instructions Executed")] = "lots";
        notNumber[3] = string.Join(",", cells.Select(Csv));
        var number = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader(string.Join("\n", notNumber)), "n.csv"));
        Assert.Contains("n.csv:4: \"Instructions Executed\" is \"lots\", not a number", number.Message, StringComparison.Ordinal);

        var noName = Assert.Throws<InvalidDataException>(() => SassStallTable.Parse(new StringReader("\"Kernel Name\",\"\",\n"), "x.csv"));
        Assert.Contains("x.csv:1: a \"Kernel Name\" line without the name", noName.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Csv_fields_split_on_commas_outside_quotes_and_read_doubled_quotes_as_one()
    {
        Assert.Equal(["Kernel Name", "void f<int, 2>(float \"x\")", ""], SassStallTable.SplitCsvLine("\"Kernel Name\",\"void f<int, 2>(float \"\"x\"\")\","));
        Assert.Equal(["a", "", "b,c", "d"], SassStallTable.SplitCsvLine("a,,\"b,c\",d"));
        Assert.Equal([""], SassStallTable.SplitCsvLine(""));

        // A kernel name with commas and quotes comes through whole.
        var name = "void kernel<128, true>(float \"a\", int)";
        var kernel = SassStallTable.Parse(new StringReader(string.Join("\n", Block(name, RandomRows(new Random(23), 0x40, 2)))), "q.csv").Single();
        Assert.Equal(name, kernel.Kernel);
    }

    private static (int ExitCode, string Output, string Error) Invoke(params string[] args)
    {
        var root = new RootCommand("test");
        root.Subcommands.Add(StallsCommand.Create());
        return CliErrorsTests.Invoke(root, args);
    }

    [Fact]
    public void The_command_prints_each_kernel_or_the_one_asked_for_and_refuses_bad_options_and_files()
    {
        using var folder = new TempFolder();
        var path = folder.File("stalls.csv");
        var random = new Random(17);
        File.WriteAllLines(path, Block("flash_attention_backward", RandomRows(random, 0x100, 8)).Concat(Block("mlp_fc_relu_square", RandomRows(random, 0x900, 3))));

        var (code, output, _) = Invoke("stalls", path, "--top", "2");
        Assert.Equal(0, code);
        Assert.Contains("flash_attention_backward: ", output, StringComparison.Ordinal);
        Assert.Contains("mlp_fc_relu_square: ", output, StringComparison.Ordinal);
        Assert.Contains("the 2 instructions with the most samples", output, StringComparison.Ordinal);

        (code, output, _) = Invoke("stalls", path, "--kernel", "mlp_fc");
        Assert.Equal(0, code);
        Assert.DoesNotContain("flash_attention_backward", output, StringComparison.Ordinal);
        Assert.Contains("the 3 instructions", output, StringComparison.Ordinal);

        var (bad, _, error) = Invoke("stalls", path, "--kernel", "nothing");
        Assert.Equal(CliErrors.FailureExitCode, bad);
        Assert.Contains("--kernel nothing", error, StringComparison.Ordinal);
        Assert.Contains(path, error, StringComparison.Ordinal);
        Assert.Contains("flash_attention_backward, mlp_fc_relu_square", error, StringComparison.Ordinal);

        (bad, _, error) = Invoke("stalls", path, "--top", "0");
        Assert.Equal(CliErrors.UsageExitCode, bad);
        Assert.Contains("--top must be at least 1; got 0", error, StringComparison.Ordinal);

        (bad, _, error) = Invoke("stalls", path, "--top", "x");
        Assert.Equal(CliErrors.UsageExitCode, bad);
        Assert.Contains("x", error, StringComparison.Ordinal);
        Assert.StartsWith("autoresearch: error: ", error, StringComparison.Ordinal);

        var missing = folder.File("missing.csv");
        (bad, _, error) = Invoke("stalls", missing);
        Assert.Equal(CliErrors.FailureExitCode, bad);
        Assert.Contains(missing, error, StringComparison.Ordinal);

        (code, output, _) = Invoke("stalls", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--top", output, StringComparison.Ordinal);
        Assert.Contains("--kernel", output, StringComparison.Ordinal);
    }
}

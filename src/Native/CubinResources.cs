using System.Buffers.Binary;
using System.Text;

namespace AutoResearch.Native;

/// <summary>
/// What each kernel in a cubin was compiled to, read from the cubin itself (an ELF file), so it needs neither a GPU nor the
/// CUDA tools: registers a thread and local memory a thread (the frame: spills and arrays indexed at run time), from the
/// EIATTR_REGCOUNT and EIATTR_FRAME_SIZE records of the <c>.nv.info</c> section, and static shared memory a block, the size
/// of the kernel's <c>.nv.shared.NAME</c> section. The same figures the driver reports for a loaded kernel
/// (<see cref="CudaKernel.Registers"/>, <see cref="CudaKernel.LocalBytes"/>, <see cref="CudaKernel.StaticSharedBytes"/>).
/// </summary>
public static class CubinResources
{
    /// <summary>The .nv.info record holding a function's register count.</summary>
    public const byte RegisterCountAttribute = 0x2f;

    /// <summary>The .nv.info record holding a function's frame (local memory) size in bytes.</summary>
    public const byte FrameSizeAttribute = 0x11;

    // .nv.info records: a format byte, an attribute byte, then by format two bytes of padding (1), a byte and a byte of
    // padding (2), two bytes (3), or a 16-bit size and that many bytes (4), so the first three are 4 bytes long; the
    // per-function records used here are format 4 with (symbol index, value).
    private const byte NoValue = 1, ByteValue = 2, HalfValue = 3, SizedValue = 4;

    /// <summary>
    /// One row a kernel (a function with a <c>.text.NAME</c> section), by name; <paramref name="file"/> and
    /// <paramref name="options"/> label the rows. Throws <see cref="InvalidDataException"/> naming <paramref name="file"/>
    /// when the image is not a 64-bit little-endian ELF file or its tables run past its end.
    /// </summary>
    public static IReadOnlyList<KernelResources> Read(ReadOnlySpan<byte> cubin, string file, string options = "")
    {
        ArgumentNullException.ThrowIfNull(file);
        try
        {
            return ReadElf(cubin, file, options);
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or OverflowException or IndexOutOfRangeException)
        {
            throw new InvalidDataException($"{file}: a table of the cubin runs past its end ({cubin.Length} bytes)", e);
        }
    }

    private static List<KernelResources> ReadElf(ReadOnlySpan<byte> elf, string file, string options)
    {
        if (elf.Length < 64 || !elf[..4].SequenceEqual("\u007fELF"u8) || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException($"{file}: not a cubin (a 64-bit little-endian ELF file was expected)");
        long sectionTable = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf[0x28..]);
        int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x3a..]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x3c..]);
        int namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x3e..]);
        if (namesIndex >= count)
            throw new InvalidDataException($"{file}: the section names are section {namesIndex} of {count}");
        var sections = new Section[count];
        for (int i = 0; i < count; i++)
        {
            var header = elf.Slice(checked((int)(sectionTable + (long)i * entrySize)), 64);
            sections[i] = new Section(BinaryPrimitives.ReadUInt32LittleEndian(header), (long)BinaryPrimitives.ReadUInt64LittleEndian(header[0x18..]),
                (long)BinaryPrimitives.ReadUInt64LittleEndian(header[0x20..]));
        }
        var names = Bytes(elf, sections[namesIndex]);
        var byName = new Dictionary<string, Section>(StringComparer.Ordinal);
        foreach (var section in sections)
            byName.TryAdd(CString(names, (int)section.Name), section);

        // The symbol table (24-byte entries, the name's offset in .strtab first) names the functions of the .nv.info records.
        var symbols = byName.TryGetValue(".symtab", out var symtab) ? Bytes(elf, symtab) : [];
        var strings = byName.TryGetValue(".strtab", out var strtab) ? Bytes(elf, strtab) : [];

        var registers = new Dictionary<string, int>(StringComparer.Ordinal);
        var frames = new Dictionary<string, int>(StringComparer.Ordinal);
        if (byName.TryGetValue(".nv.info", out var info))
        {
            var records = Bytes(elf, info);
            int at = 0;
            while (at + 2 <= records.Length)
            {
                byte format = records[at], attribute = records[at + 1];
                switch (format)
                {
                    case NoValue:
                    case ByteValue:
                    case HalfValue:
                        at += 4;
                        break;
                    case SizedValue:
                        int size = BinaryPrimitives.ReadUInt16LittleEndian(records[(at + 2)..]);
                        var value = records.Slice(at + 4, size);
                        if (size == 8 && attribute is RegisterCountAttribute or FrameSizeAttribute)
                        {
                            string function = SymbolName(symbols, strings, BinaryPrimitives.ReadUInt32LittleEndian(value));
                            (attribute == RegisterCountAttribute ? registers : frames)[function] = (int)BinaryPrimitives.ReadUInt32LittleEndian(value[4..]);
                        }
                        at += 4 + size;
                        break;
                    default:
                        throw new InvalidDataException($"{file}: .nv.info record of unknown format {format} at byte {at}");
                }
            }
        }

        var rows = new List<KernelResources>();
        foreach (var name in byName.Keys.Where(n => n.StartsWith(".text.", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            string kernel = name[".text.".Length..];
            int shared = byName.TryGetValue(".nv.shared." + kernel, out var sharedSection) ? (int)sharedSection.Size : 0;
            rows.Add(new KernelResources(file, options, kernel, registers.GetValueOrDefault(kernel), frames.GetValueOrDefault(kernel), shared));
        }
        return rows;
    }

    private readonly record struct Section(uint Name, long Offset, long Size);

    private static ReadOnlySpan<byte> Bytes(ReadOnlySpan<byte> elf, Section section) => elf.Slice(checked((int)section.Offset), checked((int)section.Size));

    private static string SymbolName(ReadOnlySpan<byte> symbols, ReadOnlySpan<byte> strings, uint index)
        => CString(strings, (int)BinaryPrimitives.ReadUInt32LittleEndian(symbols.Slice(checked((int)index * 24), 4)));

    private static string CString(ReadOnlySpan<byte> table, int offset)
    {
        var rest = table[offset..];
        int end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }
}

using System.Buffers.Binary;
using System.Text;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>
/// <see cref="CubinResources"/>: a cubin NVRTC compiled (wherever NVRTC loads), and without NVRTC a small ELF file laid out
/// as a cubin is, with records of every format to step over and broken files.
/// </summary>
public class CubinResourcesTests
{
    [NvrtcFact]
    public void A_compiled_cubin_gives_each_kernels_registers_local_memory_and_shared_memory()
    {
        var cubin = NvrtcCompiler.Compile(ProbeKernels.Resources, "resources.cu", ["--gpu-architecture=sm_80"]).Cubin;

        var rows = CubinResources.Read(cubin, "resources.cu", "-DX=1");

        Assert.Equal(["local_array", "plain", "static_shared"], rows.Select(r => r.Kernel));
        Assert.All(rows, r => Assert.Equal(("resources.cu", "-DX=1"), (r.File, r.Options)));
        Assert.All(rows, r => Assert.InRange(r.Registers, 2, 255));
        Assert.Equal(64 * sizeof(float), rows[0].LocalBytes); // indexed at run time: the whole array in local memory
        Assert.Equal([0, 0], rows.Skip(1).Select(r => r.LocalBytes));
        Assert.Equal(100 * sizeof(float), rows[2].StaticSharedBytes);
        Assert.Equal([0, 0], rows.Take(2).Select(r => r.StaticSharedBytes));
    }

    [Fact]
    public void The_records_of_each_function_are_found_among_records_of_every_format()
    {
        // Records: a register count and a frame size for k1 (symbol 1), one of each other format, k2's register count.
        var info = new List<byte>();
        void Sized(byte attribute, uint symbol, uint value)
        {
            info.AddRange([4, attribute, 8, 0]);
            info.AddRange(BitConverter.GetBytes(symbol));
            info.AddRange(BitConverter.GetBytes(value));
        }
        Sized(CubinResources.RegisterCountAttribute, 1, 40);
        info.AddRange([1, 0x35, 0, 0]);              // no value (padded to 4 bytes)
        info.AddRange([3, 0x1b, 0xff, 0]);           // a 16-bit value
        Sized(CubinResources.FrameSizeAttribute, 1, 16);
        info.AddRange([4, 0x37, 4, 0, 118, 0, 0, 0]); // a sized value of another length
        Sized(CubinResources.RegisterCountAttribute, 2, 12);
        var elf = Elf(
            (".nv.info", info.ToArray()),
            (".text.k1", new byte[32]),
            (".nv.shared.k1", new byte[128]),
            (".text.k2", new byte[16]));

        var rows = CubinResources.Read(elf, "k.cu");

        Assert.Equal([new KernelResources("k.cu", "", "k1", 40, 16, 128), new KernelResources("k.cu", "", "k2", 12, 0, 0)], rows);
    }

    [Fact]
    public void A_file_that_is_not_a_cubin_or_is_cut_short_is_refused_by_name()
    {
        var notElf = Assert.Throws<InvalidDataException>(() => CubinResources.Read("// a kernel source, not a cubin\n"u8.ToArray(), "k.cu"));
        Assert.Contains("k.cu: not a cubin", notElf.Message, StringComparison.Ordinal);

        var whole = Elf((".text.k1", new byte[32]));
        var cut = Assert.Throws<InvalidDataException>(() => CubinResources.Read(whole.AsSpan(0, whole.Length - 40), "k.cubin"));
        Assert.Contains("k.cubin: a table of the cubin runs past its end", cut.Message, StringComparison.Ordinal);

        var badRecord = Elf((".nv.info", [9, 0x2f, 0, 0]));
        Assert.Contains("unknown format 9", Assert.Throws<InvalidDataException>(() => CubinResources.Read(badRecord, "k.cubin")).Message, StringComparison.Ordinal);

        // A section-name index past the table, and a section table beyond 2 GB: refused by name, not an index or overflow error.
        var badNames = Elf((".text.k1", new byte[32]));
        BinaryPrimitives.WriteUInt16LittleEndian(badNames.AsSpan(0x3e), 200);
        Assert.Contains("k.cubin", Assert.Throws<InvalidDataException>(() => CubinResources.Read(badNames, "k.cubin")).Message, StringComparison.Ordinal);
        var farTable = Elf((".text.k1", new byte[32]));
        BinaryPrimitives.WriteUInt64LittleEndian(farTable.AsSpan(0x28), 1UL << 40);
        Assert.Contains("k.cubin", Assert.Throws<InvalidDataException>(() => CubinResources.Read(farTable, "k.cubin")).Message, StringComparison.Ordinal);
    }

    // A 64-bit little-endian ELF file with a null section, the named sections, .symtab (symbols 1 and 2: k1 and k2),
    // .strtab and .shstrtab, the section headers last.
    private static byte[] Elf(params (string Name, byte[] Data)[] named)
    {
        var strtab = Encoding.ASCII.GetBytes("\0k1\0k2\0");
        var symtab = new byte[3 * 24];
        BinaryPrimitives.WriteUInt32LittleEndian(symtab.AsSpan(24), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(symtab.AsSpan(48), 4);
        var sections = new List<(string Name, byte[] Data)> { ("", []) };
        sections.AddRange(named);
        sections.Add((".symtab", symtab));
        sections.Add((".strtab", strtab));
        var names = new List<byte> { 0 };
        var nameOffsets = new List<int>();
        foreach (var (name, _) in sections)
        {
            nameOffsets.Add(name.Length == 0 ? 0 : names.Count);
            if (name.Length > 0)
                names.AddRange([.. Encoding.ASCII.GetBytes(name), 0]);
        }
        nameOffsets.Add(names.Count);
        names.AddRange([.. ".shstrtab"u8, 0]);
        sections.Add((".shstrtab", names.ToArray()));

        var file = new List<byte>(new byte[64]);
        var offsets = new List<int>();
        foreach (var (_, data) in sections)
        {
            offsets.Add(file.Count);
            file.AddRange(data);
        }
        int table = file.Count;
        for (int i = 0; i < sections.Count; i++)
        {
            var header = new byte[64];
            BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)nameOffsets[i]);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(0x18), (ulong)offsets[i]);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(0x20), (ulong)sections[i].Data.Length);
            file.AddRange(header);
        }
        var elf = file.ToArray();
        "\u007fELF"u8.CopyTo(elf);
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(0x28), (ulong)table);
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(0x3a), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(0x3c), (ushort)sections.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(0x3e), (ushort)(sections.Count - 1));
        return elf;
    }
}

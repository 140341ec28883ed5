using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>
/// bench/device/sass-waits.sh, which counts each kernel's wgmma products and the waits on them in a cubin's SASS, run with a
/// stand-in for cuobjdump that prints a text file as its SASS (no CUDA toolkit needed).
/// </summary>
public class SassWaitsScriptTests
{
    private static (int Exit, string Stdout, string Stderr) Run(string? cuobjdump, params string[] args)
        => DeviceScripts.Run(Path.Combine(DeviceScripts.Folder(), "sass-waits.sh"), args,
            new Dictionary<string, string?> { ["CUOBJDUMP"] = cuobjdump ?? "/nonexistent/cuobjdump" }, TimeSpan.FromMinutes(1));

    // SASS in cuobjdump's layout: a function header, then instructions (only the names matter to the script).
    private static string Sass(params (string Name, string[] Instructions)[] functions)
    {
        var text = new System.Text.StringBuilder("\n\tcode for sm_90a\n");
        foreach (var (name, instructions) in functions)
        {
            text.Append("\t\tFunction : ").Append(name).Append('\n');
            for (int i = 0; i < instructions.Length; i++)
                text.Append($"        /*{i * 16:x4}*/                   {instructions[i]} ;\n");
        }
        return text.ToString();
    }

    private static string[] Repeat(int times, params string[] block) => Enumerable.Repeat(block, times).SelectMany(b => b).ToArray();

    private static string StandIn(KernelFolder folder)
    {
        var tool = folder.Sub("cuobjdump");
        DeviceScripts.WriteExecutable(tool, "#!/usr/bin/env bash\n[ \"$1\" = -sass ] || exit 9\ncat \"$2\"\n");
        return tool;
    }

    [Fact]
    public void A_wait_behind_every_product_is_flagged_and_overlapping_products_are_not()
    {
        using var folder = new KernelFolder();
        var tool = StandIn(folder);
        // Eight products, then one wait for them all; three products each waited for at once; a kernel with no products.
        var overlapped = ("gemm_overlapped", Repeat(8, "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24, gsb0").Append("WARPGROUP.DEPBAR.LE gsb0, 0x0").ToArray());
        var serial = ("attention_serial", Repeat(3, "WARPGROUP.ARRIVE", "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24, gsb0", "WARPGROUP.DEPBAR.LE gsb0, 0x0"));
        var plain = ("elementwise", new[] { "LDG.E R2, desc[UR4][R2.64]", "STG.E desc[UR4][R4.64], R2" });
        File.WriteAllText(folder.Sub("mixed.cubin"), Sass(overlapped, serial, plain));
        File.WriteAllText(folder.Sub("clean.cubin"), Sass(overlapped));

        var (exit, stdout, stderr) = Run(tool, folder.Sub("mixed.cubin"), folder.Sub("clean.cubin"));

        Assert.True(exit == 1, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        Assert.Equal(3, lines.Length); // the kernel without products is not listed
        Assert.Equal(["mixed.cubin", "gemm_overlapped", "HGMMA", "8", "DEPBAR", "1"], lines[0]);
        Assert.Equal(["mixed.cubin", "attention_serial", "HGMMA", "3", "DEPBAR", "3", "serialised"], lines[1]);
        Assert.Equal(["clean.cubin", "gemm_overlapped", "HGMMA", "8", "DEPBAR", "1"], lines[2]);

        var (cleanExit, cleanOut, _) = Run(tool, folder.Sub("clean.cubin"));
        Assert.Equal(0, cleanExit);
        Assert.DoesNotContain("serialised", cleanOut, StringComparison.Ordinal);
    }

    [Fact]
    public void Newer_keeps_only_the_cubins_written_after_the_marker()
    {
        using var folder = new KernelFolder();
        var tool = StandIn(folder);
        var serial = ("serial", Repeat(2, "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24, gsb0", "WARPGROUP.DEPBAR.LE gsb0, 0x0"));
        File.WriteAllText(folder.Sub("old.cubin"), Sass(serial));
        File.WriteAllText(folder.Sub("marker"), "");
        File.WriteAllText(folder.Sub("new.cubin"), Sass(("fresh", Repeat(4, "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24, gsb0"))));
        var now = DateTime.UtcNow;
        File.SetLastWriteTimeUtc(folder.Sub("old.cubin"), now.AddMinutes(-10));
        File.SetLastWriteTimeUtc(folder.Sub("marker"), now.AddMinutes(-5));
        File.SetLastWriteTimeUtc(folder.Sub("new.cubin"), now);

        var (exit, stdout, stderr) = Run(tool, "--newer", folder.Sub("marker"), folder.Sub("old.cubin"), folder.Sub("new.cubin"));

        Assert.True(exit == 0, stderr); // the serialised kernel is in the older cubin, left out
        var line = Assert.Single(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["new.cubin", "fresh", "HGMMA", "4", "DEPBAR", "0"], line.Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Without_cuobjdump_or_with_a_missing_cubin_it_says_so_and_exits_2()
    {
        using var folder = new KernelFolder();

        var (exit, stdout, stderr) = Run(null, folder.Sub("any.cubin"));
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Contains("no cuobjdump", stderr, StringComparison.Ordinal);
        Assert.Contains("CUOBJDUMP", stderr, StringComparison.Ordinal);

        var (missingExit, _, missingErr) = Run(StandIn(folder), folder.Sub("absent.cubin"));
        Assert.Equal(2, missingExit);
        Assert.Contains("absent.cubin is not a file", missingErr, StringComparison.Ordinal);

        var (optionExit, _, optionErr) = Run(StandIn(folder), "--newer", folder.Sub("no-marker"));
        Assert.Equal(2, optionExit);
        Assert.Contains("--newer takes an existing file", optionErr, StringComparison.Ordinal);
    }
}

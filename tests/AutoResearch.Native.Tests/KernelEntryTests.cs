using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>
/// The kernel names the launchers ask a module for exist in the kernel files, read from the sources (no NVRTC, no GPU): a
/// renamed or misspelt kernel otherwise shows only when a GPU loads the module.
/// </summary>
public class KernelEntryTests
{
    [Fact]
    public void Every_kernel_a_launcher_asks_for_is_an_entry_of_a_kernel_file()
    {
        // The entries the kernel files declare (extern "C" __global__, launch bounds or not), read from the sources.
        var entries = Directory.GetFiles(KernelCache.DefaultKernelDirectory, "*.cu")
            .SelectMany(f => Regex.Matches(File.ReadAllText(f), @"extern\s+""C""\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?([A-Za-z_]\w*)\s*\(")
                .Select(m => m.Groups[1].Value))
            .ToHashSet(StringComparer.Ordinal);
        // The names the launchers pass to CudaModule.GetKernel as literals. (MlpGemm asks for its kernels by name from one
        // compile each: FusedPathTests checks those names against mlp_gemm.cu.)
        var sources = Path.Combine(RepositoryRoot(), "src");
        if (!Directory.Exists(sources))
            Assert.Skip($"the sources this test was built from are not here ({sources}): a published copy of the tests");
        var asked = new List<(string File, string Name)>();
        foreach (var f in Directory.EnumerateFiles(sources, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            var text = File.ReadAllText(f);
            foreach (Match m in Regex.Matches(text, @"GetKernel\(""([A-Za-z0-9_]+)""\)"))
                asked.Add((Path.GetFileName(f), m.Groups[1].Value));
            // An interpolated name cannot be checked here: it fails the test below until its values are given here.
            foreach (Match m in Regex.Matches(text, @"GetKernel\(\$""([^""]*)""\)"))
                asked.Add((Path.GetFileName(f), $"{m.Groups[1].Value} (interpolated)"));
        }

        Assert.True(entries.Count >= 30, $"found only {entries.Count} kernel entries in {KernelCache.DefaultKernelDirectory}: the scan no longer reads them");
        Assert.True(asked.Count >= 30, $"found only {asked.Count} GetKernel names under src/: the scan no longer sees the launchers");
        Assert.Contains("mlp_fc_relu_square", entries); // declared with launch bounds
        var missing = asked.Where(a => !entries.Contains(a.Name)).Select(a => $"{a.File}: {a.Name}").ToList();
        Assert.True(missing.Count == 0, $"kernels asked for but declared in no kernel file: {string.Join(", ", missing)}");
    }

    // The repository this test was built from: two folders above the folder of this file (tests/AutoResearch.Native.Tests).
    private static string RepositoryRoot([CallerFilePath] string path = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));
}

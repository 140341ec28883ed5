using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>The compiler's performance notes: found in a compile log, kept beside a cubin, read back when it is loaded.</summary>
public class CompilerWarningsTests
{
    // A log as NVRTC returns it for a kernel whose products ptxas serialised, with the other lines a log holds.
    private const string SerialisedLog =
        "kernels/mlp_gemm.cu(412): warning #177-D: variable \"unused\" was declared but never referenced\r\n"
        + "ptxas info    : (C7511) Potential Performance Loss: wgmma.mma_async instructions are serialized due to insufficient register resources for the wgmma pipeline in the function 'mlp_proj_input_gradient'\r\n"
        + "ptxas info    : Used 168 registers\n"
        + "ptxas info    : (C7511) Potential Performance Loss: wgmma.mma_async instructions are serialized due to insufficient register resources for the wgmma pipeline in the function 'mlp_proj_input_gradient'\n"
        + "ptxas info    : (C7510) Potential Performance Loss: wgmma.mma_async instructions are serialized due to the presence of Extern calls in the function 'other'\n";

    [Fact]
    public void The_performance_notes_of_a_log_come_once_each_without_the_ptxas_prefix()
    {
        var notes = CompilerWarnings.PerformanceNotes(SerialisedLog);

        Assert.Equal(
        [
            "(C7511) Potential Performance Loss: wgmma.mma_async instructions are serialized due to insufficient register resources for the wgmma pipeline in the function 'mlp_proj_input_gradient'",
            "(C7510) Potential Performance Loss: wgmma.mma_async instructions are serialized due to the presence of Extern calls in the function 'other'",
        ], notes);
        Assert.Empty(CompilerWarnings.PerformanceNotes("kernels/x.cu(3): warning #177-D: variable \"y\" was declared but never referenced\n"));
        Assert.Empty(CompilerWarnings.PerformanceNotes(""));
        Assert.Empty(CompilerWarnings.PerformanceNotes(null));
    }

    [Fact]
    public void A_kept_log_is_read_back_beside_its_cubin_and_a_clean_compiles_log_is_kept_empty()
    {
        // A cache folder that does not exist yet (a first run): keeping the log creates it.
        var cubin = Path.Combine(TestGpu.NewTempDirectory("cubin-log"), "not-yet", "mlp_gemm-sm_90a-0123.cubin");
        Assert.False(CubinStore.HasLog(cubin));
        Assert.Empty(CubinStore.PerformanceNotes(cubin)); // no log: nothing known (a cubin compiled before logs were kept)

        CubinStore.KeepLog(CubinStore.LogPath(cubin), SerialisedLog);

        Assert.Equal(cubin + ".log", CubinStore.LogPath(cubin));
        Assert.True(CubinStore.HasLog(cubin));
        Assert.Equal(SerialisedLog, File.ReadAllText(CubinStore.LogPath(cubin)));
        Assert.Equal(2, CubinStore.PerformanceNotes(cubin).Count);
        Assert.StartsWith("(C7511)", CubinStore.PerformanceNotes(cubin)[0], StringComparison.Ordinal);

        // A clean compile's log replaces it, empty: the cubin's notes are known to be none.
        CubinStore.KeepLog(CubinStore.LogPath(cubin), null);
        Assert.True(CubinStore.HasLog(cubin));
        Assert.Equal("", File.ReadAllText(CubinStore.LogPath(cubin)));
        Assert.Empty(CubinStore.PerformanceNotes(cubin));
        Assert.Equal([CubinStore.LogPath(cubin)], Directory.GetFiles(Path.GetDirectoryName(cubin)!)); // no temporary file left
    }

    [Fact]
    public void A_log_that_cannot_be_written_is_reported_and_does_not_throw()
    {
        var folder = TestGpu.NewTempDirectory("cubin-log");
        var blocker = Path.Combine(folder, "a-file");
        File.WriteAllText(blocker, "not a folder");
        var path = Path.Combine(blocker, "k.cubin.log"); // its folder would be a file

        Assert.ThrowsAny<IOException>(() => CubinStore.KeepLog(path, "log"));
        Assert.False(CubinStore.TryKeepLog(path, "log"));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void A_note_names_its_file_and_options()
    {
        Assert.Equal("mlp_gemm.cu -DMLP_GEMM_ONE: (C7511) Potential Performance Loss: x",
            new KernelCompileNote("mlp_gemm.cu", "-DMLP_GEMM_ONE", "(C7511) Potential Performance Loss: x").ToString());
        Assert.Equal("muon.cu: note", new KernelCompileNote("muon.cu", "", "note").ToString());
    }

    [NvrtcFact]
    public void The_store_keeps_a_compiles_warnings_beside_its_cubin_and_an_empty_log_for_a_clean_compile()
    {
        var kernels = TestGpu.NewTempDirectory("cubin-src");
        File.WriteAllText(Path.Combine(kernels, "warn.cu"), ProbeKernels.Warning);
        File.WriteAllText(Path.Combine(kernels, "clean.cu"), "extern \"C\" __global__ void k(float* o) { o[threadIdx.x] = 1.0f; }\n");
        var store = new CubinStore(NvrtcFactAttribute.PortableArchitecture, kernels, TestGpu.NewTempDirectory("cubin-cache"));

        var warn = store.Job(new KernelSource("warn.cu"));
        store.Compile(warn);
        var clean = store.Job(new KernelSource("clean.cu"));
        store.Compile(clean);

        Assert.True(File.Exists(warn.CubinPath));
        Assert.Contains("never_used_here", File.ReadAllText(CubinStore.LogPath(warn.CubinPath)), StringComparison.Ordinal);
        Assert.Empty(CubinStore.PerformanceNotes(warn.CubinPath)); // a warning, not a performance note
        Assert.True(File.Exists(clean.CubinPath));
        Assert.Equal("", File.ReadAllText(CubinStore.LogPath(clean.CubinPath)));
    }
}

using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class KernelResourceReportTests
{
    private static readonly KernelResources Plain = new("rmsnorm.cu", "", "rmsnorm_forward", 32, 0, 0);
    private static readonly KernelResources Spilling = new("flash_forward.cu", "-DHEAD_DIM=128", "flash_attention_forward", 168, 48, 0);
    private static readonly KernelResources Shared = new("cross_entropy.cu", "", "softcap_cross_entropy", 48, 0, 128);

    [Fact]
    public void The_local_memory_line_says_none_or_names_each_kernel_with_its_bytes_and_source()
    {
        Assert.Equal("local memory (register spills): none in the 2 kernels loaded", KernelResourceReport.LocalMemoryLine([Plain, Shared]));

        var line = KernelResourceReport.LocalMemoryLine([Plain, Spilling, Shared]);

        Assert.StartsWith("local memory (register spills, or arrays indexed at run time) in 1 of 3 kernels: ", line, StringComparison.Ordinal);
        Assert.EndsWith("flash_attention_forward (flash_forward.cu -DHEAD_DIM=128) 48 B a thread", line, StringComparison.Ordinal);
        Assert.DoesNotContain("rmsnorm_forward", line, StringComparison.Ordinal);
    }

    [Fact]
    public void The_table_has_a_header_and_one_aligned_row_a_kernel()
    {
        var lines = KernelResourceReport.Table([Plain, Spilling, Shared]);

        Assert.Equal(4, lines.Count);
        Assert.StartsWith("kernel", lines[0], StringComparison.Ordinal);
        Assert.Single(lines.Select(l => l.Length).Distinct()); // every column right-aligned to the same width
        var fields = lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["flash_attention_forward", "flash_forward.cu", "-DHEAD_DIM=128", "168", "48", "0"], fields);
        Assert.Equal(["softcap_cross_entropy", "cross_entropy.cu", "48", "0", "128"], lines[3].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Single(KernelResourceReport.Table([])); // the header alone
    }

    [Fact]
    public void The_performance_notes_line_says_none_or_warns_with_each_file_and_note_and_counts_files_without_a_log()
    {
        Assert.Equal("compiler performance notes: none in the loaded kernels' compile logs", KernelResourceReport.PerformanceNotesLine([]));
        Assert.Equal("compiler performance notes: none in the loaded kernels' compile logs; 3 loaded file(s) have no compile log "
            + "(cached before logs were kept: empty the kernel cache to check them)", KernelResourceReport.PerformanceNotesLine([], 3));
        var line = KernelResourceReport.PerformanceNotesLine(
        [
            new("mlp_gemm.cu", "-DMLP_GEMM_ONE", "(C7511) Potential Performance Loss: serialized in 'a'"),
            new("mlp_gemm.cu", "-DMLP_GEMM_ONE", "(C7510) Potential Performance Loss: serialized in 'b'"),
            new("flash_backward.cu", "-DHEAD_DIM=128", "(C7511) Potential Performance Loss: serialized in 'c'"),
        ]);
        Assert.Equal("warning: the compiler gave up speed in 2 kernel file(s) (correct, but slower): "
            + "mlp_gemm.cu -DMLP_GEMM_ONE: (C7511) Potential Performance Loss: serialized in 'a'; "
            + "mlp_gemm.cu -DMLP_GEMM_ONE: (C7510) Potential Performance Loss: serialized in 'b'; "
            + "flash_backward.cu -DHEAD_DIM=128: (C7511) Potential Performance Loss: serialized in 'c'", line);
    }
}

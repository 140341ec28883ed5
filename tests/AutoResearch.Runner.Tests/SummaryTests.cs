using AutoResearch.Runner.Training;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class SummaryTests
{
    [Fact]
    public void Summary_block_has_the_spec_keys_padding_and_decimals()
    {
        var text = new Summary(0.9979, 300.06, 325.94, 45060.2, 39.8, 499.6, 953, 50.3, 8).Format();
        // SPEC §9's example, line for line.
        string[] expected =
        [
            "---",
            "val_bpb:          0.997900",
            "training_seconds: 300.1",
            "total_seconds:    325.9",
            "peak_vram_mb:     45060.2",
            "mfu_percent:      39.80",
            "total_tokens_M:   499.6",
            "num_steps:        953",
            "num_params_M:     50.3",
            "depth:            8",
        ];
        Assert.Equal(expected, text.Split('\n'));
    }
}

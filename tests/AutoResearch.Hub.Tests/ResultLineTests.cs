using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>The result-post format the dashboard ranks: commit:&lt;7&gt; platform:&lt;gpu&gt; val_bpb:&lt;v&gt; vram_gb:&lt;v&gt; | &lt;description&gt;.</summary>
public sealed class ResultLineTests
{
    [Fact]
    public void Parses_random_well_formed_lines_back_to_their_fields()
    {
        var rng = new Random(2024);
        for (int i = 0; i < 200; i++)
        {
            string commit = rng.Next(0x1000000, 0xFFFFFFF).ToString("x7", System.Globalization.CultureInfo.InvariantCulture);
            double bpb = Math.Round(rng.NextDouble() * 2, 6), vram = Math.Round(rng.NextDouble() * 80, 1);
            string line = FormattableString.Invariant($"commit:{commit} platform:H100 val_bpb:{bpb:F6} vram_gb:{vram:F1} | try {i} | with a bar");
            Assert.True(ResultLine.TryParse(line, out var r), $"seed 2024, line {line}");
            Assert.Equal(commit, r!.Commit);
            Assert.Equal("H100", r.Platform);
            Assert.Equal(bpb, r.ValBpb, 1e-9);
            Assert.Equal(vram, r.VramGb, 1e-9);
            Assert.Equal($"try {i} | with a bar", r.Description);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("just chatting")]
    [InlineData("commit:XYZ1234 platform:H100 val_bpb:0.99 vram_gb:44 | upper-case hash")]
    [InlineData("commit:abc1234 platform:H100 val_bpb:nan vram_gb:44 | not finite")]
    [InlineData("commit:abc1234 platform:H100 val_bpb:0.99 | no vram")]
    [InlineData("commit:abc1234 platform:H100 val_bpb:0.99 vram_gb:44 no bar")]
    public void Rejects_lines_not_in_the_result_format(string line) => Assert.False(ResultLine.TryParse(line, out _));

    [Theory]
    [InlineData("agent-1", true)]
    [InlineData("A_b9", true)]
    [InlineData("../etc", false)]
    [InlineData("-flag", false)]
    [InlineData("a/b", false)]
    [InlineData("", false)]
    public void Names_allow_only_safe_characters(string name, bool ok) => Assert.Equal(ok, HubValidation.IsName(name));
}

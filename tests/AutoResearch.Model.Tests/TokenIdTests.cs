using AutoResearch.Model.Gpu;
using Xunit;

namespace AutoResearch.Model.Tests;

/// <summary>What <see cref="GpuGpt.Upload"/> refuses before a kernel indexes a table with a token id (no GPU needed).</summary>
public class TokenIdTests
{
    [Fact]
    public void Token_ids_outside_the_vocabulary_are_refused_before_upload_naming_the_position()
    {
        var ids = Enumerable.Range(0, 1000).Select(i => i % 97).ToArray();
        GpuGpt.CheckTokenIds(ids, 97, "inputs");
        foreach (int bad in new[] { 97, -1, int.MaxValue, int.MinValue })
        {
            ids[613] = bad;
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => GpuGpt.CheckTokenIds(ids, 97, "inputs"));
            Assert.Equal("inputs", e.ParamName);
            Assert.Contains($"inputs[613] = {bad}", e.Message);
            Assert.Contains("[0, 97)", e.Message);
        }
    }
}

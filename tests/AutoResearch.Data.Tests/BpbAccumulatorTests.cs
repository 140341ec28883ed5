using AutoResearch.Data.Evaluation;
using Xunit;

namespace AutoResearch.Data.Tests;

public class BpbAccumulatorTests
{
    [Fact]
    public void Special_and_ignored_targets_are_left_out_of_both_sums()
    {
        // Token 0 is special (0 bytes); tokens 1..3 have 1..3 bytes.
        var bpb = new BpbAccumulator([0, 1, 2, 3]);
        bpb.Add([1.0f, 2.0f, 3.0f, 4.0f], [1, 0, 3, -1]);
        // Scored: target 1 (1 nat, 1 byte) and target 3 (3 nats, 3 bytes): 4 nats over 4 bytes = 1 / ln 2 bits per byte.
        Assert.Equal(4.0, bpb.Nats, 12);
        Assert.Equal(4, bpb.Bytes);
        Assert.Equal(1 / Math.Log(2), bpb.BitsPerByte, 12);
    }

    [Fact]
    public void Batches_accumulate()
    {
        var bpb = new BpbAccumulator([0, 2, 2]);
        bpb.Add([0.5f], [1]);
        bpb.Add([1.5f, 9f], [2, 0]);
        // (0.5 + 1.5) nats over 4 bytes.
        Assert.Equal(2.0 / (Math.Log(2) * 4), bpb.BitsPerByte, 12);
    }

    [Fact]
    public void Nothing_scored_is_an_error_not_a_zero()
    {
        var bpb = new BpbAccumulator([0, 1]);
        bpb.Add([3f], [0]);
        Assert.Throws<InvalidOperationException>(() => bpb.BitsPerByte);
    }
}

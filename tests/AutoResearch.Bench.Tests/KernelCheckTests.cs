using AutoResearch.Bench.Workbench;
using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>The check every benchmark runs before timing, and its refusal of a wrong kernel (no GPU needed: made-up outputs).</summary>
public class KernelCheckTests
{
    private static readonly double[] Expected = [1.0, -2.0, 3.0, 0.5];

    [Fact]
    public void Outputs_within_their_bounds_pass_and_the_summary_names_the_worst_tensor()
    {
        var check = new KernelCheck("rmsnorm_backward", 7, "4 values");
        check.Compare("dx", [1.0f, -2.0f, 3.0f, 0.5000001f], Expected, 1e-6);
        check.CompareBf16("dx bf16", Bf16.FromFloat([1.0f, -2.0f, 3.0f, 0.50390625f]), Expected, 1e-2); // one bf16 step off
        check.ThrowIfFailed();
        Assert.True(check.Passed);
        Assert.Equal("dx bf16", check.Worst!.Tensor);
        Assert.StartsWith("dx bf16 ", check.Summary());
        Assert.Contains("≤ 1E-2", check.Summary());
    }

    [Fact]
    public void A_wrong_output_is_refused_with_the_kernel_the_tensor_the_error_and_the_bound()
    {
        var check = new KernelCheck("rmsnorm_backward", 204, "9001 rows of 512");
        check.Compare("dx", [1.0f, 2.0f, 3.0f, 0.5f], Expected, 1e-4); // a sign flipped
        check.Compare("rstd", [1f], [1.0], 1e-5);
        Assert.False(check.Passed);
        var e = Assert.Throws<KernelCheckException>(check.ThrowIfFailed);
        Assert.Equal("rmsnorm_backward", e.Kernel);
        Assert.Equal("dx", Assert.Single(e.Failures).Tensor);
        Assert.StartsWith("rmsnorm_backward refused, not timed", e.Message);
        Assert.Contains("dx: relative L2 error 1.06E+000 over the bound 1.0E-004", e.Message);
        Assert.Contains("seed 204", e.Message);
        Assert.Contains("9001 rows of 512", e.Message);
        Assert.DoesNotContain("rstd", e.Message);
    }

    [Fact]
    public void A_nan_left_in_a_poisoned_output_never_passes_and_its_element_is_named()
    {
        var check = new KernelCheck("embedding_forward", 1, "4 values");
        check.Compare("out", [1.0f, -2.0f, float.NaN, 0.5f], Expected, double.MaxValue);
        var e = Assert.Throws<KernelCheckException>(check.ThrowIfFailed);
        Assert.Contains("out: element 2 of 4 is NaN", e.Message);
        Assert.Contains("poisoned", e.Message);
    }

    [Fact]
    public void An_exact_bound_refuses_any_difference()
    {
        var check = new KernelCheck("cast_f32_to_bf16", 1, "4 values");
        check.Compare("bf16", [1.0f, -2.0f, 3.0f, 0.5f], Expected, 0);
        Assert.True(check.Passed);
        check.Compare("bf16 again", [1.0f, -2.0f, 3.0f, 0.50390625f], Expected, 0);
        Assert.False(check.Passed);
    }

    [Fact]
    public void An_accumulated_output_is_judged_by_what_the_kernel_added()
    {
        float[] start = [100f, 100f, 100f, 100f];
        var check = new KernelCheck("embedding_backward", 1, "4 values");
        // The sum is off by 0.5 in one element: 0.25% of the total, but 17% of the increment.
        check.CompareIncrement("dtable", [101f, 98f, 103.5f, 100.5f], start, Expected, 1e-2);
        var e = Assert.Throws<KernelCheckException>(check.ThrowIfFailed);
        Assert.Contains("dtable (increment)", e.Message);
    }

    [Fact]
    public void A_check_that_compared_nothing_cannot_clear_a_kernel()
    {
        var check = new KernelCheck("anything", 1, "nothing");
        Assert.False(check.Passed);
        Assert.Throws<InvalidOperationException>(check.ThrowIfFailed);
        Assert.Throws<ArgumentException>(() => check.Compare("x", [1f, 2f], [1.0], 1));
    }

    [Fact]
    public void The_timing_set_up_never_runs_for_a_kernel_that_failed_its_check()
    {
        int setUps = 0;
        KernelWork SetUp()
        {
            setUps++;
            return KernelWork.Memory(100);
        }
        KernelCheck Wrong()
        {
            var check = new KernelCheck("rmsnorm_backward", 3, "4 values");
            check.Compare("dx", [1.0f, 2.0f, 3.0f, 0.5f], Expected, 1e-4);
            return check;
        }
        KernelCheck Right()
        {
            var check = new KernelCheck("rmsnorm_backward", 3, "4 values");
            check.Compare("dx", [1.0f, -2.0f, 3.0f, 0.5f], Expected, 1e-4);
            return check;
        }
        var e = Assert.Throws<KernelCheckException>(() => KernelBenchmark.CheckThenSetUp(Wrong, SetUp));
        Assert.Contains("rmsnorm_backward refused", e.Message);
        Assert.Equal(0, setUps);
        var (work, summary) = KernelBenchmark.CheckThenSetUp(Right, SetUp);
        Assert.Equal(1, setUps);
        Assert.Equal(100, work.Bytes);
        Assert.StartsWith("dx 0.0E+0", summary);
    }
}

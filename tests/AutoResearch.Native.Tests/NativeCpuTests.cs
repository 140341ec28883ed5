using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>Parts of the native layer that need no GPU: conversions, error text, bookkeeping.</summary>
public class NativeCpuTests
{
    [Theory]
    [InlineData(1.0f, (ushort)0x3F80)]
    [InlineData(-2.0f, (ushort)0xC000)]
    [InlineData(0.0f, (ushort)0x0000)]
    public void Bf16_from_float_is_exact_for_representable_values(float value, ushort bits)
    {
        Assert.Equal(bits, Bf16.FromFloat(value));
        Assert.Equal(value, Bf16.ToFloat(bits));
    }

    [Fact]
    public void Bf16_rounds_to_nearest_even_on_ties_and_up_past_half()
    {
        // 1 + 2^-8 lies exactly halfway between bf16 1.0 (0x3F80) and 1.0078125 (0x3F81): ties go to the even one.
        Assert.Equal((ushort)0x3F80, Bf16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F80_8000)));
        // 0x3F81_8000 is halfway between 0x3F81 (odd) and 0x3F82 (even): rounds up to the even one.
        Assert.Equal((ushort)0x3F82, Bf16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F81_8000)));
        // Just past half rounds up; just under rounds down.
        Assert.Equal((ushort)0x3F81, Bf16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F80_8001)));
        Assert.Equal((ushort)0x3F80, Bf16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F80_7FFF)));
    }

    [Theory]
    [InlineData(0x1000UL, 2L, 64L, 256L, 64, 32, "boxColumns")]  // a 128-byte swizzle row is 64 bf16
    [InlineData(0x1000UL, 2L, 64L, 256L, 300, 64, "boxRows")]    // TMA boxes have at most 256 rows
    [InlineData(0x1008UL, 2L, 64L, 256L, 64, 64, "address")]     // rows must start 16-byte aligned
    [InlineData(0x1000UL, 2L, 64L, 260L, 64, 64, "address")]     // 520-byte rows: not a multiple of 16
    [InlineData(0x1000UL, 0L, 64L, 256L, 64, 64, "rows")]        // an empty tensor
    public void Batched_tensor_map_rejects_bad_shapes_before_the_driver(ulong address, long batches, long rows, long columns,
        int boxRows, int boxColumns, string parameter)
    {
        var error = Assert.Throws<ArgumentException>(() => TensorMap.Bf16SwizzledBatched(address, batches, rows, columns, boxRows, boxColumns));
        Assert.Equal(parameter, error.ParamName);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1_048_575)]
    [InlineData(3 * 1_048_576 + 17)]   // chunks of 1 M and a ragged end
    public void Bf16_round_in_place_gives_each_value_rounded_as_round_does(int count)
    {
        var random = new Random(count + 5);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            // Random bit patterns: every exponent, ties, subnormals, infinities and NaNs among them.
            values[i] = BitConverter.Int32BitsToSingle(random.Next(int.MinValue, int.MaxValue));
        }
        if (count > 3)
        {
            values[0] = BitConverter.UInt32BitsToSingle(0x3F80_8000); // a tie: stays even
            values[1] = float.NaN;
            values[2] = float.PositiveInfinity;
        }
        var expected = Array.ConvertAll(values, Bf16.Round);
        Bf16.RoundInPlace(values);
        for (int i = 0; i < count; i++)
        {
            if (BitConverter.SingleToUInt32Bits(values[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
                Assert.Fail($"element {i}: {values[i]} against {expected[i]}");
        }
    }

    [Fact]
    public void Bf16_keeps_nan_and_infinity()
    {
        Assert.True(float.IsNaN(Bf16.Round(float.NaN)));
        Assert.Equal(float.PositiveInfinity, Bf16.Round(float.PositiveInfinity));
        Assert.Equal(float.NegativeInfinity, Bf16.Round(float.NegativeInfinity));
    }

    [Fact]
    public void Bf16_rounding_error_is_within_half_an_ulp_on_random_values()
    {
        var random = new Random(1234);
        for (int i = 0; i < 100_000; i++)
        {
            float x = (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-20, 20)));
            float r = Bf16.Round(x);
            // bf16 keeps 8 significant bits: for 2^e <= |x| < 2^(e+1) the spacing is 2^(e-7), so rounding to
            // nearest moves x by at most half of it, 2^(e-8).
            double halfUlp = Math.Pow(2, Math.Floor(Math.Log2(Math.Abs(x))) - 8);
            Assert.True(Math.Abs(r - x) <= halfUlp, $"x={x:R} r={r:R} (seed 1234)");
        }
    }

    [Fact]
    public void Cuda_error_message_names_the_library_the_call_and_the_status()
    {
        var text = CudaException.Format("CUDA driver", "cuMemAlloc_v2(out p, bytes)", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory");
        Assert.Equal("CUDA driver call cuMemAlloc_v2(out p, bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory", text);
    }

    [Fact]
    public void Check_on_success_does_not_throw_and_on_failure_captures_the_expression()
    {
        CUresult.CUDA_SUCCESS.Check();
        // The failure path asks the driver for the error's name; without a driver it falls back to the enum name.
        var e = Assert.Throws<CudaException>(() => ReturnStatus(CUresult.CUDA_ERROR_INVALID_VALUE).Check());
        Assert.Contains("ReturnStatus(CUresult.CUDA_ERROR_INVALID_VALUE)", e.Message, StringComparison.Ordinal);
        Assert.Equal((int)CUresult.CUDA_ERROR_INVALID_VALUE, e.Status);
        Assert.Contains("CUDA_ERROR_INVALID_VALUE", e.Message, StringComparison.Ordinal);
    }

    private static CUresult ReturnStatus(CUresult status) => status;

    [Fact]
    public void Memory_tracker_keeps_the_peak_across_frees()
    {
        var tracker = new DeviceMemoryTracker();
        tracker.OnAllocated(100);
        tracker.OnAllocated(50);
        tracker.OnFreed(100);
        tracker.OnAllocated(20);
        Assert.Equal(70, tracker.CurrentBytes);
        Assert.Equal(150, tracker.PeakBytes);
        tracker.ResetPeak();
        Assert.Equal(70, tracker.PeakBytes);
    }

    [Fact]
    public void Memory_tracker_peak_is_exact_under_concurrent_allocations()
    {
        var tracker = new DeviceMemoryTracker();
        Parallel.For(0, 64, _ => tracker.OnAllocated(1000));
        Assert.Equal(64_000, tracker.PeakBytes);
        Parallel.For(0, 64, _ => tracker.OnFreed(1000));
        Assert.Equal(0, tracker.CurrentBytes);
        Assert.Equal(64_000, tracker.PeakBytes);
    }

    [Theory]
    [InlineData(9, 0, "sm_90a")]
    [InlineData(8, 0, "sm_80")]
    [InlineData(8, 9, "sm_89")]
    [InlineData(10, 0, "sm_100a")]
    public void Architecture_targets_arch_specific_features_from_hopper_on(int major, int minor, string expected)
    {
        var properties = new DeviceProperties(0, "test", major, minor, 1, 1, 1, 1, 1);
        Assert.Equal(expected, properties.GpuArchitecture);
    }

    [Fact]
    public void Kernel_arguments_keep_their_bits_in_the_low_bytes()
    {
        Assert.Equal(0xFFFF_FFFFUL, ((KernelArg)(-1)).Bits);
        Assert.Equal((ulong)BitConverter.SingleToUInt32Bits(1.5f), ((KernelArg)1.5f).Bits);
        Assert.Equal(0x1234_5678_9ABC_DEF0UL, ((KernelArg)0x1234_5678_9ABC_DEF0UL).Bits);
        Assert.Equal(ulong.MaxValue, ((KernelArg)(-1L)).Bits);
    }

    [Fact]
    public void Blas_version_number_formats_as_major_minor_patch()
    {
        Assert.Equal("13.0.2", Blas.FormatVersion(130002));
        Assert.Equal("12.8.10", Blas.FormatVersion(120810));
    }

    [Fact]
    public void Median_takes_the_middle_value_or_the_mean_of_the_middle_two_in_any_order()
    {
        Assert.Equal(3.0, EventTiming.Median([5.0, 1.0, 3.0]));
        Assert.Equal(2.5, EventTiming.Median([4.0, 1.0, 3.0, 2.0]));
        Assert.Equal(7.0, EventTiming.Median([7.0]));
        Assert.Throws<ArgumentException>(() => EventTiming.Median([]));
    }
}

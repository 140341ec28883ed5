using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>The GPU's energy and clocks over windows (<see cref="GpuPowerMonitor"/>) and what is made of them
/// (<see cref="PowerSummary"/>).</summary>
public class PowerMonitorTests
{
    [Fact]
    public void A_summary_averages_energy_over_windows_and_reads_the_clock_samples()
    {
        // Two windows of 0.25 and 0.30 s; five samples, two with the power cap, one with a thermal slowdown.
        PowerSample[] samples =
        [
            new(1980, 0), new(1590, ClockReasons.SoftwarePowerCap), new(1350, ClockReasons.SoftwarePowerCap),
            new(1605, ClockReasons.HardwareThermalSlowdown), new(1700, 0),
        ];
        var summary = new PowerSummary([160.0, 200.0], [0.25, 0.30], samples, 700);

        Assert.Equal(180.0, summary.JoulesPerWindow, 12);
        Assert.Equal(360.0 / 0.55, summary.MeanWatts, 9);
        Assert.Equal(1605.0, summary.SmClockMedian);
        Assert.Equal(1350u, summary.SmClockMin);
        Assert.Equal(1980u, summary.SmClockMax);
        Assert.Equal(0.4, summary.PowerCapShare, 12);
        Assert.Equal(0.2, summary.OtherSlowdownShare, 12);
        Assert.Equal("180.0 J a whole step (2 measured), 655 W on average (limit 700 W); SM clock median 1605 MHz (1350–1980) in 5 samples, "
            + "the power cap active in 40 % of them, thermal or hardware slowdowns in 20 %", summary.Describe("whole step"));

        // An even count of samples takes the mean of the middle two.
        Assert.Equal(1597.5, new PowerSummary([1.0], [1.0], samples[1..], double.NaN).SmClockMedian);
    }

    [Fact]
    public void A_summary_without_windows_or_samples_says_so()
    {
        var empty = new PowerSummary([], [], [], double.NaN);
        Assert.True(double.IsNaN(empty.JoulesPerWindow));
        Assert.True(double.IsNaN(empty.MeanWatts));
        Assert.True(double.IsNaN(empty.SmClockMedian));
        Assert.True(double.IsNaN(empty.PowerCapShare));
        Assert.Equal("no window measured", empty.Describe("whole step"));
        Assert.Equal("12.0 J a step (1 measured), 120 W on average; no clock samples", new PowerSummary([12.0], [0.1], [], double.NaN).Describe("step"));
        Assert.Throws<ArgumentException>(() => new PowerSummary([1.0], [], [], 700));
    }

    [Fact]
    public void A_summary_without_clock_reasons_says_so_rather_than_zero()
    {
        var summary = new PowerSummary([150.0], [0.25], [new(1700, 0), new(1650, 0)], 700, reasonsReported: false);
        Assert.True(double.IsNaN(summary.PowerCapShare));
        Assert.True(double.IsNaN(summary.OtherSlowdownShare));
        Assert.EndsWith("in 2 samples, the driver did not report what held the clock down", summary.Describe("step"), StringComparison.Ordinal);
    }

    [Fact]
    public void Energy_between_counter_updates_is_interpolated_and_outside_them_unknown()
    {
        // Entry 0 is the value when polling began (not an update); then updates at 0.05, 0.15 and 0.25 s.
        (double, double)[] updates = [(0.00, 100.0), (0.05, 103.0), (0.15, 110.0), (0.25, 120.0)];

        Assert.Equal(106.5, GpuPowerMonitor.EnergyAt(updates, 0.10), 12);
        Assert.Equal(110.0, GpuPowerMonitor.EnergyAt(updates, 0.15), 12);
        Assert.Equal(119.0, GpuPowerMonitor.EnergyAt(updates, 0.24), 9);
        // Before the first update the start value's own time is unknown; after the last nothing is known yet.
        Assert.True(double.IsNaN(GpuPowerMonitor.EnergyAt(updates, 0.04)));
        Assert.True(double.IsNaN(GpuPowerMonitor.EnergyAt(updates, 0.26)));
        Assert.True(double.IsNaN(GpuPowerMonitor.EnergyAt([(0.0, 1.0), (0.1, 2.0)], 0.1)));
    }

    [Fact]
    public void Opening_a_gpu_that_is_not_there_gives_null_and_the_reason()
    {
        // No GPU sits at this address: without the driver the library is missing or NVML does not start; with it, NVML finds
        // nothing there. Either way no monitor, and a reason that names what failed.
        var monitor = GpuPowerMonitor.TryOpen("00000000:FF:1F.7", out string? unavailable);

        Assert.Null(monitor);
        Assert.False(string.IsNullOrWhiteSpace(unavailable));
        Assert.Contains("NVML", unavailable, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => GpuPowerMonitor.TryOpen(" ", out _));
    }

    [GpuFact]
    [Trait("Category", "GPU")]
    public void A_window_of_device_copies_takes_energy_and_has_clock_samples()
    {
        var device = TestGpu.Device;
        Assert.Matches(@"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$", device.PciBusId());
        using var monitor = GpuPowerMonitor.TryOpen(device, out string? unavailable);
        // A container given the compute capability only has no libnvidia-ml: the measurement is optional there.
        Assert.SkipWhen(monitor is null && unavailable!.Contains("was not found", StringComparison.Ordinal), unavailable ?? "");
        Assert.True(monitor is not null, $"a GPU host with NVML has an energy counter: {unavailable}");
        Assert.Throws<InvalidOperationException>(monitor.EndWindow);

        const long count = 64L << 20; // 256 MB each
        using var a = device.Allocate<float>(count, "power a");
        using var b = device.Allocate<float>(count, "power b");
        a.Fill(1.5f);
        device.Synchronize();
        for (int window = 0; window < 2; window++)
        {
            monitor.BeginWindow();
            Assert.Throws<InvalidOperationException>(monitor.BeginWindow);
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (watch.ElapsedMilliseconds < 300)
            {
                for (int i = 0; i < 20; i++)
                    b.CopyFrom(a);
                device.Synchronize();
            }
            monitor.EndWindow();
        }

        var summary = monitor.Summary();
        Assert.Null(monitor.Failure);
        Assert.Equal(2, summary.WindowJoules.Count);
        Assert.All(summary.WindowSeconds, s => Assert.InRange(s, 0.3, 5.0));
        // A busy GPU draws tens to hundreds of watts: well above zero, under any GPU's limit.
        Assert.InRange(summary.MeanWatts, 20, 1500);
        Assert.InRange(summary.Samples.Count, 10, 1000);
        Assert.All(summary.Samples, s => Assert.InRange(s.SmClockMegahertz, 100u, 4000u));
        Assert.True(summary.PowerLimitWatts is > 50 and < 2000, $"power limit {summary.PowerLimitWatts} W");
        var copied = b.ToArray(); // the work of the windows was done
        Assert.Equal(1.5f, copied[0]);
        Assert.Equal(1.5f, copied[^1]);
    }
}

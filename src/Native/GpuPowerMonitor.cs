using System.Diagnostics;
using System.Globalization;

namespace AutoResearch.Native;

/// <summary>One reading of the GPU inside a window: its SM clock and the clock-reason mask (<see cref="ClockReasons"/>; 0 where
/// the driver does not report it).</summary>
public readonly record struct PowerSample(uint SmClockMegahertz, ulong Reasons);

/// <summary>
/// What a <see cref="GpuPowerMonitor"/> saw: each window's energy (the GPU's own counter, millijoules, updated about every
/// 10 ms) and length (host clock), and the samples taken inside the windows.
/// </summary>
public sealed class PowerSummary
{
    public PowerSummary(IReadOnlyList<double> windowJoules, IReadOnlyList<double> windowSeconds, IReadOnlyList<PowerSample> samples,
        double powerLimitWatts)
    {
        ArgumentNullException.ThrowIfNull(windowJoules);
        ArgumentNullException.ThrowIfNull(windowSeconds);
        ArgumentNullException.ThrowIfNull(samples);
        if (windowJoules.Count != windowSeconds.Count)
            throw new ArgumentException($"{windowJoules.Count} window energies for {windowSeconds.Count} window lengths");
        WindowJoules = windowJoules;
        WindowSeconds = windowSeconds;
        Samples = samples;
        PowerLimitWatts = powerLimitWatts;
    }

    public IReadOnlyList<double> WindowJoules { get; }
    public IReadOnlyList<double> WindowSeconds { get; }
    public IReadOnlyList<PowerSample> Samples { get; }
    /// <summary>The enforced power limit, NaN where the driver does not say.</summary>
    public double PowerLimitWatts { get; }

    /// <summary>The mean energy of a window (the windows' total over their count: the counter's 10 ms steps average out), NaN
    /// without windows.</summary>
    public double JoulesPerWindow => WindowJoules.Count == 0 ? double.NaN : WindowJoules.Sum() / WindowJoules.Count;

    /// <summary>The windows' energy over their time, NaN without windows.</summary>
    public double MeanWatts => WindowSeconds.Sum() is > 0 and var seconds ? WindowJoules.Sum() / seconds : double.NaN;

    /// <summary>The median SM clock of the samples, NaN without samples.</summary>
    public double SmClockMedian => Samples.Count == 0 ? double.NaN : Median(Samples.Select(s => (double)s.SmClockMegahertz));

    public uint SmClockMin => Samples.Count == 0 ? 0 : Samples.Min(s => s.SmClockMegahertz);
    public uint SmClockMax => Samples.Count == 0 ? 0 : Samples.Max(s => s.SmClockMegahertz);

    /// <summary>The share of samples with the software power cap holding the clocks down, NaN without samples.</summary>
    public double PowerCapShare => Share(ClockReasons.SoftwarePowerCap);

    /// <summary>The share of samples with a thermal or hardware slowdown, NaN without samples.</summary>
    public double OtherSlowdownShare => Share(ClockReasons.OtherSlowdowns);

    private double Share(ulong mask) => Samples.Count == 0 ? double.NaN : Samples.Count(s => (s.Reasons & mask) != 0) / (double)Samples.Count;

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        int m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    /// <summary>One line: the energy of a <paramref name="window"/> (e.g. "whole step"), the mean power against the limit, and the
    /// SM clock with what held it down.</summary>
    public string Describe(string window)
    {
        var c = CultureInfo.InvariantCulture;
        if (WindowJoules.Count == 0)
            return "no window measured";
        string limit = double.IsNaN(PowerLimitWatts) ? "" : string.Create(c, $" (limit {PowerLimitWatts:F0} W)");
        string text = string.Create(c, $"{JoulesPerWindow:F1} J a {window} ({WindowJoules.Count} measured), {MeanWatts:F0} W on average{limit}");
        if (Samples.Count == 0)
            return text + "; no clock samples";
        return text + string.Create(c, $"; SM clock median {SmClockMedian:F0} MHz ({SmClockMin}–{SmClockMax}) in {Samples.Count} samples, ")
            + string.Create(c, $"the power cap active in {PowerCapShare:P0} of them, thermal or hardware slowdowns in {OtherSlowdownShare:P0}");
    }
}

/// <summary>
/// The GPU's energy and clocks over chosen windows of host time, through NVML: <see cref="BeginWindow"/> and
/// <see cref="EndWindow"/> read the GPU's energy counter (the caller synchronises the device at both ends), and while a window
/// is open a background thread samples the SM clock and the clock-reason mask every
/// <see cref="SamplePeriod"/>. Near its power limit a GPU lowers its clocks, so the energy of a step, more than its time at
/// a fixed clock, decides how fast it runs there. Optional: where NVML or the energy counter is missing,
/// <c>TryOpen</c> says why and returns null.
/// </summary>
public sealed class GpuPowerMonitor : IDisposable
{
    private readonly IntPtr _device;
    private readonly List<double> _joules = [];
    private readonly List<double> _seconds = [];
    private readonly List<PowerSample> _samples = [];
    private readonly double _limitWatts;
    private ulong _startMillijoules;
    private long _startTicks;
    private Thread? _sampler;
    private volatile bool _sampling;
    private bool _reasonsReported = true;
    private int _disposed;

    private GpuPowerMonitor(IntPtr device, double limitWatts, TimeSpan samplePeriod)
    {
        _device = device;
        _limitWatts = limitWatts;
        SamplePeriod = samplePeriod;
    }

    /// <summary>The power limit the driver enforces now, NaN where it does not say.</summary>
    public double PowerLimitWatts => _limitWatts;

    /// <summary>How often the sampler reads the clock and the reasons inside a window (10 ms unless given).</summary>
    public TimeSpan SamplePeriod { get; }

    /// <summary>A monitor of the GPU at <paramref name="pciBusId"/>, or null with the reason in <paramref name="unavailable"/>:
    /// no NVML library, NVML not starting, no such GPU, or no energy counter on it.</summary>
    public static GpuPowerMonitor? TryOpen(string pciBusId, out string? unavailable, TimeSpan? samplePeriod = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pciBusId);
        try
        {
            NativeLibraries.Ensure(NativeLibraries.Nvml);
        }
        catch (NativeLibraryNotFoundException e)
        {
            unavailable = $"{e.Library} was not found; it comes with the NVIDIA driver";
            return null;
        }
        int started = Nvml.nvmlInit_v2();
        if (started != Nvml.Success)
        {
            unavailable = $"NVML did not start: {Nvml.Describe(started)}";
            return null;
        }
        int found = Nvml.nvmlDeviceGetHandleByPciBusId_v2(pciBusId, out IntPtr device);
        int energy = found == Nvml.Success ? Nvml.nvmlDeviceGetTotalEnergyConsumption(device, out _) : Nvml.Success;
        if (found != Nvml.Success || energy != Nvml.Success)
        {
            unavailable = found != Nvml.Success
                ? $"NVML has no GPU at PCI address {pciBusId}: {Nvml.Describe(found)}"
                : $"the GPU's energy counter cannot be read: {Nvml.Describe(energy)}";
            _ = Nvml.nvmlShutdown();
            return null;
        }
        double limit = Nvml.nvmlDeviceGetEnforcedPowerLimit(device, out uint milliwatts) == Nvml.Success ? milliwatts / 1000.0 : double.NaN;
        unavailable = null;
        return new GpuPowerMonitor(device, limit, samplePeriod ?? TimeSpan.FromMilliseconds(10));
    }

    /// <summary>A monitor of <paramref name="device"/> (found by its PCI address), or null with the reason.</summary>
    public static GpuPowerMonitor? TryOpen(CudaDevice device, out string? unavailable)
    {
        ArgumentNullException.ThrowIfNull(device);
        return TryOpen(device.PciBusId(), out unavailable);
    }

    /// <summary>Opens a window: reads the energy counter and starts sampling. The device should be idle (synchronised).</summary>
    public void BeginWindow()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_sampling)
            throw new InvalidOperationException("a window is already open: EndWindow closes it first");
        _startMillijoules = ReadEnergy();
        _startTicks = Stopwatch.GetTimestamp();
        _sampling = true;
        _sampler = new Thread(Sample) { IsBackground = true, Name = "GPU power samples" };
        _sampler.Start();
    }

    /// <summary>Closes the window: stops sampling and adds its energy and length. The device's work of the window should be
    /// done (synchronised).</summary>
    public void EndWindow()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (!_sampling)
            throw new InvalidOperationException("no window is open: BeginWindow opens one");
        ulong end = ReadEnergy();
        double seconds = Stopwatch.GetElapsedTime(_startTicks).TotalSeconds;
        StopSampler();
        lock (_samples)
        {
            _joules.Add((end - _startMillijoules) / 1000.0);
            _seconds.Add(seconds);
        }
    }

    /// <summary>The windows closed so far and their samples.</summary>
    public PowerSummary Summary()
    {
        lock (_samples)
            return new PowerSummary([.. _joules], [.. _seconds], [.. _samples], _limitWatts);
    }

    private ulong ReadEnergy()
    {
        int result = Nvml.nvmlDeviceGetTotalEnergyConsumption(_device, out ulong millijoules);
        if (result != Nvml.Success)
            throw new InvalidOperationException($"NVML: the GPU's energy counter cannot be read: {Nvml.Describe(result)}");
        return millijoules;
    }

    private void Sample()
    {
        while (_sampling)
        {
            if (Nvml.nvmlDeviceGetClockInfo(_device, Nvml.ClockSm, out uint clock) == Nvml.Success)
            {
                ulong reasons = 0;
                if (_reasonsReported && Nvml.nvmlDeviceGetCurrentClocksThrottleReasons(_device, out reasons) != Nvml.Success)
                {
                    _reasonsReported = false;
                    reasons = 0;
                }
                lock (_samples)
                    _samples.Add(new PowerSample(clock, reasons));
            }
            Thread.Sleep(SamplePeriod);
        }
    }

    private void StopSampler()
    {
        _sampling = false;
        _sampler?.Join();
        _sampler = null;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        StopSampler();
        _ = Nvml.nvmlShutdown();
    }
}

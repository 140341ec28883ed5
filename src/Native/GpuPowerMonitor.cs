using System.Diagnostics;
using System.Globalization;

namespace AutoResearch.Native;

/// <summary>One reading of the GPU inside a window: its SM clock and the clock-reason mask (<see cref="ClockReasons"/>; 0 where
/// the driver does not report it).</summary>
public readonly record struct PowerSample(uint SmClockMegahertz, ulong Reasons);

/// <summary>
/// What a <see cref="GpuPowerMonitor"/> saw: each window's energy (the GPU's own counter, interpolated between its updates)
/// and length (host clock), and the samples taken inside the windows.
/// </summary>
public sealed class PowerSummary
{
    public PowerSummary(IReadOnlyList<double> windowJoules, IReadOnlyList<double> windowSeconds, IReadOnlyList<PowerSample> samples,
        double powerLimitWatts, bool reasonsReported = true)
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
        ReasonsReported = reasonsReported;
    }

    public IReadOnlyList<double> WindowJoules { get; }
    public IReadOnlyList<double> WindowSeconds { get; }
    public IReadOnlyList<PowerSample> Samples { get; }
    /// <summary>The enforced power limit, NaN where the driver does not say.</summary>
    public double PowerLimitWatts { get; }

    /// <summary>Whether the samples carry the driver's clock reasons (else their masks are 0 and the shares NaN).</summary>
    public bool ReasonsReported { get; }

    /// <summary>The mean energy of a window, NaN without windows.</summary>
    public double JoulesPerWindow => WindowJoules.Count == 0 ? double.NaN : WindowJoules.Sum() / WindowJoules.Count;

    /// <summary>The windows' energy over their time, NaN without windows.</summary>
    public double MeanWatts => WindowSeconds.Sum() is > 0 and var seconds ? WindowJoules.Sum() / seconds : double.NaN;

    /// <summary>The median SM clock of the samples, NaN without samples.</summary>
    public double SmClockMedian => Samples.Count == 0 ? double.NaN : EventTiming.Median(Samples.Select(s => (double)s.SmClockMegahertz));

    public uint SmClockMin => Samples.Count == 0 ? 0 : Samples.Min(s => s.SmClockMegahertz);
    public uint SmClockMax => Samples.Count == 0 ? 0 : Samples.Max(s => s.SmClockMegahertz);

    /// <summary>The share of samples with the software power cap holding the clocks down, NaN without samples.</summary>
    public double PowerCapShare => Share(ClockReasons.SoftwarePowerCap);

    /// <summary>The share of samples with a thermal or hardware slowdown, NaN without samples.</summary>
    public double OtherSlowdownShare => Share(ClockReasons.OtherSlowdowns);

    private double Share(ulong mask)
        => Samples.Count == 0 || !ReasonsReported ? double.NaN : Samples.Count(s => (s.Reasons & mask) != 0) / (double)Samples.Count;

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
        text += string.Create(c, $"; SM clock median {SmClockMedian:F0} MHz ({SmClockMin}–{SmClockMax}) in {Samples.Count} samples, ");
        return text + (ReasonsReported
            ? string.Create(c, $"the power cap active in {PowerCapShare:P0} of them, thermal or hardware slowdowns in {OtherSlowdownShare:P0}")
            : "the driver did not report what held the clock down");
    }
}

/// <summary>
/// The GPU's energy and clocks over chosen windows of host time, through NVML. From <c>TryOpen</c> on, a background thread
/// polls the GPU every <see cref="SamplePeriod"/>: it notes each change of the energy counter (which the driver updates
/// about every 100 ms on an H100, too coarse to read at a window's ends directly) with its time, and, while a window is open,
/// the SM clock and the clock-reason mask. <see cref="BeginWindow"/> and <see cref="EndWindow"/> only mark times (the caller
/// synchronises the device at both); <see cref="Summary"/> gives each window the counter's rise between its ends,
/// interpolated linearly between the updates around them. Near its power limit a GPU lowers its clocks, so the energy of a
/// step, more than its time at a fixed clock, decides how fast it runs there. Optional: where NVML or the energy counter is
/// missing, <c>TryOpen</c> says why and returns null; a query failing later ends the measurement, not the caller.
/// </summary>
public sealed class GpuPowerMonitor : IDisposable
{
    private readonly IntPtr _device;
    private readonly double _limitWatts;
    private readonly object _lock = new();
    // Energy counter changes: host seconds (since _origin) when seen, joules. The first entry is the value at the start,
    // whose own update time is unknown, so it only bounds the next one.
    private readonly List<(double Seconds, double Joules)> _updates = [];
    private readonly List<(double Start, double End)> _windows = [];
    private readonly List<PowerSample> _samples = [];
    private readonly long _origin = Stopwatch.GetTimestamp();
    private readonly Thread _sampler;
    private volatile bool _running = true;
    private volatile bool _windowOpen;
    private double _windowStart;
    private volatile bool _reasonsReported = true;
    private bool _useEventReasons = true;
    private string? _failure;
    private int _disposed;

    private GpuPowerMonitor(IntPtr device, double limitWatts, TimeSpan samplePeriod)
    {
        _device = device;
        _limitWatts = limitWatts;
        SamplePeriod = samplePeriod;
        _sampler = new Thread(Poll) { IsBackground = true, Name = "GPU power samples" };
        _sampler.Start();
    }

    /// <summary>The power limit the driver enforces now, NaN where it does not say.</summary>
    public double PowerLimitWatts => _limitWatts;

    /// <summary>How often the background thread polls the energy counter, the clock and the reasons (10 ms unless given).</summary>
    public TimeSpan SamplePeriod { get; }

    /// <summary>Why the measurement stopped (an NVML query that failed after the start), or null while it runs.</summary>
    public string? Failure
    {
        get
        {
            lock (_lock)
                return _failure;
        }
    }

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

    private double Now => Stopwatch.GetElapsedTime(_origin).TotalSeconds;

    /// <summary>Opens a window now. The device should be idle (synchronised). The first window waits (up to a second) for the
    /// energy counter's first update after the monitor opened, from which its energy is interpolated.</summary>
    public void BeginWindow()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        WaitUntil(() => _updates.Count > 1);
        lock (_lock)
        {
            if (_windowOpen)
                throw new InvalidOperationException("a window is already open: EndWindow closes it first");
            _windowStart = Now;
            _windowOpen = true;
        }
    }

    /// <summary>Closes the window now. The device's work of the window should be done (synchronised).</summary>
    public void EndWindow()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        lock (_lock)
        {
            if (!_windowOpen)
                throw new InvalidOperationException("no window is open: BeginWindow opens one");
            _windowOpen = false;
            _windows.Add((_windowStart, Now));
        }
    }

    /// <summary>The windows closed so far, each with its energy, and their clock samples. Waits (up to a second) for the energy
    /// counter's first update after the last window, which its interpolation needs; a window the updates do not bracket (the
    /// measurement failed, or the counter stopped) is left out.</summary>
    public PowerSummary Summary()
    {
        double last;
        lock (_lock)
            last = _windows.Count == 0 ? double.NegativeInfinity : _windows[^1].End;
        WaitUntil(() => !_running || (_updates.Count > 1 && _updates[^1].Seconds > last));
        lock (_lock)
        {
            var joules = new List<double>();
            var seconds = new List<double>();
            foreach (var (start, end) in _windows)
            {
                double rise = EnergyAt(_updates, end) - EnergyAt(_updates, start);
                if (double.IsNaN(rise))
                    continue;
                joules.Add(rise);
                seconds.Add(end - start);
            }
            return new PowerSummary(joules, seconds, [.. _samples], _limitWatts, _reasonsReported);
        }
    }

    // Waits until `ready` (tested under the lock) holds or the measurement has failed, polling every SamplePeriod for at most
    // a second: the counter's next update is about 100 ms away.
    private void WaitUntil(Func<bool> ready)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(1))
        {
            lock (_lock)
            {
                if (_failure is not null || ready())
                    return;
            }
            Thread.Sleep(SamplePeriod);
        }
    }

    /// <summary>
    /// The counter's value at host time <paramref name="seconds"/>, linear between the two updates around it. Entry 0 is the
    /// value when polling began, not an update (its time is only when it was first seen), so a time before entry 1 has no
    /// value; nor has one after the last entry. NaN then.
    /// </summary>
    public static double EnergyAt(IReadOnlyList<(double Seconds, double Joules)> updates, double seconds)
    {
        ArgumentNullException.ThrowIfNull(updates);
        for (int k = 1; k + 1 < updates.Count; k++)
        {
            var (t0, e0) = updates[k];
            var (t1, e1) = updates[k + 1];
            if (seconds >= t0 && seconds <= t1)
                return t1 > t0 ? e0 + (e1 - e0) * (seconds - t0) / (t1 - t0) : e1;
        }
        return double.NaN;
    }

    private void Poll()
    {
        ulong previous = ulong.MaxValue;
        try
        {
            while (_running)
            {
                int status = Nvml.nvmlDeviceGetTotalEnergyConsumption(_device, out ulong millijoules);
                if (status != Nvml.Success)
                {
                    Fail($"the GPU's energy counter could not be read: {Nvml.Describe(status)}");
                    return;
                }
                double now = Now;
                if (millijoules != previous)
                {
                    previous = millijoules;
                    lock (_lock)
                        _updates.Add((now, millijoules / 1000.0));
                }
                if (_windowOpen && Nvml.nvmlDeviceGetClockInfo(_device, Nvml.ClockSm, out uint clock) == Nvml.Success)
                {
                    ulong reasons = ReadReasons();
                    lock (_lock)
                    {
                        if (_windowOpen)
                            _samples.Add(new PowerSample(clock, reasons));
                    }
                }
                Thread.Sleep(SamplePeriod);
            }
        }
        catch (EntryPointNotFoundException e)
        {
            Fail($"NVML failed while sampling: {e.Message}");
        }
    }

    // The clock-reason mask: the current name of the query first (drivers since 535), then the older one; 0 once neither
    // answers, and the summary then says the reasons were not reported.
    private ulong ReadReasons()
    {
        if (!_reasonsReported)
            return 0;
        if (_useEventReasons)
        {
            try
            {
                if (Nvml.nvmlDeviceGetCurrentClocksEventReasons(_device, out ulong reasons) == Nvml.Success)
                    return reasons;
            }
            catch (EntryPointNotFoundException)
            {
            }
            _useEventReasons = false;
        }
        try
        {
            if (Nvml.nvmlDeviceGetCurrentClocksThrottleReasons(_device, out ulong reasons) == Nvml.Success)
                return reasons;
        }
        catch (EntryPointNotFoundException)
        {
        }
        _reasonsReported = false;
        return 0;
    }

    private void Fail(string reason)
    {
        lock (_lock)
            _failure ??= reason;
        _running = false;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _running = false;
        _sampler.Join();
        _ = Nvml.nvmlShutdown();
    }
}

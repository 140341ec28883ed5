using AutoResearch.Model;
using AutoResearch.Native;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// What every kernel benchmark shares. A family class declares its parameters (Config, and B and T where the kernel works on
/// tokens), one [Benchmark] method per kernel call it times, and for each a [GlobalSetup(Target = ...)] that calls
/// <see cref="Prepare"/> with two steps: a check (the kernel on fresh random inputs, outputs poisoned, against the fp64
/// CPU reference: <see cref="KernelCheck"/>) and, only when the check passed, the timing set-up (full-size buffers, the
/// work of one call). A benchmark method brackets its launches with <see cref="Begin"/> and <see cref="End"/>: device events
/// around them, one sample per invocation (<see cref="KernelTimings"/>), and a wait for the device, so BenchmarkDotNet's
/// wall-clock time is that of the finished work too. A kernel that failed its check is never timed.
/// </summary>
[Config(typeof(KernelBenchmarkConfig))]
public abstract class KernelBenchmark
{
    private DeviceScratch? _buffers;
    private CudaEvent? _start;
    private CudaEvent? _end;
    private KernelTimings.Entry? _timing;

    /// <summary>Which kernel folder: "current", or "before" when a second folder is given (--before).</summary>
    [ParamsSource(nameof(KernelVersions))]
    public string Kernels { get; set; } = KernelBenchOptions.CurrentVersion;

    public static IEnumerable<string> KernelVersions => KernelBenchOptions.Current.KernelVersions;

    /// <summary>The named model configuration (<see cref="BenchConfigs"/>); each family declares the ones it depends on.</summary>
    public abstract string Config { get; set; }

    /// <summary>Tokens per row of the model shape (the families that take B and T override it with T).</summary>
    protected virtual int SeqLen => 2048;

    protected BenchGpu Gpu => BenchGpu.Shared;

    protected CudaDevice Device => Gpu.Device;

    protected CudaStream Stream => Gpu.Stream;

    protected Blas Blas => Gpu.Blas;

    /// <summary>The kernel cache of the folder this case runs (its Kernels parameter).</summary>
    protected KernelCache KernelFiles { get; private set; } = null!;

    /// <summary>The model shape of this case's configuration.</summary>
    protected ModelShape Shape { get; private set; } = null!;

    /// <summary>The full-size buffers of the timed runs, freed by the cleanup.</summary>
    protected DeviceScratch Buffers => _buffers ??= new DeviceScratch(Device);

    /// <summary>Builds the launchers from <see cref="KernelFiles"/> and <see cref="Shape"/> (before the check).</summary>
    protected abstract void Open();

    /// <summary>
    /// The set-up of one benchmark method: opens the device and the kernels, runs the check and refuses the kernel if it failed,
    /// then sets up the timed runs and starts the case's record.
    /// </summary>
    protected void Prepare(string method, Func<KernelCheck> check, Func<KernelWork> setUpTiming)
    {
        var options = KernelBenchOptions.Current;
        KernelFiles = Gpu.Kernels(options.KernelDirectory(Kernels), options.CubinDirectory);
        Shape = BenchConfigs.Shape(Config, SeqLen);
        Open();
        KernelWork work;
        string summary;
        try
        {
            (work, summary) = CheckThenSetUp(check, () =>
            {
                var w = setUpTiming();
                Device.Synchronize(); // the fills ran on the legacy stream
                return w;
            });
        }
        catch (KernelCheckException e)
        {
            // One grep-able block in the log, besides BenchmarkDotNet's report of the failed set-up.
            Console.WriteLine($"// REFUSED {GetType().Name}.{method} [Config={Config}, Kernels={Kernels}]: {e.Message}");
            throw;
        }
        _start = new CudaEvent(Device);
        _end = new CudaEvent(Device);
        _timing = KernelTimings.Start(KernelTimings.KeyOf(this, method), work, summary);
    }

    /// <summary>
    /// Runs the check and throws <see cref="KernelCheckException"/> if any output missed its bound, so that
    /// <paramref name="setUpTiming"/> never runs for a wrong kernel; else returns the work of one call and the check's summary.
    /// </summary>
    public static (KernelWork Work, string CheckSummary) CheckThenSetUp(Func<KernelCheck> check, Func<KernelWork> setUpTiming)
    {
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(setUpTiming);
        var result = check();
        result.ThrowIfFailed();
        return (setUpTiming(), result.Summary());
    }

    /// <summary>
    /// Runs a check's launches: waits for the uploads and poisoning (legacy stream) first, then for the launches, so the
    /// outputs can be read back.
    /// </summary>
    protected void RunForCheck(Action launches)
    {
        ArgumentNullException.ThrowIfNull(launches);
        Device.Synchronize();
        launches();
        Stream.Synchronize();
    }

    /// <summary>Starts a timed invocation (records the start event); refuses when the case's check has not passed.</summary>
    protected void Begin()
    {
        if (_timing is null)
            throw new InvalidOperationException($"{GetType().Name}: refusing to time a kernel whose check has not passed");
        _start!.Record(Stream);
    }

    /// <summary>Ends a timed invocation: records the end event, waits for it and keeps the device time.</summary>
    protected void End()
    {
        _end!.Record(Stream);
        _timing!.Add(CudaEvent.ElapsedMilliseconds(_start!, _end));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_start is not null)
            Stream.Synchronize();
        OnCleanup();
        _start?.Dispose();
        _end?.Dispose();
        _start = _end = null;
        _buffers?.Dispose();
        _buffers = null;
        _timing = null;
    }

    /// <summary>Frees what a family allocated outside <see cref="Buffers"/> (called by the cleanup after the stream is idle).</summary>
    protected virtual void OnCleanup()
    {
    }

    /// <summary>Bf16 bits as doubles (the reference's inputs are the values the kernel reads).</summary>
    protected static double[] Values(ushort[] bits) => Array.ConvertAll(bits, b => (double)Bf16.ToFloat(b));

    protected static double[] Values(float[] values) => Array.ConvertAll(values, v => (double)v);
}

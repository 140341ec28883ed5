using System.Diagnostics;
using System.Globalization;
using AutoResearch.Model;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Optim;
using AutoResearch.Optim.Gpu;

namespace AutoResearch.Runner.Training;

/// <summary>The GPU model (<see cref="GpuGpt"/>) and optimizer (<see cref="MuonAdamWGpu"/>) on one stream of device 0.</summary>
public sealed class GpuTrainer : ITrainer
{
    private readonly CudaDevice _gpu;
    private readonly CudaStream _stream;
    private readonly Blas _blas;
    private readonly KernelCache _kernels;
    private readonly GpuGpt _model;
    private readonly MuonAdamWGpu _optimizer;
    // Queued evaluations: their per-token losses land in these pinned buffers in turn, each with an event after its copy.
    private readonly PinnedHostBuffer<float>[] _evaluationLosses;
    private readonly CudaEvent[] _evaluationDone;
    private long _evaluationsQueued;
    private long _evaluationsTaken;
    // Events around the parts of the open step (BeginStep, after each micro-step, after the optimizer), reused step after step
    // (more are made when a step has more parts than any before); the parts' times are read once ReadLossSum has waited.
    private readonly List<CudaEvent> _partEvents = [];
    private int _partsRecorded;
    private bool _stepOpen;
    private readonly List<double> _lastStepParts = [];

    private GpuTrainer(CudaDevice gpu, CudaStream stream, Blas blas, KernelCache kernels, GpuGpt model, MuonAdamWGpu optimizer,
        PinnedHostBuffer<float>[] evaluationLosses, CudaEvent[] evaluationDone)
    {
        _gpu = gpu;
        _stream = stream;
        _blas = blas;
        _kernels = kernels;
        _model = model;
        _optimizer = optimizer;
        _evaluationLosses = evaluationLosses;
        _evaluationDone = evaluationDone;
    }

    /// <summary>
    /// Opens device 0, builds the model with SPEC §5's initialisation from <paramref name="seed"/> and the optimizer. Throws when
    /// there is no CUDA device (or no driver library), pointing at --device cpu.
    /// </summary>
    /// <param name="recomputeMlp">The Recompute knob: each layer's MLP activation recomputed in the backward, not kept.</param>
    public static GpuTrainer Create(ModelShape shape, int batch, OptimizerSettings settings, int seed, string kernelCacheDirectory, bool recomputeMlp = false)
    {
        ArgumentNullException.ThrowIfNull(shape);
        RequireDevice();

        // The initial weights are drawn on the host (about a second at the baseline) while the device is set up.
        var initialValues = Task.Run(() => GpuParameters.InitialValues(shape, seed));
        var owned = new List<IDisposable>();
        Task<Blas>? blasTask = null;
        var watch = Stopwatch.StartNew();
        var phases = new List<string>();
        void Phase(string name)
        {
            phases.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {watch.Elapsed.TotalSeconds:F1}"));
            watch.Restart();
        }
        using var planning = new CancellationTokenSource();
        try
        {
            var gpu = Own(owned, CudaDevice.Open(0));
            GpuGpt.RequireFlashDevice(gpu.Properties);
            CheckMemory(gpu, shape, batch, settings, recomputeMlp);
            Phase("device");
            // A cold cache compiles every file at once, in processes of their own, while the rest is set up; each constructor
            // below then waits only for its own files.
            var kernels = Own(owned, new KernelCache(gpu, KernelCache.DefaultKernelDirectory, kernelCacheDirectory));
            KernelSource[] sources = [.. GpuGpt.KernelSources(gpu.Properties, shape, batch), .. MuonAdamWGpu.KernelSources];
            _ = kernels.CompileAhead(sources, KernelCompileProcesses.Worker());
            var stream = Own(owned, new CudaStream(gpu));
            // cuBLAS loads its libraries and makes its handles (1.5 s on a new machine) on a thread of its own while this one
            // waits for the kernels and loads their modules: the start-up then takes the longer of the two, not their sum.
            // It then plans the GEMM shapes remembered from earlier runs (or shipped), so the first step does not query them,
            // until this thread needs it: what is left then is planned at first use, as without a file.
            blasTask = Task.Run(() =>
            {
                var blas = new Blas(gpu, stream)
                {
                    TuneCandidates = GemmCandidates,
                    Choices = new GemmChoices(Path.Combine(kernelCacheDirectory, GemmChoicesFile), Blas.ChoicesContext(gpu.Properties, GemmCandidates),
                        ShippedGemmChoices()),
                };
                try
                {
                    blas.PlanRemembered(planning.Token);
                }
                catch
                {
                    blas.Dispose();
                    throw;
                }
                return blas;
            });
            Phase("streams");
            foreach (var source in sources)
                kernels.Load(source);
            Phase("kernels");
            planning.Cancel();
            var blas = Own(owned, blasTask.GetAwaiter().GetResult());
            Phase("then cuBLAS");
            var model = Own(owned, new GpuGpt(gpu, stream, blas, kernels, shape, batch, recomputeMlp: recomputeMlp));
            Phase("model");
            model.Parameters.Initialise(initialValues.GetAwaiter().GetResult());
            model.Parameters.RefreshBf16(model.Elementwise, stream);
            Phase("weights");
            var optimizer = Own(owned, new MuonAdamWGpu(gpu, stream, blas, kernels, model.Parameters, settings));
            Phase("optimizer");
            int tokens = model.Activations.Tokens;
            PinnedHostBuffer<float>[] evaluationLosses = [Own(owned, new PinnedHostBuffer<float>(gpu, tokens)), Own(owned, new PinnedHostBuffer<float>(gpu, tokens))];
            CudaEvent[] evaluationDone = [Own(owned, new CudaEvent(gpu)), Own(owned, new CudaEvent(gpu))];
            return new GpuTrainer(gpu, stream, blas, kernels, model, optimizer, evaluationLosses, evaluationDone) { StartupNote = string.Join(", ", phases) + " s" };
        }
        catch
        {
            // A failure while cuBLAS was still being set up on its thread: wait for it, and free it with the rest.
            if (blasTask is not null && !owned.OfType<Blas>().Any())
            {
                planning.Cancel();
                try
                {
                    owned.Add(blasTask.GetAwaiter().GetResult());
                }
                catch (Exception) when (blasTask.IsFaulted)
                {
                    // It failed too: nothing of it to free.
                }
            }
            for (int i = owned.Count - 1; i >= 0; i--)
                owned[i].Dispose();
            throw;
        }
    }

    /// <summary>Bytes beyond the model's and optimizer's buffers: the CUDA context, cuBLAS workspaces, the kernels' modules.</summary>
    public const long WorkspaceBytes = 2L << 30;

    /// <summary>The device bytes a run of this shape and batch allocates, estimated before any allocation.</summary>
    public static long EstimateBytes(DeviceProperties properties, ModelShape shape, int batch, OptimizerSettings settings, bool recomputeMlp = false)
        => GpuGpt.EstimateBytes(properties, shape, batch, recomputeMlp: recomputeMlp) + MuonAdamWGpu.EstimateBytes(shape, settings) + WorkspaceBytes;

    /// <summary>
    /// Refuses, before anything is allocated, a shape and batch whose estimate exceeds the device's free memory, naming
    /// --device-batch and the largest batch that would fit, and the Recompute knob where it would make the batch fit.
    /// </summary>
    public static void CheckMemory(CudaDevice gpu, ModelShape shape, int batch, OptimizerSettings settings, bool recomputeMlp = false)
    {
        ArgumentNullException.ThrowIfNull(gpu);
        var (free, total) = gpu.MemoryInfo();
        if (MemoryRefusal(gpu.Properties, shape, batch, settings, recomputeMlp, free, total) is { } refusal)
            throw new InvalidOperationException(refusal);
    }

    /// <summary>The Recompute knob as advice where memory runs short (the refusal before allocating, and an out-of-memory error).</summary>
    public const string RecomputeAdvice = "--set Recompute=mlp (the MLP activations recomputed in the backward: the same results, a few per cent slower)";

    /// <summary>What <see cref="CheckMemory"/> says when the run does not fit in <paramref name="freeBytes"/>; null when it fits.</summary>
    public static string? MemoryRefusal(DeviceProperties properties, ModelShape shape, int batch, OptimizerSettings settings, bool recomputeMlp,
        long freeBytes, long totalBytes)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long need = EstimateBytes(properties, shape, batch, settings, recomputeMlp);
        if (need <= freeBytes)
            return null;
        int fits = 0;
        for (int b = batch - 1; b >= 1; b = b > 16 ? b - b / 8 : b - 1)
        {
            if (EstimateBytes(properties, shape, b, settings, recomputeMlp) <= freeBytes)
            {
                fits = b;
                break;
            }
        }
        var advice = new List<string>();
        if (!recomputeMlp && EstimateBytes(properties, shape, batch, settings, recomputeMlp: true) <= freeBytes)
            advice.Add(RecomputeAdvice);
        advice.Add(fits > 0
            ? $"lower --device-batch (about {fits} rows fit; the total batch stays the same with more accumulation steps if it divides)"
            : "even --device-batch 1 does not fit: make the model smaller (Depth, AspectRatio, MlpRatio)");
        return $"--device-batch {batch} with this model ({shape.Describe()}) needs about {need / 1e9:F1} GB of device memory; the GPU has "
            + $"{freeBytes / 1e9:F1} GB free of {totalBytes / 1e9:F1} GB: {string.Join(", or ", advice)}";
    }

    /// <summary>
    /// cuBLASLt algorithms timed for each GEMM shape on its first use (in the first, uncounted step), the fastest kept;
    /// see <see cref="Blas.TuneCandidates"/>.
    /// </summary>
    public const int GemmCandidates = 8;

    /// <summary>Throws <see cref="NoDeviceMessage"/> where there is no CUDA device, or no driver library to ask.</summary>
    public static void RequireDevice()
    {
        int count;
        try
        {
            count = CudaDevice.Count();
        }
        catch (NativeLibraryNotFoundException)
        {
            count = 0;
        }
        if (count == 0)
            throw new InvalidOperationException(NoDeviceMessage);
    }

    /// <summary>The file in the kernel cache folder that keeps each GEMM shape's chosen algorithm between runs (<see cref="GemmChoices"/>).</summary>
    public const string GemmChoicesFile = "gemm-choices.json";

    /// <summary>
    /// The choices shipped with the kernels (kernels/gemm-choices/*.json: a gemm-choices.json of a run on one kind of GPU, copied
    /// there), which a new machine of the same GPU and cuBLASLt version takes for the shapes its own file lacks.
    /// </summary>
    public static IReadOnlyList<string> ShippedGemmChoices(string? kernelDirectory = null)
    {
        var folder = Path.Combine(kernelDirectory ?? KernelCache.DefaultKernelDirectory, "gemm-choices");
        return Directory.Exists(folder) ? [.. Directory.GetFiles(folder, "*.json").Order(StringComparer.Ordinal)] : [];
    }

    /// <summary>
    /// What a `train` on this GPU will find of the GEMM choices (for `doctor`): how many shapes the cache's file holds for
    /// <paramref name="context"/>, and which shipped files were made in it. Neither means its first step times the candidates.
    /// </summary>
    public static string DescribeGemmChoices(string cacheFile, string context, IReadOnlyList<string> shipped)
    {
        ArgumentNullException.ThrowIfNull(shipped);
        int cached = new GemmChoices(cacheFile, context).Loaded;
        var matching = shipped.Select(f => (File: Path.GetFileName(f), Count: new GemmChoices(f, context).Loaded)).Where(m => m.Count > 0).ToList();
        string cache = cached > 0 ? $"{cached} shape(s) remembered in {cacheFile}" : "none remembered in the cache";
        string ships = matching.Count > 0
            ? "shipped for this GPU: " + string.Join(", ", matching.Select(m => $"{m.File} ({m.Count})"))
            : shipped.Count > 0 ? $"none of the {shipped.Count} shipped file(s) is for this GPU" : "none shipped";
        string first = cached == 0 && matching.Count == 0
            ? $" ({context}): the first `train` times each shape's candidates in its first step (about a second) and keeps its choices"
            : "";
        return $"{cache}; {ships}{first}";
    }

    /// <summary>The error of `train` on a machine without a CUDA device.</summary>
    public const string NoDeviceMessage = "no CUDA device found; use --device cpu for a tiny CPU run (or run `autoresearch doctor` to see what is missing)";

    private static T Own<T>(List<IDisposable> owned, T item) where T : IDisposable
    {
        owned.Add(item);
        return item;
    }

    public ModelShape Shape => _model.Shape;

    /// <summary>Which kernel each op of the model runs (<see cref="GpuGpt.Paths"/>).</summary>
    public KernelPaths Paths => _model.Paths;

    /// <summary>
    /// The median time of one micro-step (forward, loss, backward) on uniformly random tokens, from device events: 2 warm-ups,
    /// then <paramref name="steps"/> timed. Gradients accumulate into the model's (call <see cref="BeginStep"/> after).
    /// </summary>
    public double MedianMicroStepMilliseconds(int steps, int seed = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        var random = new Random(seed);
        int n = _model.Activations.Tokens;
        var inputs = new int[n];
        var targets = new int[n];
        for (int i = 0; i < n; i++)
        {
            inputs[i] = random.Next(Shape.VocabSize);
            targets[i] = random.Next(Shape.VocabSize);
        }
        _model.Upload(inputs, targets);
        return EventTiming.MedianMilliseconds(_gpu, _stream, () => _model.ForwardBackward(1f / n), warmups: 2, iterations: steps);
    }

    public int Batch => _model.Activations.Batch;

    public long ParameterCount => _model.Parameters.Count;

    public double PeakMemoryMegabytes => _gpu.Memory.PeakMegabytes;

    /// <summary>Seconds of each part of <see cref="Create"/>: the device, the streams (the kernel cache, the compiles started),
    /// the kernels (waiting for the compiles, loading the modules), then cuBLAS (what is left of its set-up on its own thread),
    /// the model, the weights, the optimizer.</summary>
    public string StartupNote { get; private init; } = "";

    public TimeSpan GemmPlanningTime => _blas.PlanningTime;

    public string DeviceNote => (_kernels.AheadHits == 0
        ? $"kernels compiled {_kernels.Compiled}, cached {_kernels.DiskHits}"
        : $"kernels compiled {_kernels.Compiled} (side by side; start-up waited {_kernels.AheadWaitTime.TotalSeconds:F1} s for them{Longest(_kernels.LongestAheadCompile)}), cached {_kernels.DiskHits}")
        + (_kernels.AheadFailures > 0 ? $"; {_kernels.AheadFailures} failed side by side and were compiled again one at a time" : "")
        + (_blas.Choices is { } choices ? $"; GEMM algorithms remembered {choices.Loaded}" + (choices.Shipped > 0 ? $", shipped {choices.Shipped}" : "")
            + (_blas.AheadPlans > 0 ? string.Create(CultureInfo.InvariantCulture, $", planned ahead {_blas.AheadPlans} in {_blas.AheadPlanningTime.TotalSeconds:F2} s") : "") : "");

    /// <summary>A warning line when a loaded kernel's compile log holds a performance note (e.g. wgmma products serialised).</summary>
    public IReadOnlyList<string> StartWarnings
    {
        get
        {
            var lines = new List<string>();
            if (_kernels.PerformanceNotes() is { Count: > 0 } notes)
                lines.Add(KernelResourceReport.PerformanceNotesLine(notes));
            if (OffFastPathLine(Paths) is { } off)
                lines.Add(off);
            return lines;
        }
    }

    /// <summary>A start-up line naming the ops this shape runs off their fast kernel path and why, or null when none does.</summary>
    public static string? OffFastPathLine(KernelPaths paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        return paths.Fallbacks() is { Length: > 0 } list ? $"kernel paths: off the fast path for this shape: {list} (`autoresearch paths` shows every op)" : null;
    }

    private static string Longest(KernelCompileTime? longest) => longest is null ? "" : $"; the longest, {longest.Label}, took {longest.Elapsed.TotalSeconds:F1} s";

    public void Synchronize() => _stream.Synchronize();

    public void BeginStep()
    {
        _partsRecorded = 0;
        _stepOpen = true;
        RecordPart();
        _model.Parameters.ZeroGradients(_stream);
        _model.ResetLossSum();
    }

    /// <summary>Queues the event that ends the step's current part (the first marks the step's start).</summary>
    private void RecordPart()
    {
        if (!_stepOpen)
            return;
        if (_partsRecorded == _partEvents.Count)
            _partEvents.Add(new CudaEvent(_gpu));
        _partEvents[_partsRecorded++].Record(_stream);
    }

    public void Upload(int[] inputs, int[] targets) => _model.Upload(inputs, targets);

    public void ForwardBackward(float gradScale)
    {
        _model.ForwardBackward(gradScale);
        RecordPart();
    }

    public double ReadLossSum()
    {
        double sum = _model.ReadLossSum(); // waits for the stream: the step's events have all been reached
        _lastStepParts.Clear();
        if (_stepOpen)
        {
            for (int i = 1; i < _partsRecorded; i++)
                _lastStepParts.Add(CudaEvent.ElapsedMilliseconds(_partEvents[i - 1], _partEvents[i]));
        }
        _stepOpen = false;
        if (!_choicesSaved)
        {
            // After the first step every GEMM shape of the run has its algorithm: keep them now, not only at the end.
            _blas.Choices?.Save();
            _choicesSaved = true;
        }
        return sum;
    }

    private bool _choicesSaved;

    public void Step(double lrMultiplier, double muonMomentum, double muonWeightDecay)
    {
        _optimizer.Step((float)lrMultiplier, (float)muonMomentum, (float)muonWeightDecay);
        RecordPart();
    }

    public int LastStepDeviceMilliseconds(Span<double> destination)
    {
        int count = Math.Min(_lastStepParts.Count, destination.Length);
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_lastStepParts)[..count].CopyTo(destination);
        return count;
    }

    public void QueueEvaluation()
    {
        if (_evaluationsQueued - _evaluationsTaken >= _evaluationLosses.Length)
            throw new InvalidOperationException($"{_evaluationLosses.Length} evaluations are already waiting to be taken");
        int slot = (int)(_evaluationsQueued++ % _evaluationLosses.Length);
        _model.Forward();
        _model.Loss(0f);
        _model.Activations.Losses.CopyToAsync(_evaluationLosses[slot], _stream);
        _evaluationDone[slot].Record(_stream);
    }

    public void TakeEvaluation(float[] losses)
    {
        ArgumentNullException.ThrowIfNull(losses);
        if (_evaluationsTaken == _evaluationsQueued)
            throw new InvalidOperationException("no evaluation is queued");
        int slot = (int)(_evaluationsTaken++ % _evaluationLosses.Length);
        _evaluationDone[slot].Synchronize();
        _evaluationLosses[slot].Span.CopyTo(losses);
    }

    public OptimizerState OptimizerState() => _optimizer.ExportState();

    public IReadOnlyDictionary<string, double[]> ParameterValues()
        => _model.Parameters.Entries.ToDictionary(e => e.Name, e => _model.Parameters.Download(_model.Parameters.Master, e.Name).Select(v => (double)v).ToArray(), StringComparer.Ordinal);

    public void Dispose()
    {
        // A run stopped mid-evaluation still has a copy into a pinned buffer queued: the stream drains before anything is
        // freed. After a sticky error the sync throws; everything is freed all the same, each part whatever the others do.
        try
        {
            _stream.Synchronize();
        }
        catch (CudaException)
        {
        }
        _blas.Choices?.Save(); // what this run chose, for the next
        DisposeAll([.. _evaluationLosses, .. _evaluationDone, .. _partEvents, _optimizer, _model, _kernels, _blas, _stream, _gpu]);
    }

    /// <summary>Disposes each in order; the first exception is rethrown once all have been tried.</summary>
    private static void DisposeAll(IEnumerable<IDisposable> parts)
    {
        Exception? first = null;
        foreach (var part in parts)
        {
            try
            {
                part.Dispose();
            }
#pragma warning disable CA1031 // rethrown below, after the rest are freed
            catch (Exception e)
#pragma warning restore CA1031
            {
                first ??= e;
            }
        }
        if (first is not null)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
    }
}

using AutoResearch.Model;
using AutoResearch.Model.Cpu;
using AutoResearch.Optim;
using AutoResearch.Optim.Reference;

namespace AutoResearch.Runner.Training;

/// <summary>
/// The fp64 CPU reference model (<see cref="CpuGpt"/>) and optimizer (<see cref="MuonAdamWReference"/>): slow, exact, and
/// needing no GPU, for tiny runs. The model's parameter arrays are the optimizer's own (<see cref="ReferenceParameter.Value"/>),
/// and the gradients the model accumulates into are the optimizer's <see cref="ReferenceParameter.Gradient"/>s, so a step
/// copies nothing. A step of the reference can take minutes (a long --seq-len), so the forward and backward run on a worker
/// that a cancellation abandons: Ctrl-C or SIGTERM stops the run at once, not at the end of the step.
/// </summary>
public sealed class CpuTrainer : ITrainer
{
    private readonly CpuGpt _model;
    private readonly MuonAdamWReference _optimizer;
    private readonly List<ReferenceParameter> _parameters = [];
    private readonly Dictionary<string, double[]> _gradients = new(StringComparer.Ordinal);
    private readonly CancellationToken _cancel;
    private readonly Queue<float[]> _evaluations = new();
    private int[]? _inputs; // the batch Upload gave (copies: the loop refills its arrays at once)
    private int[]? _targets;
    private double _lossSum;

    /// <summary>Builds the model with SPEC §5's initialisation from <paramref name="seed"/> (the GPU model's values for that seed) and the optimizer.</summary>
    /// <param name="cancel">Abandons a forward and backward in flight (it throws <see cref="OperationCanceledException"/>).</param>
    public CpuTrainer(ModelShape shape, int batch, OptimizerSettings settings, int seed, CancellationToken cancel = default)
    {
        _cancel = cancel;
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        CheckMemory(shape, batch, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
        _model = new CpuGpt(shape);
        _model.InitialiseLikeSpec(seed);
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            var p = new ReferenceParameter(name, rows, cols);
            _model.Parameters[name].CopyTo(p.Value, 0);
            _model.Parameters[name] = p.Value;
            _gradients[name] = p.Gradient;
            _parameters.Add(p);
        }
        _optimizer = new MuonAdamWReference(_parameters, settings);
        Batch = batch;
    }

    /// <summary>Refuses, before anything is allocated, a shape and batch whose host-memory estimate exceeds what is available.</summary>
    public static void CheckMemory(ModelShape shape, int batch, long availableBytes)
    {
        long need = CpuGpt.EstimateBytes(shape, batch);
        if (need > availableBytes)
        {
            throw new InvalidOperationException(
                $"the CPU reference of this model ({shape.Describe()}) at --device-batch {batch} needs about {need / 1e9:F1} GB of memory; "
                + $"{availableBytes / 1e9:F1} GB are available: lower --device-batch, --seq-len or the model's size (--depth, --set AspectRatio=...)");
        }
    }

    public ModelShape Shape => _model.Shape;

    public int Batch { get; }

    public long ParameterCount => _parameters.Sum(p => p.Value.LongLength);

    public double PeakMemoryMegabytes => 0;

    public string DeviceNote => "CPU fp64 reference (CpuGpt, MuonAdamWReference)";

    public void Synchronize()
    {
    }

    public void BeginStep()
    {
        foreach (var p in _parameters)
            Array.Clear(p.Gradient);
        _lossSum = 0;
    }

    public void Upload(int[] inputs, int[] targets)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(targets);
        _inputs = (int[])inputs.Clone();
        _targets = (int[])targets.Clone();
    }

    public void ForwardBackward(float gradScale)
    {
        var inputs = _inputs ?? throw new InvalidOperationException("ForwardBackward before any Upload");
        var targets = _targets!;
        var (_, losses) = Abandonable(() => _model.ForwardBackward(inputs, targets, Batch, _gradients, gradScale));
        _lossSum += losses.Sum();
    }

    public double ReadLossSum() => _lossSum;

    public void Step(double lrMultiplier, double muonMomentum, double muonWeightDecay) => _optimizer.Step(lrMultiplier, muonMomentum, muonWeightDecay);

    public void QueueEvaluation()
    {
        var inputs = _inputs ?? throw new InvalidOperationException("QueueEvaluation before any Upload");
        var (_, perToken) = Abandonable(() => _model.ForwardBackward(inputs, _targets!, Batch));
        _evaluations.Enqueue(Array.ConvertAll(perToken, v => (float)v));
    }

    public void TakeEvaluation(float[] losses)
    {
        ArgumentNullException.ThrowIfNull(losses);
        if (!_evaluations.TryDequeue(out var taken))
            throw new InvalidOperationException("no evaluation is queued");
        taken.CopyTo(losses, 0);
    }

    public IReadOnlyDictionary<string, double[]> ParameterValues() => _model.Parameters;

    public OptimizerState OptimizerState() => _optimizer.ExportState();

    /// <summary>
    /// Runs <paramref name="work"/> on a worker and waits for it or for the cancellation, whichever comes first. An abandoned
    /// worker runs on in the background (the model is not used again: the run is over) and does not keep the process alive.
    /// </summary>
    private T Abandonable<T>(Func<T> work)
    {
        if (!_cancel.CanBeCanceled)
            return work();
        return Task.Run(work, _cancel).WaitAsync(_cancel).GetAwaiter().GetResult();
    }

    public void Dispose()
    {
    }
}

using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Optim;
using AutoResearch.Optim.Gpu;
using AutoResearch.Optim.Reference;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// What the optimizer benchmarks share: the model's parameters of the configuration (random masters and gradients) under
/// <see cref="MuonAdamWGpu"/> (kernels/adamw.cu and kernels/muon.cu from the case's kernel folder, the Polar Express products
/// on cuBLASLt), and a check of one step of a group of tensors against <see cref="MuonAdamWReference"/> on a one-layer model of
/// the same width (the same tensor shapes, fewer of them): the parameter change of each tensor, and the bf16 copies equal to the
/// rounded masters.
/// </summary>
public abstract class OptimizerBenchmark : KernelBenchmark
{
    protected const float LrMultiplier = 1f, Momentum = 0.95f, WeightDecay = 0.1f;

    private GpuParameters? _parameters;
    private MuonAdamWGpu? _optimizer;

    protected GpuParameters Parameters => _parameters ?? throw new InvalidOperationException("the parameters are set up with the timing");

    protected MuonAdamWGpu Optimizer => _optimizer ?? throw new InvalidOperationException("the optimizer is set up with the timing");

    protected OptimizerSettings Settings => new((Shape ?? throw new InvalidOperationException("the optimizer settings follow the shape, which Prepare builds first")).ModelDim);

    protected override void Open()
    {
    }

    /// <summary>The full model's parameters (random masters and gradients) and the optimizer over them.</summary>
    protected void AllocateModel()
    {
        _parameters = new GpuParameters(Device, Shape);
        DeviceScratch.FillRandomF32(_parameters.Master, 1001, 0.1);
        DeviceScratch.FillRandomF32(_parameters.Gradients, 1002, 1);
        _optimizer = new MuonAdamWGpu(Device, Stream, Blas, KernelFiles, _parameters, Settings);
    }

    /// <summary>
    /// One step of the tensors <paramref name="selected"/> picks, on a one-layer model of this width, by the GPU optimizer
    /// (<paramref name="step"/>) and by the fp64 reference (rounding where the GPU does), from the same random values.
    /// </summary>
    protected KernelCheck CheckStep(string kernel, int seed, Func<GpuParameters.Entry, bool> selected, Action<MuonAdamWGpu> step, double bound)
    {
        ArgumentNullException.ThrowIfNull(selected);
        ArgumentNullException.ThrowIfNull(step);
        var shape = (BenchConfigs.Hyperparameters(Config) with { Depth = 1, AspectRatio = Shape.ModelDim }).Shape(BenchConfigs.VocabSize, SeqLen);
        using var parameters = new GpuParameters(Device, shape);
        var entries = parameters.Entries.Where(selected).ToList();
        var check = new KernelCheck(kernel, seed, $"{string.Join(", ", entries.Select(e => $"{e.Name} {e.Rows}×{e.Cols}"))}; lr ×{LrMultiplier}, momentum {Momentum}, wd {WeightDecay}");
        var r = new Random(seed);
        var reference = new List<ReferenceParameter>();
        var before = new List<float[]>();
        parameters.Master.FillBytes(0);
        foreach (var e in entries)
        {
            var value = HostRandom.Floats(r, e.Count, 0.1);
            var gradient = HostRandom.Floats(r, e.Count, 1);
            parameters.Upload(e.Name, value);
            parameters.UploadTo(parameters.Gradients, e.Name, gradient);
            var p = new ReferenceParameter(e.Name, e.Rows, e.Cols);
            for (long i = 0; i < e.Count; i++)
            {
                p.Value[i] = value[i];
                p.Gradient[i] = gradient[i];
            }
            reference.Add(p);
            before.Add(value);
        }
        var settings = new OptimizerSettings(shape.ModelDim);
        using var optimizer = new MuonAdamWGpu(Device, Stream, Blas, KernelFiles, parameters, settings);
        RunForCheck(() => step(optimizer));
        new MuonAdamWReference(reference, settings) { RoundLikeGpu = true }.Step(LrMultiplier, Momentum, WeightDecay);
        long total = entries.Sum(e => e.Count), at = 0;
        var actual = new float[total];
        var expected = new double[total];
        var copies = new float[total];
        var rounded = new double[total];
        var allCopies = parameters.Bf16Copies.ToArray();
        for (int k = 0; k < entries.Count; k++)
        {
            var after = parameters.Download(parameters.Master, entries[k].Name);
            for (long i = 0; i < after.Length; i++, at++)
            {
                actual[at] = after[i] - before[k][i];
                expected[at] = reference[k].Value[i] - before[k][i];
                copies[at] = Bf16.ToFloat(allCopies[entries[k].Offset + i]);
                rounded[at] = Bf16.Round(after[i]);
            }
        }
        check.Compare("parameter update", actual, expected, bound);
        check.Compare("bf16 copies", copies, rounded, 0);
        return check;
    }

    protected override void OnCleanup()
    {
        _optimizer?.Dispose();
        _optimizer = null;
        _parameters?.Dispose();
        _parameters = null;
    }
}

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

    private GpuTrainer(CudaDevice gpu, CudaStream stream, Blas blas, KernelCache kernels, GpuGpt model, MuonAdamWGpu optimizer)
    {
        _gpu = gpu;
        _stream = stream;
        _blas = blas;
        _kernels = kernels;
        _model = model;
        _optimizer = optimizer;
    }

    /// <summary>
    /// Opens device 0, builds the model with SPEC §5's initialisation from <paramref name="seed"/> and the optimizer. Throws when
    /// there is no CUDA device (or no driver library), pointing at --device cpu.
    /// </summary>
    public static GpuTrainer Create(ModelShape shape, int batch, OptimizerSettings settings, int seed, string kernelCacheDirectory)
    {
        ArgumentNullException.ThrowIfNull(shape);
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

        var owned = new List<IDisposable>();
        try
        {
            var gpu = Own(owned, CudaDevice.Open(0));
            var stream = Own(owned, new CudaStream(gpu));
            var blas = Own(owned, new Blas(gpu, stream) { TuneCandidates = GemmCandidates });
            var kernels = Own(owned, new KernelCache(gpu, KernelCache.DefaultKernelDirectory, kernelCacheDirectory));
            var model = Own(owned, new GpuGpt(gpu, stream, blas, kernels, shape, batch));
            model.Parameters.InitialiseLikeSpec(seed);
            model.Parameters.RefreshBf16(model.Elementwise, stream);
            var optimizer = Own(owned, new MuonAdamWGpu(gpu, stream, blas, kernels, model.Parameters, settings));
            return new GpuTrainer(gpu, stream, blas, kernels, model, optimizer);
        }
        catch
        {
            for (int i = owned.Count - 1; i >= 0; i--)
                owned[i].Dispose();
            throw;
        }
    }

    /// <summary>
    /// cuBLASLt algorithms timed for each GEMM shape on its first use (in the first, uncounted step), the fastest kept;
    /// see <see cref="Blas.TuneCandidates"/>.
    /// </summary>
    public const int GemmCandidates = 8;

    /// <summary>The error of `train` on a machine without a CUDA device.</summary>
    public const string NoDeviceMessage = "no CUDA device found; use --device cpu for a tiny CPU run (or run `autoresearch doctor` to see what is missing)";

    private static T Own<T>(List<IDisposable> owned, T item) where T : IDisposable
    {
        owned.Add(item);
        return item;
    }

    public ModelShape Shape => _model.Shape;

    public int Batch => _model.Activations.Batch;

    public long ParameterCount => _model.Parameters.Count;

    public double PeakMemoryMegabytes => _gpu.Memory.PeakMegabytes;

    public string DeviceNote => $"kernels compiled {_kernels.Compiled}, cached {_kernels.DiskHits}";

    public void Synchronize() => _stream.Synchronize();

    public void BeginStep()
    {
        _model.Parameters.ZeroGradients(_stream);
        _model.ResetLossSum();
    }

    public void ForwardBackward(int[] inputs, int[] targets, float gradScale)
    {
        _model.Upload(inputs, targets);
        _model.ForwardBackward(gradScale);
    }

    public double ReadLossSum() => _model.ReadLossSum();

    public void Step(double lrMultiplier, double muonMomentum, double muonWeightDecay)
    {
        _optimizer.Step((float)lrMultiplier, (float)muonMomentum, (float)muonWeightDecay);
        _stream.Synchronize();
    }

    public void Evaluate(int[] inputs, int[] targets, float[] losses)
    {
        _model.Upload(inputs, targets);
        _model.Forward();
        _model.Loss(0f);
        _stream.Synchronize();
        _model.Activations.Losses.CopyTo(losses);
    }

    public IReadOnlyDictionary<string, double[]> ParameterValues()
        => _model.Parameters.Entries.ToDictionary(e => e.Name, e => _model.Parameters.Download(_model.Parameters.Master, e.Name).Select(v => (double)v).ToArray(), StringComparer.Ordinal);

    public void Dispose()
    {
        _optimizer.Dispose();
        _model.Dispose();
        _kernels.Dispose();
        _blas.Dispose();
        _stream.Dispose();
        _gpu.Dispose();
    }
}

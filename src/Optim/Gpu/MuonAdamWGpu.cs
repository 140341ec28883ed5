using System.Runtime.InteropServices;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;

namespace AutoResearch.Optim.Gpu;

/// <summary>
/// MuonAdamW on the GPU (SPEC §6) over <see cref="GpuParameters"/>: one fused AdamW launch for every Adam tensor (lm_head,
/// wte, value embeddings, the two lambda vectors), and Muon for the block matrices, processed per shape as one batch:
/// Nesterov momentum, Frobenius normalisation, five Polar Express iterations as strided-batched bf16 cuBLASLt GEMMs (XᵀX
/// for tall matrices, XXᵀ otherwise), NorMuon variance reduction, cautious weight decay. The fp32 masters and their bf16
/// copies are updated in the same pass. Gradients are read, never cleared (the trainer zeroes them). The settings' precision
/// (<see cref="OptimizerPrecision"/>) picks where it rounds; in reference precision the constructor rounds the bf16 parameters'
/// masters (wte, the value embeddings) to bf16.
/// </summary>
public sealed class MuonAdamWGpu : IDisposable
{
    private readonly CudaDevice _device;
    private readonly CudaStream _stream;
    private readonly Blas _blas;
    private readonly GpuParameters _parameters;
    private readonly OptimizerSettings _settings;
    private readonly CudaKernel _adam;
    private readonly CudaKernel _momentum;
    private readonly CudaKernel _normalize;
    private readonly CudaKernel _rowStats;
    private readonly CudaKernel _colStats;
    private readonly CudaKernel _scales;
    private readonly CudaKernel _update;
    private readonly List<AdamTensor> _adamTensors = [];
    private readonly List<MuonGroup> _muonGroups = [];
    private readonly DeviceBuffer<float> _adamM;
    private readonly DeviceBuffer<float> _adamV;
    private readonly DeviceBuffer<AdamSegment> _segments;
    private readonly AdamSegment[] _hostSegments;
    private int _step;
    private readonly int _multiprocessors;

    /// <summary>The kernel files the optimizer loads: AdamW's, then Muon's (<see cref="KernelCache.CompileAhead"/>).</summary>
    public static IReadOnlyList<KernelSource> KernelSources { get; } = [new("adamw.cu"), new("muon.cu")];

    public MuonAdamWGpu(CudaDevice device, CudaStream stream, Blas blas, KernelCache kernels, GpuParameters parameters, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(settings);
        _device = device;
        _stream = stream;
        _blas = blas;
        _parameters = parameters;
        _settings = settings;
        _multiprocessors = device.Properties.MultiprocessorCount;
        var adam = kernels.Load(KernelSources[0]);
        _adam = adam.GetKernel("adamw_step");
        var muon = kernels.Load(KernelSources[1]);
        _momentum = muon.GetKernel("muon_momentum");
        _normalize = muon.GetKernel("muon_normalize");
        _rowStats = muon.GetKernel("normuon_row_stats");
        _colStats = muon.GetKernel("normuon_col_stats");
        _scales = muon.GetKernel("normuon_scales");
        _update = muon.GetKernel("muon_update");

        var muonByShape = new Dictionary<(int, int), List<GpuParameters.Entry>>();
        long adamElements = 0;
        foreach (var entry in parameters.Entries)
        {
            var group = settings.GroupOf(entry.Name);
            if (group == ParameterGroup.Muon)
            {
                if (!muonByShape.TryGetValue((entry.Rows, entry.Cols), out var list))
                    muonByShape[(entry.Rows, entry.Cols)] = list = [];
                list.Add(entry);
            }
            else
            {
                _adamTensors.Add(new AdamTensor(entry, group, adamElements));
                adamElements += (entry.Count + 63) / 64 * 64;
                if (settings.Precision.HasBf16Parameters(group)) // reference precision: a bf16 parameter from the start
                {
                    var values = parameters.Download(parameters.Master, entry.Name);
                    Bf16.RoundInPlace(values);
                    parameters.Upload(entry.Name, values);
                }
            }
        }
        _adamM = device.Allocate<float>(adamElements, "AdamW first moments");
        _adamV = device.Allocate<float>(adamElements, "AdamW second moments");
        _adamM.Fill(0f);
        _adamV.Fill(0f);
        _hostSegments = new AdamSegment[_adamTensors.Count];
        _segments = device.Allocate<AdamSegment>(_adamTensors.Count, "AdamW segments");
        foreach (var ((rows, cols), entries) in muonByShape)
            _muonGroups.Add(new MuonGroup(device, rows, cols, entries));
    }

    /// <summary>
    /// Device bytes of the optimizer's state and work space for a model of this shape: the moments of the Adam tensors (8 bytes an
    /// element) and each Muon shape group's buffers (<see cref="MuonGroup.Bytes"/>).
    /// </summary>
    public static long EstimateBytes(Model.ModelShape shape, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(settings);
        long adam = 0;
        var groups = new Dictionary<(int Rows, int Cols), int>();
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            if (settings.GroupOf(name) == ParameterGroup.Muon)
                groups[(rows, cols)] = groups.GetValueOrDefault((rows, cols)) + 1;
            else
                adam += ((long)rows * cols + 63) / 64 * 64;
        }
        return 2 * sizeof(float) * adam + groups.Sum(g => MuonGroup.Bytes(g.Key.Rows, g.Key.Cols, g.Value));
    }

    /// <summary>Steps taken so far (the AdamW bias corrections use it).</summary>
    public int StepCount => _step;

    /// <summary>The Muon shape groups: (rows, cols, matrices), for reports and tests.</summary>
    public IEnumerable<(int Rows, int Cols, int Count)> MuonGroups => _muonGroups.Select(g => (g.Rows, g.Cols, g.Count));

    /// <summary>The state carried between steps (<see cref="OptimizerState"/>), read from the device after the stream's work.</summary>
    public OptimizerState ExportState()
    {
        _stream.Synchronize();
        var m = _adamM.ToArray();
        var v = _adamV.ToArray();
        var adamFirst = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var adamSecond = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in _adamTensors)
        {
            adamFirst[t.Entry.Name] = m.AsSpan((int)t.StateOffset, (int)t.Entry.Count).ToArray();
            adamSecond[t.Entry.Name] = v.AsSpan((int)t.StateOffset, (int)t.Entry.Count).ToArray();
        }
        var momentum = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var secondMoment = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var g in _muonGroups)
        {
            var buffer = g.Momentum.ToArray();
            var second = g.SecondMoment.ToArray();
            int size = g.Rows * g.Cols, length = OptimizerState.SecondMomentLength(g.Rows, g.Cols);
            for (int i = 0; i < g.Count; i++)
            {
                momentum[g.Names[i]] = buffer.AsSpan(i * size, size).ToArray();
                secondMoment[g.Names[i]] = second.AsSpan(i * length, length).ToArray();
            }
        }
        return new OptimizerState(_step, adamFirst, adamSecond, momentum, secondMoment) { Precision = _settings.Precision };
    }

    /// <summary>
    /// Continues from <paramref name="state"/>: the step count and every buffer replaced by the state's, after the stream's
    /// queued work. A state without one of this optimizer's buffers, or with one of another length, throws before anything changes.
    /// </summary>
    public void ImportState(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        float[] Take(IReadOnlyDictionary<string, float[]> from, string name, long length, string what)
            => from.TryGetValue(name, out var values) && values.Length == length ? values
                : throw new ArgumentException($"the optimizer state has no {what} of {length} values for '{name}'");
        var m = new float[_adamM.Length];
        var v = new float[_adamV.Length];
        foreach (var t in _adamTensors)
        {
            Take(state.AdamFirst, t.Entry.Name, t.Entry.Count, "AdamW first moment").CopyTo(m, t.StateOffset);
            Take(state.AdamSecond, t.Entry.Name, t.Entry.Count, "AdamW second moment").CopyTo(v, t.StateOffset);
        }
        var groups = new List<(MuonGroup Group, float[] Momentum, float[] Second)>();
        foreach (var g in _muonGroups)
        {
            int size = g.Rows * g.Cols, length = OptimizerState.SecondMomentLength(g.Rows, g.Cols);
            var buffer = new float[(long)g.Count * size];
            var second = new float[(long)g.Count * length];
            for (int i = 0; i < g.Count; i++)
            {
                Take(state.Momentum, g.Names[i], size, "Muon momentum").CopyTo(buffer, (long)i * size);
                Take(state.SecondMoment, g.Names[i], length, "NorMuon second moment").CopyTo(second, (long)i * length);
            }
            groups.Add((g, buffer, second));
        }
        _stream.Synchronize();
        _adamM.CopyFrom(m);
        _adamV.CopyFrom(v);
        foreach (var (g, buffer, second) in groups)
        {
            g.Momentum.CopyFrom(buffer);
            g.SecondMoment.CopyFrom(second);
        }
        _step = state.Step;
    }

    /// <summary>One optimizer step with this step's schedule values (SPEC §7).</summary>
    public void Step(float lrMultiplier, float muonMomentum, float muonWeightDecay)
    {
        _step++;
        StepAdam(lrMultiplier);
        foreach (var group in _muonGroups)
            StepMuon(group, lrMultiplier, muonMomentum, muonWeightDecay);
    }

    /// <summary>The AdamW launch of <see cref="Step"/> alone (the step count advances; the Muon groups are untouched): what a
    /// benchmark times as one call.</summary>
    public void StepAdamW(float lrMultiplier)
    {
        _step++;
        StepAdam(lrMultiplier);
    }

    /// <summary>The Muon update of the one shape group of rows × cols matrices, as <see cref="Step"/> runs it (the step count
    /// does not advance): what a benchmark times as one call.</summary>
    public void StepMuonGroup(int rows, int cols, float lrMultiplier, float muonMomentum, float muonWeightDecay)
    {
        var group = _muonGroups.Find(g => g.Rows == rows && g.Cols == cols)
            ?? throw new ArgumentException($"no Muon group of {rows}×{cols} matrices; the groups are {string.Join(", ", _muonGroups.Select(g => $"{g.Rows}×{g.Cols}"))}");
        StepMuon(group, lrMultiplier, muonMomentum, muonWeightDecay);
    }

    private void StepAdam(float lrMultiplier)
    {
        for (int i = 0; i < _adamTensors.Count; i++)
        {
            var t = _adamTensors[i];
            var h = _settings.Adam(t.Group);
            _hostSegments[i] = new AdamSegment
            {
                Offset = t.Entry.Offset,
                Count = t.Entry.Count,
                StateOffset = t.StateOffset,
                Lr = (float)(h.LearningRate * lrMultiplier),
                Beta1 = (float)h.Beta1,
                Beta2 = (float)h.Beta2,
                Eps = (float)h.Eps,
                WeightDecay = (float)h.WeightDecay,
                BiasCorrection1 = (float)(1 - Math.Pow(h.Beta1, _step)),
                BiasCorrection2 = (float)(1 - Math.Pow(h.Beta2, _step)),
                Bf16Parameter = _settings.Precision.HasBf16Parameters(t.Group) ? 1 : 0,
            };
        }
        // In stream order: the previous step's launch may still read the table.
        _segments.CopyFromAsync(_hostSegments, _stream);
        long longest = _adamTensors.Max(t => t.Entry.Count);
        var grid = new Dim3((uint)Math.Clamp((longest + 255) / 256, 1, 2L * _multiprocessors), (uint)_adamTensors.Count);
        _adam.Launch(grid, 256, 0, _stream, _segments.Pointer, _parameters.Master.Pointer, _parameters.Gradients.Pointer,
            _adamM.Pointer, _adamV.Pointer, _parameters.Bf16Copies.Pointer);
    }

    private void StepMuon(MuonGroup g, float lrMultiplier, float momentum, float weightDecay)
    {
        long size = (long)g.Rows * g.Cols;
        int reference = _settings.Precision == OptimizerPrecision.Reference ? 1 : 0;
        uint blocks = (uint)Math.Clamp((size + 255) / 256, 1, 256);
        var grid = new Dim3(blocks, (uint)g.Count);
        g.SumSquares.FillBytes(0, _stream);
        _momentum.Launch(grid, 256, 0, _stream, g.Offsets.Pointer, _parameters.Gradients.Pointer, g.Momentum.Pointer, g.Work.Pointer,
            g.SumSquares.Pointer, momentum, size, reference);
        _normalize.Launch(grid, 256, 0, _stream, g.Work.Pointer, g.SumSquares.Pointer, g.X.Pointer, size, reference);

        ulong x = g.X.Pointer, next = g.XNext.Pointer;
        foreach (var (a, b, c) in PolarExpress.Coefficients)
        {
            PolarIteration(g, x, next, (float)a, (float)b, (float)c);
            (x, next) = (next, x);
        }

        bool perRow = g.Rows >= g.Cols;
        int length = perRow ? g.Rows : g.Cols, n = perRow ? g.Cols : g.Rows;
        if (perRow)
            _rowStats.Launch(Dim3.Blocks((long)g.Count * g.Rows, 8), 256, 0, _stream, x, g.VMean.Pointer, g.Count, g.Rows, g.Cols);
        else
            _colStats.Launch(Dim3.Blocks((long)g.Count * g.Cols, 256), 256, 0, _stream, x, g.VMean.Pointer, g.Count, g.Rows, g.Cols);
        _scales.Launch((uint)g.Count, 256, 0, _stream, g.VMean.Pointer, g.SecondMoment.Pointer, g.Scale.Pointer, length, n, (float)_settings.MuonBeta2);
        float lrEff = (float)(_settings.MuonLearningRate * lrMultiplier * Math.Sqrt(Math.Max(1.0, (double)g.Rows / g.Cols)));
        // Reference precision: lr and wd rounded to bf16 (and their product), as the reference casts them to the update's dtype.
        float lr = reference == 1 ? Bf16.Round(lrEff) : lrEff;
        float lrDecay = reference == 1 ? Bf16.Round(Bf16.Round(lrEff) * Bf16.Round(weightDecay)) : lrEff * weightDecay;
        _update.Launch(grid, 256, 0, _stream, g.Offsets.Pointer, x, g.Scale.Pointer, perRow ? 1 : 0, g.Rows, g.Cols, lr, lrDecay,
            _parameters.Master.Pointer, _parameters.Bf16Copies.Pointer, reference);
    }

    /// <summary>A = gram(X); B = b·A + c·A²; X' = a·X + X·B (tall) or a·X + B·X (wide), batched over the group, in bf16.</summary>
    private void PolarIteration(MuonGroup g, ulong x, ulong next, float a, float b, float c)
    {
        int r = g.Rows, k = g.Cols, batch = g.Count;
        long xs = (long)r * k;
        var bf = ElementType.Bf16;
        if (r > k)
        {
            long gs = (long)k * k;
            _blas.GemmLt(true, false, k, k, r, 1f, x, bf, k, x, bf, k, 0f, g.A.Pointer, bf, k, batch, xs, xs, gs);
            _blas.GemmLt(false, false, k, k, k, c, g.A.Pointer, bf, k, g.A.Pointer, bf, k, b, g.A.Pointer, bf, k, batch, gs, gs, gs, d: g.B.Pointer);
            _blas.GemmLt(false, false, r, k, k, 1f, x, bf, k, g.B.Pointer, bf, k, a, x, bf, k, batch, xs, gs, xs, d: next);
        }
        else
        {
            long gs = (long)r * r;
            _blas.GemmLt(false, true, r, r, k, 1f, x, bf, k, x, bf, k, 0f, g.A.Pointer, bf, r, batch, xs, xs, gs);
            _blas.GemmLt(false, false, r, r, r, c, g.A.Pointer, bf, r, g.A.Pointer, bf, r, b, g.A.Pointer, bf, r, batch, gs, gs, gs, d: g.B.Pointer);
            _blas.GemmLt(false, false, r, k, r, 1f, g.B.Pointer, bf, r, x, bf, k, a, x, bf, k, batch, gs, xs, xs, d: next);
        }
    }

    public void Dispose()
    {
        _adamM.Dispose();
        _adamV.Dispose();
        _segments.Dispose();
        foreach (var g in _muonGroups)
            g.Dispose();
    }

    /// <summary>An Adam tensor, its group, and where its moments start in the Adam state (which holds only Adam tensors).</summary>
    private sealed record AdamTensor(GpuParameters.Entry Entry, ParameterGroup Group, long StateOffset);

    /// <summary>Matches the AdamSegment struct of kernels/adamw.cu (56 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct AdamSegment
    {
        public long Offset;
        public long Count;
        public long StateOffset;
        public float Lr;
        public float Beta1;
        public float Beta2;
        public float Eps;
        public float WeightDecay;
        public float BiasCorrection1;
        public float BiasCorrection2;
        public int Bf16Parameter;
    }

    /// <summary>Device state and work space of one shape group: momentum, NorMuon second moments, the iteration buffers.</summary>
    private sealed class MuonGroup : IDisposable
    {
        /// <summary>What the constructor below allocates for <paramref name="count"/> matrices of rows × cols.</summary>
        public static long Bytes(int rows, int cols, int count)
        {
            long size = (long)rows * cols, gram = (long)Math.Min(rows, cols) * Math.Min(rows, cols), length = Math.Max(rows, cols);
            return count * (sizeof(long) + size * (4 + 4 + 2 + 2) + gram * (2 + 2) + sizeof(float) + length * 3 * sizeof(float));
        }

        public MuonGroup(CudaDevice device, int rows, int cols, List<GpuParameters.Entry> entries)
        {
            Rows = rows;
            Cols = cols;
            Count = entries.Count;
            Names = entries.Select(e => e.Name).ToArray();
            long size = (long)rows * cols, gram = (long)Math.Min(rows, cols) * Math.Min(rows, cols);
            int length = rows >= cols ? rows : cols;
            string name = $"Muon {rows}x{cols}";
            Offsets = device.Allocate<long>(Count, $"{name} offsets");
            Offsets.CopyFrom(entries.Select(e => e.Offset).ToArray());
            Momentum = device.Allocate<float>(Count * size, $"{name} momentum");
            Momentum.Fill(0f);
            Work = device.Allocate<float>(Count * size, $"{name} work");
            X = device.Allocate<ushort>(Count * size, $"{name} X");
            XNext = device.Allocate<ushort>(Count * size, $"{name} X'");
            A = device.Allocate<ushort>(Count * gram, $"{name} gram");
            B = device.Allocate<ushort>(Count * gram, $"{name} polynomial");
            SumSquares = device.Allocate<float>(Count, $"{name} norms");
            VMean = device.Allocate<float>((long)Count * length, $"{name} v_mean");
            SecondMoment = device.Allocate<float>((long)Count * length, $"{name} NorMuon s2");
            SecondMoment.Fill(0f);
            Scale = device.Allocate<float>((long)Count * length, $"{name} scales");
        }

        public int Rows { get; }
        public int Cols { get; }
        public int Count { get; }
        public string[] Names { get; }
        public DeviceBuffer<long> Offsets { get; }
        public DeviceBuffer<float> Momentum { get; }
        public DeviceBuffer<float> Work { get; }
        public DeviceBuffer<ushort> X { get; }
        public DeviceBuffer<ushort> XNext { get; }
        public DeviceBuffer<ushort> A { get; }
        public DeviceBuffer<ushort> B { get; }
        public DeviceBuffer<float> SumSquares { get; }
        public DeviceBuffer<float> VMean { get; }
        public DeviceBuffer<float> SecondMoment { get; }
        public DeviceBuffer<float> Scale { get; }

        public void Dispose()
        {
            foreach (var b in new IDisposable[] { Offsets, Momentum, Work, X, XNext, A, B, SumSquares, VMean, SecondMoment, Scale })
                b.Dispose();
        }
    }
}

using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// The GPT of SPEC §5 on the GPU, without autograd: <see cref="Forward"/> keeps what the backward needs in
/// <see cref="GpuActivations"/>, <see cref="Loss"/> runs the chunked head (final norm already applied, lm_head, soft cap,
/// cross-entropy, and when training the head's backward chunk by chunk, so the logits of a whole batch never exist), and
/// <see cref="Backward"/> walks the layers in reverse. Gradients accumulate (+=) into <see cref="GpuParameters.Gradients"/>.
/// Everything runs on one stream, in order. Shapes: N = B·T tokens, C model width, F the MLP's hidden width, H query and KV
/// key/value heads of D, V vocabulary; the kernels are compiled for the shape's head size and kv-head count.
/// </summary>
public sealed class GpuGpt : IDisposable
{
    private readonly CudaStream _stream;
    private readonly Linear _linear;
    private readonly Embedding _embedding;
    private readonly RmsNorm _norm;
    private readonly Rotary _rotary;
    private readonly ValueGate _gate;
    private readonly IAttentionKernels _attention;
    private readonly MlpActivation _activation;
    private readonly MlpGemm? _mlpGemm;
    private readonly MlpGemm? _qkGemm; // the same kernels' q and k projections with rotary + QK-norm in the epilogue (and v's, if it takes it)
    private readonly CrossEntropy _crossEntropy;
    private readonly Elementwise _elementwise;
    private readonly DeviceBuffer<uint> _cosSinPairs; // the rotary table as bf16 (cos, sin) pairs (RotaryTable.Bf16Pairs)
    private readonly StreamProfiler _profiler;

    // Upload staging: two pinned (inputs, targets) pairs used in turn, each with an event recorded after its copies, so the host
    // can fill one while the stream still copies from the other and the copies never wait for the host.
    private readonly PinnedHostBuffer<int>[] _stagedInputs;
    private readonly PinnedHostBuffer<int>[] _stagedTargets;
    private readonly CudaEvent[] _stagedCopied;
    private readonly bool[] _stagedInFlight = new bool[2];
    private int _nextStage;

    /// <summary>Rows of logits the head computes at a time: 8192 × vocab 8192 bf16 is 128 MB for the logits and as much for their gradient.</summary>
    public const int DefaultHeadChunkRows = 8192;

    public GpuGpt(CudaDevice device, CudaStream stream, Blas blas, KernelCache kernels, ModelShape shape, int batch,
        IAttentionKernels? attention = null, int headChunkRows = DefaultHeadChunkRows, bool fusedMlp = true, bool recomputeMlp = false,
        bool placeScratch = true, bool fusedQk = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.ModelDim != shape.Heads * shape.HeadDim)
            throw new ArgumentException($"model width {shape.ModelDim} must be heads ({shape.Heads}) × {shape.HeadDim}", nameof(shape));
        _stream = stream;
        Shape = shape;
        _linear = new Linear(blas);
        _embedding = new Embedding(kernels);
        _norm = new RmsNorm(kernels);
        _rotary = new Rotary(kernels, shape.HeadDim);
        _gate = new ValueGate(kernels, shape.HeadDim, shape.KvHeads);
        if (attention is null)
            RequireFlashDevice(device.Properties);
        _attention = attention ?? new FlashAttention(kernels, shape.HeadDim);
        if (_attention.HeadDim != shape.HeadDim)
            throw new ArgumentException($"the attention kernels were built for head size {_attention.HeadDim}; the model's is {shape.HeadDim}", nameof(attention));
        _activation = new MlpActivation(kernels);
        var paths = KernelPaths.For(device.Properties.ComputeMajor, shape, batch, fusedMlp, fusedQk, recomputeMlp, flashAttention: _attention is FlashAttention);
        bool fusedV = false; // v's product in the q and k kernel's launch (both fused, and the kernel built to take it)
        if (GemmKernels(paths, shape) is { Count: > 0 } gemmKernels)
        {
            var gemm = new MlpGemm(kernels, device.Properties, gemmKernels);
            _mlpGemm = paths.FusedMlp ? gemm : null;
            _qkGemm = paths.FusedQ || paths.FusedK ? gemm : null;
            fusedV = paths.FusedQ && paths.FusedK && gemm.RotaryTakesV(shape.HeadDim);
        }
        Paths = paths with { VInQkLaunch = fusedV };
        _crossEntropy = new CrossEntropy(kernels);
        _elementwise = new Elementwise(kernels);
        Parameters = new GpuParameters(device, shape);
        Activations = new GpuActivations(device, shape, batch, headChunkRows,
            _attention.BackwardScratchBytes(batch, shape.SeqLen, shape.Heads, shape.KvHeads), fusedMlp: _mlpGemm is not null, recomputeMlp, placeScratch);
        _cosSinPairs = device.Allocate<uint>((long)shape.SeqLen * shape.HeadDim / 2, "rotary cos/sin bf16 pairs");
        _cosSinPairs.CopyFrom(RotaryTable.Bf16Pairs(RotaryTable.CosSin(shape.SeqLen, shape.HeadDim, shape.RotaryBase), shape.SeqLen, shape.HeadDim));
        _profiler = new StreamProfiler(device, stream);
        long qSize = (long)shape.ModelDim * shape.ModelDim, kvSize = (long)shape.KvDim * shape.ModelDim;
        for (int i = 0; i < shape.Depth; i++)
        {
            long qOffset = Parameters[Layer(i, "attn.c_q")].Offset;
            if (Parameters[Layer(i, "attn.c_k")].Offset != qOffset + qSize || Parameters[Layer(i, "attn.c_v")].Offset != qOffset + qSize + kvSize)
                throw new InvalidOperationException($"layer {i}: c_q, c_k and c_v must follow each other in the parameter layout (one [C + 2·KV·D, C] weight)");
        }
        _stagedInputs = [new(device, Activations.Inputs.Length), new(device, Activations.Inputs.Length)];
        _stagedTargets = [new(device, Activations.Targets.Length), new(device, Activations.Targets.Length)];
        _stagedCopied = [new(device), new(device)];
    }

    /// <summary>
    /// Every kernel file the constructor loads for this shape and batch (with the flash attention, as the constructor builds
    /// it unless given other attention kernels): what <see cref="KernelCache.CompileAhead"/> is handed, so that a cold kernel
    /// cache compiles them all at once rather than one constructor at a time.
    /// </summary>
    public static IReadOnlyList<KernelSource> KernelSources(DeviceProperties properties, ModelShape shape, int batch, bool fusedMlp = true,
        bool fusedQk = true)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var sources = new List<KernelSource>
        {
            Embedding.Source(), Rotary.Source(shape.HeadDim), ValueGate.Source(shape.HeadDim, shape.KvHeads),
        };
        sources.AddRange(RmsNorm.Sources());
        sources.AddRange(FlashAttention.Sources(shape.HeadDim));
        sources.Add(MlpActivation.Source());
        sources.AddRange(GemmKernels(KernelPaths.For(properties.ComputeMajor, shape, batch, fusedMlp, fusedQk), shape).Select(MlpGemm.Source));
        sources.Add(CrossEntropy.Source());
        sources.Add(Elementwise.Source());
        return sources;
    }

    // The GEMM kernels the paths load (MlpGemm.Kernels): the MLP's pair where it is ours, the rotary one where q or k is.
    private static IReadOnlyList<string> GemmKernels(KernelPaths paths, ModelShape shape)
        => MlpGemm.Kernels(paths.FusedMlp ? shape.Activation : null, paths.FusedQ || paths.FusedK ? shape.HeadDim : null);

    /// <summary>Which kernel each op runs for this model (decided at construction; <see cref="KernelPaths.Rows"/> describes them).</summary>
    public KernelPaths Paths { get; }

    /// <summary>
    /// Refuses, before any kernel compiles, a GPU the flash attention kernels cannot run on: they use Hopper's wgmma and TMA
    /// (compute 9.x: H100, H200), and NVRTC would otherwise fail on them with a page of PTX errors.
    /// </summary>
    public static void RequireFlashDevice(DeviceProperties properties)
    {
        ArgumentNullException.ThrowIfNull(properties);
        if (properties.ComputeMajor != 9)
        {
            throw new NotSupportedException($"the model's attention kernels need an NVIDIA Hopper GPU (compute 9.x, such as an H100 or H200: they use "
                + $"wgmma and TMA); this one is {properties}. `autoresearch train --device cpu` runs the CPU reference without one.");
        }
    }

    /// <summary>Per-op timing with device events (off by default): enable, run, then <see cref="StreamProfiler.Collect"/>.</summary>
    public StreamProfiler Profiler => _profiler;

    public ModelShape Shape { get; }

    public GpuParameters Parameters { get; }

    public GpuActivations Activations { get; }

    public Elementwise Elementwise => _elementwise;

    /// <summary>Whether the MLP runs its GEMMs with the activation in the epilogue (<see cref="MlpGemm"/>) rather than cuBLAS plus an activation pass.</summary>
    public bool FusedMlp => _mlpGemm is not null;

    /// <summary>Whether q (<see cref="FusedQ"/>) and k (<see cref="FusedK"/>) come from our GEMM with the rotary embedding and QK-norm in
    /// its epilogue (<see cref="MlpGemm.QkRotaryNorm"/>; both in one launch, <see cref="MlpGemm.QkvRotaryNorm"/>, when both do) rather
    /// than cuBLAS and a rotary pass.</summary>
    public bool FusedQ => Paths.FusedQ;

    /// <inheritdoc cref="FusedQ"/>
    public bool FusedK => Paths.FusedK;

    /// <summary>Whether v's projection runs in the same launch as q's and k's (<see cref="MlpGemm.QkvRotaryNorm"/>: both fused, and the
    /// kernel built to take v) rather than on cuBLAS.</summary>
    public bool FusedV => Paths.VInQkLaunch;

    /// <summary>Whether a projection of <paramref name="outFeatures"/> (q: the model width; k: kv heads × head size) takes the rotary
    /// GEMM: on Hopper, the tile shapes (whole heads in a 256-column tile).</summary>
    public static bool UsesFusedRotary(DeviceProperties properties, ModelShape shape, int batch, int outFeatures)
    {
        ArgumentNullException.ThrowIfNull(properties);
        return KernelPaths.RotaryFallback(properties.ComputeMajor, shape, (long)batch * shape.SeqLen, outFeatures) is null;
    }

    /// <summary>Whether this shape's MLP takes our GEMMs with the activation in the epilogue: relu² or GELU, on Hopper, the tile shapes.</summary>
    public static bool UsesFusedMlp(DeviceProperties properties, ModelShape shape, int batch)
    {
        ArgumentNullException.ThrowIfNull(properties);
        return KernelPaths.For(properties.ComputeMajor, shape, batch).FusedMlp;
    }

    /// <summary>
    /// Device bytes the model of this shape and batch allocates: parameters (fp32 masters and gradients, bf16 copies) and the
    /// activations (<see cref="GpuActivations.EstimateBytes"/>), the rotary table (fp32, and as bf16 pairs); not the optimizer's state or the libraries'
    /// workspaces.
    /// </summary>
    public static long EstimateBytes(DeviceProperties properties, ModelShape shape, int batch, int headChunkRows = DefaultHeadChunkRows, bool fusedMlp = true,
        bool recomputeMlp = false)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long parameters = shape.ParameterShapes().Sum(p => ((long)p.Rows * p.Cols + 63) / 64 * 64);
        long attentionScratch = FlashAttention.ScratchBytes(batch, shape.SeqLen, shape.Heads, shape.HeadDim);
        bool fused = fusedMlp && UsesFusedMlp(properties, shape, batch);
        return parameters * (4 + 4 + 2) + GpuActivations.EstimateBytes(shape, batch, headChunkRows, attentionScratch, fused, recomputeMlp)
            + 4L * shape.SeqLen * shape.HeadDim + 2L * shape.SeqLen * shape.HeadDim;
    }

    private string Layer(int i, string name) => $"transformer.h.{i}.{name}.weight";

    /// <summary>Matrix FLOPs of causal sliding-window attention: 4·128 per (query, visible key) forward, 2.5× that backward.</summary>
    public static double AttentionFlops(int batch, int seqLen, int heads, int headDim, int window, bool backward)
    {
        double pairs = 0;
        for (int t = 0; t < seqLen; t++)
            pairs += Math.Min(t, window) + 1;
        double forward = 4.0 * headDim * pairs * batch * heads;
        return backward ? 2.5 * forward : forward;
    }

    private static double Gemm(long m, long n, long k) => 2.0 * m * n * k;

    /// <summary>The forward pass over the token ids already in <see cref="GpuActivations.Inputs"/>, up to the final norm.</summary>
    public void Forward()
    {
        var a = Activations;
        var p = Parameters;
        var prof = _profiler;
        int n = a.Tokens, c = Shape.ModelDim, f = Shape.MlpHidden, h = Shape.Heads, kv = Shape.KvHeads, kvd = Shape.KvDim, t = Shape.SeqLen;
        long nc = (long)n * c, nkv = (long)n * kvd;
        bool fusedQ = Paths.FusedQ, fusedK = Paths.FusedK, fusedV = Paths.VInQkLaunch;
        // The gathered rows are read from wte (in L2) and normed in registers; only x0 is written.
        using (prof.Region("embedding + norm", bytes: 4.0 * nc))
            _embedding.NormForward(a.Inputs.Pointer, p.Bf16Of("transformer.wte.weight"), n, c, a.X[0].Pointer, a.Rstd0.Pointer, _stream);
        for (int i = 0; i < Shape.Depth; i++)
        {
            ulong h1 = a.H1[i]?.Pointer ?? a.Normed!.Pointer; // Normed exists whenever some h1 is not kept
            using (prof.Region("residual mix + norm", bytes: 8.0 * nc))
            {
                _norm.MixForward(a.X[i].Pointer, a.X[0].Pointer, p.MasterOf("resid_lambdas"), p.MasterOf("x0_lambdas"), i, n, c,
                    a.M[i].Pointer, h1, a.Rstd1[i].Pointer, _stream);
            }
            using (prof.Region(fusedQ || fusedK ? "GEMM q k v (+ rotary + QK-norm)" : "GEMM q k v", Gemm(n, c + 2 * kvd, c)))
            {
                if (fusedQ && fusedK)
                {
                    // One launch, x read once: q and k with their epilogues, and v when the kernel takes it.
                    _qkGemm!.QkvRotaryNorm(h1, p.Bf16Of(Layer(i, "attn.c_q")), p.Bf16Of(Layer(i, "attn.c_k")), fusedV ? p.Bf16Of(Layer(i, "attn.c_v")) : 0,
                        n, c, c, kvd, Shape.HeadDim, _cosSinPairs.Pointer, t, a.Q[i].Pointer, a.K[i].Pointer, fusedV ? a.V[i].Pointer : 0,
                        a.RstdQ[i].Pointer, a.RstdK[i].Pointer, _stream);
                }
                else
                {
                    if (fusedQ)
                        _qkGemm!.QkRotaryNorm(h1, p.Bf16Of(Layer(i, "attn.c_q")), n, c, c, Shape.HeadDim, _cosSinPairs.Pointer, t, a.Q[i].Pointer, a.RstdQ[i].Pointer, _stream);
                    else
                        _linear.Forward(h1, p.Bf16Of(Layer(i, "attn.c_q")), n, c, c, a.Q[i].Pointer);
                    if (fusedK)
                        _qkGemm!.QkRotaryNorm(h1, p.Bf16Of(Layer(i, "attn.c_k")), n, c, kvd, Shape.HeadDim, _cosSinPairs.Pointer, t, a.K[i].Pointer, a.RstdK[i].Pointer, _stream);
                    else
                        _linear.Forward(h1, p.Bf16Of(Layer(i, "attn.c_k")), n, c, kvd, a.K[i].Pointer);
                }
                if (!fusedV)
                    _linear.Forward(h1, p.Bf16Of(Layer(i, "attn.c_v")), n, c, kvd, a.V[i].Pointer);
            }
            if (Shape.HasValueEmbedding[i])
            {
                using (prof.Region("value gate", bytes: 6.0 * nkv))
                {
                    _gate.Forward(h1, p.Bf16Of(Layer(i, "attn.ve_gate")), a.Inputs.Pointer, p.Bf16Of($"value_embeds.{i}.weight"),
                        n, c, a.V[i].Pointer, a.Gate[i]!.Pointer, _stream);
                }
            }
            if (!fusedQ || !fusedK)
            {
                using (prof.Region("rotary + QK-norm", bytes: 4.0 * ((fusedQ ? 0 : nc) + (fusedK ? 0 : nkv))))
                {
                    if (!fusedQ)
                        _rotary.Forward(a.Q[i].Pointer, _cosSinPairs.Pointer, n * h, h, t, a.RstdQ[i].Pointer, _stream);
                    if (!fusedK)
                        _rotary.Forward(a.K[i].Pointer, _cosSinPairs.Pointer, n * kv, kv, t, a.RstdK[i].Pointer, _stream);
                }
            }
            using (prof.Region("attention forward", AttentionFlops(a.Batch, t, h, Shape.HeadDim, Shape.Windows[i], backward: false)))
                _attention.Forward(a.Q[i].Pointer, a.K[i].Pointer, a.V[i].Pointer, a.Batch, t, h, kv, Shape.Windows[i], a.O[i].Pointer, a.Lse[i].Pointer, _stream);
            using (prof.Region("GEMM attn proj (+residual)", Gemm(n, c, c)))
                _linear.Forward(a.O[i].Pointer, p.Bf16Of(Layer(i, "attn.c_proj")), n, c, c, a.XMid[i].Pointer, residual: a.M[i].Pointer);
            MlpActivationForward(i, recompute: false);
            using (prof.Region("GEMM mlp proj (+residual)", Gemm(n, c, f)))
                _linear.Forward(a.S[i].Pointer, p.Bf16Of(Layer(i, "mlp.c_proj")), n, f, c, a.X[i + 1].Pointer, residual: a.XMid[i].Pointer);
        }
        using (prof.Region("rmsnorm", bytes: 4.0 * nc))
            _norm.Forward(a.X[Shape.Depth].Pointer, n, c, a.HFinal.Pointer, a.RstdFinal.Pointer, _stream);
    }

    /// <summary>
    /// Layer <paramref name="i"/>'s s = act(norm(x_mid)·W_fcᵀ) (and u where the activation keeps it), from x_mid: in the forward,
    /// and again in the backward with <see cref="GpuActivations.RecomputeMlp"/> (the same kernels on the same inputs: the same
    /// bits). The <paramref name="recompute"/>'s regions are named apart from the forward's in the profile.
    /// </summary>
    private void MlpActivationForward(int i, bool recompute)
    {
        var a = Activations;
        var p = Parameters;
        var prof = _profiler;
        int n = a.Tokens, c = Shape.ModelDim, f = Shape.MlpHidden;
        long nc = (long)n * c;
        string regionPrefix = recompute ? "recompute: " : "";
        if (_mlpGemm is not null)
        {
            // h2 = norm(x_mid) never exists: the GEMM scales its rows by rstd (act(rstd ⊙ x_mid·W_fcᵀ)); GELU also keeps u. In the
            // forward the GEMM computes rstd itself from the blocks of x_mid its products read, and keeps it for the backward. The
            // recompute runs the same kernel path (A from registers) and so rewrites the same rstd and the same s, bit for bit.
            using (prof.Region(regionPrefix + $"GEMM mlp fc + norm + {Shape.Activation.Name()}", Gemm(n, f, c)))
            {
                _mlpGemm.Fc(Shape.Activation, a.XMid[i].Pointer, p.Bf16Of(Layer(i, "mlp.c_fc")), n, c, f, a.S[i].Pointer, _stream, a.Rstd2[i].Pointer,
                    a.U[i]?.Pointer ?? 0, normRows: true);
            }
        }
        else
        {
            // u = h2·W_fcᵀ: into the scratch for relu² (whose backward needs only s), else kept per layer.
            ulong u = a.U[i]?.Pointer ?? a.MlpScratch!.Pointer;
            int fcRows = Shape.FcRows;
            using (prof.Region(regionPrefix + "rmsnorm", bytes: 4.0 * nc))
                _norm.Forward(a.XMid[i].Pointer, n, c, a.Normed!.Pointer, a.Rstd2[i].Pointer, _stream);
            using (prof.Region(regionPrefix + "GEMM mlp fc", Gemm(n, fcRows, c)))
                _linear.Forward(a.Normed.Pointer, p.Bf16Of(Layer(i, "mlp.c_fc")), n, c, fcRows, u);
            using (prof.Region(regionPrefix + Shape.Activation.Name(), bytes: 2.0 * n * (fcRows + f)))
                _activation.Forward(Shape.Activation, u, n, f, a.S[i].Pointer, _stream);
        }
    }

    /// <summary>
    /// The head, chunk by chunk: logits = h_final·lm_headᵀ (bf16 out of the GEMM, as in the reference; fp32 from the soft cap
    /// on), soft cap, per-token losses into
    /// <see cref="GpuActivations.Losses"/> and their sum added to <see cref="GpuActivations.LossSum"/>. With
    /// <paramref name="gradScale"/> &gt; 0 it also runs the head's backward: dlm_head += dlogitsᵀ·h_final and the residual
    /// gradient of the final norm's output into <see cref="GpuActivations.DH"/> (bf16). gradScale = 1/(scored tokens · micro-steps).
    /// </summary>
    public void Loss(float gradScale)
    {
        var a = Activations;
        var p = Parameters;
        var prof = _profiler;
        int n = a.Tokens, c = Shape.ModelDim, v = Shape.VocabSize;
        bool train = gradScale > 0;
        for (int start = 0; start < n; start += a.HeadChunkRows)
        {
            int rows = Math.Min(a.HeadChunkRows, n - start);
            ulong hChunk = a.HFinal.At((long)start * c);
            using (prof.Region("GEMM lm_head", Gemm(rows, v, c)))
                _linear.Forward(hChunk, p.Bf16Of("lm_head.weight"), rows, c, v, a.Logits.Pointer, ElementType.Bf16);
            using (prof.Region("soft cap + cross-entropy", bytes: (train ? 4.0 : 2.0) * rows * v))
                _crossEntropy.Forward(a.Logits.Pointer, a.Targets.At(start), rows, v, gradScale, a.Losses.At(start), train ? a.DLogits.Pointer : 0, _stream,
                    (float)Shape.SoftCap);
            if (train)
            {
                using (prof.Region("GEMM lm_head backward", 2 * Gemm(rows, v, c)))
                {
                    _linear.BackwardWeight(a.DLogits.Pointer, hChunk, rows, c, v, p.GradientOf("lm_head.weight"));
                    _linear.BackwardInput(a.DLogits.Pointer, p.Bf16Of("lm_head.weight"), rows, c, v, a.DH.At((long)start * c), ElementType.Bf16, accumulate: false);
                }
            }
        }
        _crossEntropy.Sum(a.Losses.Pointer, n, a.LossSum.Pointer, _stream);
    }

    /// <summary>The backward pass, from the gradient at the final norm's output (left in DH by <see cref="Loss"/>) to the embeddings.</summary>
    public void Backward()
    {
        var a = Activations;
        var p = Parameters;
        var prof = _profiler;
        int n = a.Tokens, c = Shape.ModelDim, f = Shape.MlpHidden, h = Shape.Heads, kv = Shape.KvHeads, kvd = Shape.KvDim, t = Shape.SeqLen;
        int fcRows = Shape.FcRows, qkv = Shape.QkvDim;
        long nc = (long)n * c, nkv = (long)n * kvd;
        using (prof.Region("rmsnorm backward", bytes: 6.0 * nc))
            _norm.Backward(a.X[Shape.Depth].Pointer, a.RstdFinal.Pointer, a.DH.Pointer, n, c, a.G.Pointer, accumulate: false, _stream, ElementType.Bf16,
                ElementType.Bf16);
        a.DX0.FillBytes(0, _stream);
        // The positions grouped by token id, for the value embeddings' and wte's gradients: each run of equal ids is summed in
        // registers and added once, instead of one atomic a token piled on the frequent tokens' rows.
        // Only where a grouped kernel reads the order (Paths.GroupsTokens): wide rows take the per-token kernels.
        ulong tokenOrder = Paths.GroupsTokens ? a.TokenOrder.Pointer : 0;
        if (tokenOrder != 0)
        {
            using (prof.Region("token grouping", bytes: 16.0 * n))
                _embedding.GroupTokens(a.Inputs.Pointer, n, Shape.VocabSize, a.TokenOrder.Pointer, a.TokenCursor.Pointer, _stream);
        }
        for (int i = Shape.Depth - 1; i >= 0; i--)
        {
            // MLP: x_out = x_mid + s·Wprojᵀ, s = relu²(h2·Wfcᵀ), h2 = norm(x_mid). G holds dL/dx_out (bf16).
            if (a.RecomputeMlp)
                MlpActivationForward(i, recompute: true);
            using (prof.Region("GEMM mlp proj weight gradient", Gemm(n, c, f)))
                _linear.BackwardWeight(a.G.Pointer, a.S[i].Pointer, n, f, c, p.GradientOf(Layer(i, "mlp.c_proj")));
            // du: the gradient at the fc GEMM's output; normedInput: what dW_fc is taken against.
            ulong du, normedInput;
            if (_mlpGemm is not null)
            {
                // du = rstd ⊙ dL/du replaces what the activation kept in place (s for relu², u for GELU; dead after the weight
                // gradient above). Then dW_fc += duᵀ·x_mid (= (dL/du)ᵀ·h2) and dh2' = du·W_fc = rstd·dh2, which the norm
                // backward takes pre-scaled: h2 never exists.
                du = a.U[i]?.Pointer ?? a.S[i].Pointer;
                normedInput = a.XMid[i].Pointer;
                using (prof.Region($"GEMM mlp proj input gradient + {Shape.Activation.Name()} backward", Gemm(n, c, f)))
                    _mlpGemm.ProjInputGradient(Shape.Activation, a.G.Pointer, p.Bf16Of(Layer(i, "mlp.c_proj")), du, n, c, f, du, _stream, a.Rstd2[i].Pointer);
            }
            else
            {
                // ds = g·W_proj into the scratch; du from what the activation kept: s for relu² (du in the scratch, in place),
                // the pre-activation for GELU and SwiGLU (du replaces it in place).
                ulong ds = a.MlpScratch!.Pointer;
                ulong kept = a.U[i]?.Pointer ?? a.S[i].Pointer;
                du = a.U[i]?.Pointer ?? ds;
                normedInput = a.Normed!.Pointer;
                using (prof.Region("GEMM mlp proj input gradient", Gemm(n, c, f)))
                    _linear.BackwardInput(a.G.Pointer, p.Bf16Of(Layer(i, "mlp.c_proj")), n, f, c, ds, ElementType.Bf16, accumulate: false);
                using (prof.Region($"{Shape.Activation.Name()} backward", bytes: 2.0 * n * (f + 2 * fcRows)))
                    _activation.Backward(Shape.Activation, kept, ds, n, f, du, _stream);
                using (prof.Region("norm recompute", bytes: 4.0 * nc))
                    _norm.Apply(a.XMid[i].Pointer, a.Rstd2[i].Pointer, n, c, normedInput, _stream);
            }
            using (prof.Region("GEMM mlp fc backward", 2 * Gemm(n, c, fcRows)))
            {
                _linear.BackwardWeight(du, normedInput, n, c, fcRows, p.GradientOf(Layer(i, "mlp.c_fc")));
                // dh2 leaves the GEMM in bf16, as under the reference's autocast (DH's memory holds it).
                _linear.BackwardInput(du, p.Bf16Of(Layer(i, "mlp.c_fc")), n, c, fcRows, a.DH.Pointer, ElementType.Bf16, accumulate: false);
            }
            using (prof.Region("rmsnorm backward", bytes: 8.0 * nc))
            {
                _norm.Backward(a.XMid[i].Pointer, a.Rstd2[i].Pointer, a.DH.Pointer, n, c, a.G.Pointer, accumulate: true, _stream, ElementType.Bf16,
                    ElementType.Bf16, dyScaledByRstd: _mlpGemm is not null);
            }

            // Attention: x_mid = m + attention(h1)·Woᵀ, h1 = norm(m)
            using (prof.Region("GEMM attn proj backward", 2 * Gemm(n, c, c)))
            {
                _linear.BackwardWeight(a.G.Pointer, a.O[i].Pointer, n, c, c, p.GradientOf(Layer(i, "attn.c_proj")));
                _linear.BackwardInput(a.G.Pointer, p.Bf16Of(Layer(i, "attn.c_proj")), n, c, c, a.DOf(i).Pointer, ElementType.Bf16, accumulate: false);
            }
            // Kernels with an fp32 dq accumulator (flash) leave dq there, and the rotary backward reads it (no bf16 round trip).
            // Kernels that can (flash) apply k's rotary backward to dk as they write it, from dk in fp32.
            ulong dqAccumulator;
            bool kRotaryFused = _attention.FusesKRotaryBackward;
            // Its first step (D, and the dq accumulator zeroed unless the layer after this one's backward did it) timed apart.
            // With two accumulators, the j-th layer in backward order adds to accumulator j mod 2 and zeroes the other for
            // layer j + 1, whose prepare then reads o and dout only; the first layer's prepare zeroes its own, so nothing
            // is assumed of the scratch between micro-steps.
            int order = Shape.Depth - 1 - i, accumulator = order % 2;
            bool alternate = _attention.AlternatesAccumulators, zeroed = alternate && order > 0;
            // Bytes a feature: o and dout read, and (unless zeroed) the fp32 zeros; kernels without the step move none.
            using (prof.Region("attention backward prepare", bytes: (!alternate ? 0.0 : zeroed ? 4.0 : 8.0) * n * h * Shape.HeadDim))
                _attention.PrepareBackward(a.O[i].Pointer, a.DOf(i).Pointer, a.Batch, t, h, a.AttentionScratch.Pointer, _stream, accumulator, zeroed);
            using (prof.Region("attention backward", AttentionFlops(a.Batch, t, h, Shape.HeadDim, Shape.Windows[i], backward: true)))
            {
                dqAccumulator = _attention.Backward(a.Q[i].Pointer, a.K[i].Pointer, a.V[i].Pointer, a.O[i].Pointer, a.DOf(i).Pointer, a.Lse[i].Pointer,
                    a.Batch, t, h, kv, Shape.Windows[i], a.DQ(i), a.DK(i), a.DV(i), a.AttentionScratch.Pointer, _stream, a.DQKVRowStride, leaveDqAccumulated: true,
                    kRotary: kRotaryFused ? new KRotaryBackward(a.RstdK[i].Pointer, _cosSinPairs.Pointer) : null, prepared: true,
                    accumulator: accumulator, zeroNextAccumulator: alternate && i > 0);
            }
            using (prof.Region("rotary + QK-norm backward", bytes: (dqAccumulator == 0 ? 6.0 : 8.0) * nc + (kRotaryFused ? 0.0 : 6.0 * nkv)))
            {
                _rotary.Backward(a.Q[i].Pointer, a.RstdQ[i].Pointer, a.DQ(i), _cosSinPairs.Pointer, n * h, h, t, _stream, a.DQKVRowStride, dqAccumulator);
                if (!kRotaryFused)
                    _rotary.Backward(a.K[i].Pointer, a.RstdK[i].Pointer, a.DK(i), _cosSinPairs.Pointer, n * kv, kv, t, _stream, a.DQKVRowStride);
            }
            ulong h1 = a.H1[i]?.Pointer ?? a.Normed!.Pointer; // Normed exists whenever some h1 is not kept
            if (a.H1[i] is null)
            {
                using (prof.Region("norm recompute", bytes: 4.0 * nc))
                    _norm.Apply(a.M[i].Pointer, a.Rstd1[i].Pointer, n, c, h1, _stream);
            }
            using (prof.Region("GEMM q k v backward", 2 * Gemm(n, qkv, c)))
            {
                // c_q, c_k, c_v are adjacent tensors (checked at construction): one [C + 2·KV·D, C] weight, like dq | dk | dv one
                // [N, C + 2·KV·D] matrix. So dW_qkv += dQKVᵀ·h1 and dh1 = dQKV·W_qkv are one GEMM each (one write of dh1, in bf16:
                // q's, k's and v's shares are summed in the GEMM's fp32 accumulator).
                _linear.BackwardWeight(a.Dqkv(i).Pointer, h1, n, c, qkv, p.GradientOf(Layer(i, "attn.c_q")));
                _linear.BackwardInput(a.Dqkv(i).Pointer, p.Bf16Of(Layer(i, "attn.c_q")), n, c, qkv, a.DH.Pointer, ElementType.Bf16, accumulate: false);
            }
            if (Shape.HasValueEmbedding[i])
            {
                using (prof.Region("value gate backward", bytes: 8.0 * nkv))
                {
                    _gate.Backward(a.Gate[i]!.Pointer, a.DV(i), a.Inputs.Pointer, p.Bf16Of($"value_embeds.{i}.weight"), h1,
                        p.Bf16Of(Layer(i, "attn.ve_gate")), n, c, p.GradientOf($"value_embeds.{i}.weight"), p.GradientOf(Layer(i, "attn.ve_gate")),
                        a.DH.Pointer, _stream, a.DQKVRowStride, tokenOrder);
                }
            }
            // h1 = norm(m), m = resid_lambda·x + x0_lambda·x0, in one pass: G = dL/dx afterwards, which the previous layer's
            // MLP GEMMs read. Layer 0's x is x0 itself: there the whole gradient joins the x0 path in DX0.
            using (prof.Region("rmsnorm + residual mix backward", bytes: ((i > 0 ? 16.0 : 14.0) - (a.MixKept ? 0 : 2)) * nc))
            {
                // Without a kept m the kernel recomputes it from x and x0 (which it reads for the lambdas' gradients too).
                _norm.NormMixBackward(a.MixKept ? a.M[i].Pointer : 0, a.Rstd1[i].Pointer, a.DH.Pointer, a.G.Pointer, a.X[i].Pointer, a.X[0].Pointer,
                    p.MasterOf("resid_lambdas"), p.MasterOf("x0_lambdas"), i, n, c, a.DX0.Pointer, p.GradientOf("resid_lambdas"),
                    p.GradientOf("x0_lambdas"), _stream, foldIntoX0: i == 0);
            }
        }
        // dL/dx0, summed in DX0 over the layers, through the embedding norm into wte: the rows gathered again from wte (the bf16
        // copy has not changed since the forward), the norm's backward in registers, rounded to bf16 as the x0 gradient is, added.
        using (prof.Region("embedding backward", bytes: 8.0 * nc))
            _embedding.NormBackward(a.Inputs.Pointer, p.Bf16Of("transformer.wte.weight"), a.Rstd0.Pointer, a.DX0.Pointer, n, c,
                p.GradientOf("transformer.wte.weight"), _stream, tokenOrder);
    }

    /// <summary>
    /// Refuses an id outside [0, vocab): the kernels index the embedding tables and the grouped order by it unchecked, so such
    /// an id would read or write outside them. One pass over the ids on the host.
    /// </summary>
    public static void CheckTokenIds(ReadOnlySpan<int> ids, int vocab, string name)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(name, ids[i], $"{name}[{i}] = {ids[i]}: token ids must lie in [0, {vocab}), the rows of the embedding tables");
        }
    }

    /// <summary>
    /// Queues the copy of one micro-batch's token ids (B·T inputs and targets, host int32) to the device, in stream order: through
    /// one of two pinned staging pairs and an asynchronous copy, so the call returns without waiting for the GPU (it waits only
    /// if the copy queued two calls ago has not run yet) and the kernels queued next read the new batch.
    /// </summary>
    public void Upload(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets)
    {
        if (inputs.Length != Activations.Inputs.Length || targets.Length != Activations.Targets.Length)
            throw new ArgumentException($"a micro-batch has {Activations.Inputs.Length} inputs and targets; got {inputs.Length} and {targets.Length}");
        CheckTokenIds(inputs, Shape.VocabSize, nameof(inputs));
        int stage = _nextStage;
        _nextStage ^= 1;
        if (_stagedInFlight[stage])
            _stagedCopied[stage].Synchronize();
        inputs.CopyTo(_stagedInputs[stage].Span);
        targets.CopyTo(_stagedTargets[stage].Span);
        Activations.Inputs.CopyFromAsync(_stagedInputs[stage], _stream);
        Activations.Targets.CopyFromAsync(_stagedTargets[stage], _stream);
        _stagedCopied[stage].Record(_stream);
        _stagedInFlight[stage] = true;
    }

    /// <summary>Forward, loss and backward of the uploaded batch; the loss sum is added to LossSum.</summary>
    public void ForwardBackward(float gradScale)
    {
        Forward();
        Loss(gradScale);
        Backward();
    }

    /// <summary>Zeroes the accumulated loss sum.</summary>
    public void ResetLossSum() => Activations.LossSum.FillBytes(0, _stream);

    /// <summary>Waits for the stream and returns the accumulated loss sum.</summary>
    public float ReadLossSum()
    {
        _stream.Synchronize();
        return Activations.LossSum.ToArray()[0];
    }

    public void Dispose()
    {
        _stream.Synchronize();
        foreach (var d in _stagedCopied)
            d.Dispose();
        foreach (var b in _stagedInputs.Concat(_stagedTargets))
            b.Dispose();
        _cosSinPairs.Dispose();
        _profiler.Dispose();
        Activations.Dispose();
        Parameters.Dispose();
    }
}

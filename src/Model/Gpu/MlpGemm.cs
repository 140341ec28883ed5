using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Launcher for kernels/mlp_gemm.cu: the MLP's GEMMs with the activation (relu², GELU) in their epilogue (our wgmma + TMA
/// kernels, sm_90). For relu² the
/// forward's s = relu(r ⊙ x·W_fcᵀ)² and the backward's du = r ⊙ (g·W_proj) ⊙ 2·sqrt(s) each replace a cuBLAS GEMM plus an
/// element-wise pass over the [N, 4C] activation (2 of the 3 passes' bytes saved); the optional row scale r lets the MLP's
/// norm ride along (x = the norm's input, r = its rstd). Shapes: tokens a multiple of
/// <see cref="TileRows"/>, the hidden width of <see cref="TileColumns"/>, the model width of <see cref="KStep"/>
/// (<see cref="Supports"/>), and the relu² activation; elsewhere the model keeps cuBLAS and kernels/mlp_activation.cu.
/// </summary>
public sealed class MlpGemm
{
    public const int TileRows = 128;
    public const int TileColumns = 256;
    public const int KStep = 64;
    public const int Threads = 384;

    /// <summary>The relu² fc GEMM (<see cref="Fc"/>).</summary>
    public const string FcRelu2 = "mlp_fc_relu_square";

    /// <summary>The relu² input-gradient GEMM (<see cref="ProjInputGradient"/>).</summary>
    public const string ProjRelu2 = "mlp_proj_input_gradient";

    /// <summary>The GELU fc GEMM.</summary>
    public const string FcGelu = "mlp_fc_gelu";

    /// <summary>The GELU input-gradient GEMM.</summary>
    public const string ProjGelu = "mlp_proj_input_gradient_gelu";

    private readonly KernelCache _kernels;
    private readonly Dictionary<string, LoadedKernel> _loaded = [];
    private readonly int _multiprocessors;

    /// <summary>
    /// The whole file: every kernel in one NVRTC run (<c>compile-kernel</c>, or a kernel folder from before the kernels compiled
    /// one at a time).
    /// </summary>
    public static KernelSource Source() => new("mlp_gemm.cu");

    /// <summary>
    /// The file compiled for one kernel (<c>-DMLP_GEMM_ONE_&lt;kernel&gt;</c>): each kernel of the file is a whole GEMM, and NVRTC
    /// takes seconds for each, so a cold start compiles the ones a model uses side by side instead of all of them in one run.
    /// </summary>
    public static KernelSource Source(string kernel)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kernel);
        return new("mlp_gemm.cu", ["-DMLP_GEMM_ONE", OneKernelDefine + kernel]);
    }

    /// <summary>The define, before the kernel's name, that makes <see cref="Source(string)"/>'s compile hold that kernel alone.</summary>
    public const string OneKernelDefine = "-DMLP_GEMM_ONE_";

    /// <summary>
    /// The kernels a model loads: the fc and input-gradient GEMMs of <paramref name="mlp"/> (null: its MLP is not ours) and the
    /// rotary GEMM of <paramref name="rotaryHeadDim"/> (null: q and k are not ours).
    /// </summary>
    public static IReadOnlyList<string> Kernels(Activation? mlp, int? rotaryHeadDim)
    {
        var names = new List<string>();
        if (mlp is { } activation)
        {
            if (!SupportsActivation(activation))
                throw new ArgumentException($"the fused MLP GEMMs compute relu² and GELU, not {activation}.", nameof(mlp));
            names.AddRange(activation == Activation.Gelu ? [FcGelu, ProjGelu] : [FcRelu2, ProjRelu2]);
        }
        if (rotaryHeadDim is { } headDim)
            names.Add(RotaryKernelName(headDim));
        return names;
    }

    /// <param name="kernels">Where the kernels compile and load.</param>
    /// <param name="properties">The device (Hopper).</param>
    /// <param name="load">Kernels loaded now (<see cref="Kernels"/>: what the model compiled ahead); the others load when first used.</param>
    public MlpGemm(KernelCache kernels, DeviceProperties properties, IEnumerable<string>? load = null)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(properties);
        if (properties.ComputeMajor != 9)
            throw new NotSupportedException($"the fused MLP GEMMs need an sm_90 GPU (wgmma, TMA); this one is compute {properties.ComputeMajor}.{properties.ComputeMinor}.");
        _kernels = kernels;
        _multiprocessors = properties.MultiprocessorCount;
        foreach (var name in load ?? [])
            Kernel(name);
    }

    /// <summary>
    /// Blocks launched at most (0: one a multiprocessor, the default). Each block takes tiles blockIdx, + grid, ...; a small
    /// limit makes every block run many tiles (tests of the pipeline's phases across tiles).
    /// </summary>
    public int MaxBlocks { get; set; }

    /// <summary>Whether the kernels would run for this shape and activation on a Hopper GPU (the device aside).</summary>
    public static bool SupportsOnHopper(Activation activation, long tokens, int width, int hidden)
        => SupportsActivation(activation) && ShapeProblem(tokens, width, hidden) is null;

    /// <summary>Whether the kernels run on this device (Hopper: wgmma and TMA) for this shape.</summary>
    public static bool Supports(DeviceProperties properties, long tokens, int width, int hidden)
    {
        ArgumentNullException.ThrowIfNull(properties);
        return properties.ComputeMajor == 9 && ShapeProblem(tokens, width, hidden) is null;
    }

    /// <summary>The activations the epilogues compute: relu² and GELU (SwiGLU's gate pairs columns a tile does not hold).</summary>
    public static bool SupportsActivation(Activation activation) => activation is Activation.Relu2 or Activation.Gelu;

    /// <summary>
    /// The fc GEMM with the activation in its epilogue, bf16 in and out, fp32 accumulation, u = r ⊙ x[n, width]·W[hidden, width]ᵀ
    /// with r = <paramref name="rowScale"/> [n] fp32 (1 when 0): relu² writes s = relu(u)² only; GELU writes u (into
    /// <paramref name="u"/>, kept for the backward) and s = gelu(u). With x the MLP norm's input and r its rstd, u = norm(x)·Wᵀ.
    /// With <paramref name="normRows"/> the kernel computes that rstd itself, r = 1/sqrt(mean(x²) + ε) of each row of x (as
    /// <see cref="RmsNorm.Forward"/> does), from the blocks of x its products read, and writes it to <paramref name="rowScale"/>
    /// (required) for the backward: the norm then needs no pass of its own.
    /// </summary>
    public void Fc(Activation activation, ulong x, ulong w, long n, int width, int hidden, ulong s, CudaStream stream, ulong rowScale = 0, ulong u = 0,
        bool normRows = false)
    {
        Check(n, width, hidden, activation);
        if (normRows && rowScale == 0)
            throw new ArgumentException("the fc GEMM writes the rows' rstd when it computes them (normRows): pass a buffer of n floats as rowScale.", nameof(rowScale));
        if (activation == Activation.Gelu)
        {
            if (u == 0 || u == s)
                throw new ArgumentException("the GELU fc GEMM writes u and s: pass a separate u buffer.", nameof(u));
            ReadOnlySpan<TensorMap> geluMaps =
            [
                TensorMap.Bf16Swizzled(x, n, width, TileRows, KStep),
                TensorMap.Bf16Swizzled(w, hidden, width, TileColumns, KStep),
                TensorMap.Bf16Swizzled(u, n, hidden, 64, 64),
                TensorMap.Bf16Swizzled(s, n, hidden, 64, 64),
            ];
            Launch(Kernel(FcGelu), Grid(n, hidden), stream, geluMaps, rowScale, (int)n, hidden, width, normRows ? 1 : 0);
            return;
        }
        ReadOnlySpan<TensorMap> maps =
        [
            TensorMap.Bf16Swizzled(x, n, width, TileRows, KStep),
            TensorMap.Bf16Swizzled(w, hidden, width, TileColumns, KStep),
            TensorMap.Bf16Swizzled(s, n, hidden, 64, 64),
        ];
        Launch(Kernel(FcRelu2), Grid(n, hidden), stream, maps, rowScale, (int)n, hidden, width, normRows ? 1 : 0);
    }

    /// <summary>
    /// du[n, hidden] = r ⊙ (g[n, width]·W[width, hidden]) ⊙ act'(·): the input gradient of c_proj (W stored out × in) through the
    /// activation, from what the forward kept (<paramref name="kept"/>: s for relu², act' = 2·sqrt(s); u for GELU), rows scaled by
    /// r = <paramref name="rowScale"/> [n] fp32 (1 when 0). du may be <paramref name="kept"/> itself (each tile of it is in shared
    /// memory before its du is stored); it may not alias g.
    /// </summary>
    public void ProjInputGradient(Activation activation, ulong g, ulong w, ulong kept, long n, int width, int hidden, ulong du, CudaStream stream,
        ulong rowScale = 0)
    {
        Check(n, width, hidden, activation);
        if (du == g)
            throw new ArgumentException("du may not alias g (g is read by later tiles while du is stored).", nameof(du));
        if (du % 16 != 0)
            throw new ArgumentException($"du must be 16-byte aligned (the kernel stores its rows 16 bytes a lane); got 0x{du:x}.", nameof(du));
        var kernel = Kernel(activation == Activation.Gelu ? ProjGelu : ProjRelu2);
        ReadOnlySpan<TensorMap> maps =
        [
            TensorMap.Bf16Swizzled(g, n, width, TileRows, KStep),
            TensorMap.Bf16Swizzled(w, width, hidden, 64, 64),
            TensorMap.Bf16Swizzled(kept, n, hidden, 64, 64),
            TensorMap.Bf16Swizzled(du, n, hidden, kernel.DuBoxRows, 64), // the rows the kernel's stores take (mlp_gemm_du_box_rows)
        ];
        // du's address too: the kernel's stores from registers (GEMM_GATE_DIRECT_STORES) take it beside the map.
        Launch(kernel, Grid(n, hidden), stream, maps, rowScale, (int)n, hidden, width, du);
    }

    /// <summary>
    /// Whether <see cref="QkRotaryNorm"/> takes this projection: heads of 64 or 128, tokens a multiple of <see cref="TileRows"/>,
    /// the projection's width (heads · head size) of <see cref="TileColumns"/> (whole heads in a tile), the model width of
    /// <see cref="KStep"/>.
    /// </summary>
    public static bool SupportsRotary(long tokens, int width, int outFeatures, int headDim) => RotaryProblem(tokens, width, outFeatures, headDim) is null;

    /// <summary>What <see cref="QkRotaryNorm"/> needs that this projection lacks (a phrase, as <see cref="ShapeProblem"/>), or null.</summary>
    public static string? RotaryProblem(long tokens, int width, int outFeatures, int headDim)
        => headDim is 64 or 128 ? ShapeProblem(tokens, width, outFeatures, "projection width (heads × head size)") : $"heads of 64 or 128; got {headDim}";

    /// <summary>
    /// The q (or k) projection with the rotary embedding and QK-norm in its epilogue: y[n, out] = norm(rotary(bf16(x·Wᵀ))) per
    /// head of <paramref name="headDim"/> columns, what cuBLAS followed by <see cref="Rotary.Forward"/> computes, in one pass
    /// (y is never read back). x [n, width] bf16, W [out, width] bf16, y [n, out] bf16, rstd [n · out / headDim] fp32 (1/rms per
    /// token and head, for the backward), cosSinPairs [seqLen, headDim / 2] bf16 (cos, sin) pairs of 32 bits, 8-byte aligned
    /// (<see cref="RotaryTable.Bf16Pairs"/>); token i is position i mod seqLen.
    /// </summary>
    public void QkRotaryNorm(ulong x, ulong w, long n, int width, int outFeatures, int headDim, ulong cosSinPairs, int seqLen, ulong y,
        ulong rstd, CudaStream stream)
    {
        CheckRotary("the projection", n, width, outFeatures, headDim, seqLen, cosSinPairs);
        // One part: the kernel's k and v parts are absent (0 columns), their maps never read.
        var wMap = TensorMap.Bf16Swizzled(w, outFeatures, width, TileColumns, KStep);
        var kernel = Kernel(RotaryKernelName(headDim));
        var yMap = TensorMap.Bf16Swizzled(y, n, outFeatures, kernel.QkvBoxRows, 64);
        ReadOnlySpan<TensorMap> maps = [TensorMap.Bf16Swizzled(x, n, width, TileRows, KStep), wMap, wMap, wMap, yMap, yMap, yMap];
        Launch(kernel, Grid(n, outFeatures), stream, maps, cosSinPairs, rstd, rstd, (int)n, outFeatures, 0, 0, width, seqLen);
    }

    /// <summary>
    /// The q, k and v projections of one x in one launch: q = norm(rotary(bf16(x·W_qᵀ))) and k = norm(rotary(bf16(x·W_kᵀ))) per head,
    /// each as <see cref="QkRotaryNorm"/> computes it, and v = bf16(x·W_vᵀ) (<paramref name="wv"/> 0: v is not computed here). x's
    /// rows are read from memory once for the three products, not once for each. x [n, width], W_q [qFeatures, width], W_k and W_v
    /// [kvFeatures, width], q [n, qFeatures], k and v [n, kvFeatures], all bf16; rstdQ [n · qFeatures / headDim] and rstdK
    /// [n · kvFeatures / headDim] fp32. <see cref="RotaryTakesV"/> says whether the compiled kernel is meant to take v (the
    /// kernel file's QK_GEMM_TAKES_V); it takes it whenever asked.
    /// </summary>
    public void QkvRotaryNorm(ulong x, ulong wq, ulong wk, ulong wv, long n, int width, int qFeatures, int kvFeatures, int headDim, ulong cosSinPairs,
        int seqLen, ulong q, ulong k, ulong v, ulong rstdQ, ulong rstdK, CudaStream stream)
    {
        CheckRotary("q", n, width, qFeatures, headDim, seqLen, cosSinPairs);
        CheckRotary(v != 0 ? "k and v" : "k", n, width, kvFeatures, headDim, seqLen, cosSinPairs);
        if ((wv == 0) != (v == 0))
            throw new ArgumentException($"v's product needs both its weight and its output: got wv 0x{wv:x}, v 0x{v:x} (0 for both leaves v out).", nameof(wv));
        RequireAddress(x, nameof(x));
        RequireAddress(wq, nameof(wq));
        RequireAddress(wk, nameof(wk));
        RequireAddress(q, nameof(q));
        RequireAddress(k, nameof(k));
        RequireAddress(rstdQ, nameof(rstdQ));
        RequireAddress(rstdK, nameof(rstdK));
        if (rstdQ == rstdK)
            throw new ArgumentException("rstdQ and rstdK must be separate buffers (each token's q and k norms are both kept).", nameof(rstdK));
        if (q == k || (v != 0 && (v == q || v == k)))
            throw new ArgumentException("q, k and v must be separate buffers.", nameof(q));
        if (q == x || k == x || (v != 0 && v == x))
            throw new ArgumentException("q, k and v may not alias x (x is read by later tiles while they are stored).", nameof(x));
        var wkMap = TensorMap.Bf16Swizzled(wk, kvFeatures, width, TileColumns, KStep);
        var kernel = Kernel(RotaryKernelName(headDim));
        var kMap = TensorMap.Bf16Swizzled(k, n, kvFeatures, kernel.QkvBoxRows, 64);
        ReadOnlySpan<TensorMap> maps =
        [
            TensorMap.Bf16Swizzled(x, n, width, TileRows, KStep),
            TensorMap.Bf16Swizzled(wq, qFeatures, width, TileColumns, KStep),
            wkMap,
            v != 0 ? TensorMap.Bf16Swizzled(wv, kvFeatures, width, TileColumns, KStep) : wkMap,
            TensorMap.Bf16Swizzled(q, n, qFeatures, kernel.QkvBoxRows, 64),
            kMap,
            v != 0 ? TensorMap.Bf16Swizzled(v, n, kvFeatures, kernel.QkvBoxRows, 64) : kMap,
        ];
        int vFeatures = v != 0 ? kvFeatures : 0;
        Launch(kernel, Grid(n, qFeatures + kvFeatures + vFeatures), stream, maps, cosSinPairs, rstdQ, rstdK, (int)n,
            qFeatures, kvFeatures, vFeatures, width, seqLen);
    }

    /// <summary>
    /// Whether the rotary kernel of <paramref name="headDim"/> was built to take v's product too (its file's QK_GEMM_TAKES_V, 0 by
    /// default: on an H100 v's product ran faster on cuBLAS): the model then gives it v instead of running v's GEMM on cuBLAS.
    /// Loads the kernel.
    /// </summary>
    public bool RotaryTakesV(int headDim)
        => Kernel(RotaryKernelName(headDim)).TakesV;

    private static void RequireAddress(ulong pointer, string name)
    {
        if (pointer == 0)
            throw new ArgumentException($"the q k v GEMM needs a device address for {name}; got 0.", name);
    }

    // The rotary GEMM's checks of one projection (what: its name in the message) and of the table.
    private static void CheckRotary(string what, long n, int width, int outFeatures, int headDim, int seqLen, ulong cosSinPairs)
    {
        if (RotaryProblem(n, width, outFeatures, headDim) is { } problem)
        {
            throw new ArgumentException($"the rotary GEMM cannot take {what}: it needs {problem} "
                + $"(the call: {n} tokens, width {width}, {outFeatures} outputs in heads of {headDim}).");
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        if (cosSinPairs == 0 || cosSinPairs % 8 != 0)
            throw new ArgumentException($"the rotary GEMM reads the table's pairs 8 bytes at a time: cosSinPairs must be 8-byte aligned; got 0x{cosSinPairs:x}", nameof(cosSinPairs));
    }

    private static string RotaryKernelName(int headDim) => headDim is 64 or 128
        ? $"qk_gemm_rotary_norm_{headDim}"
        : throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the rotary GEMM is built for heads of 64 and 128.");

    // A kernel loaded from its own compile of the file (Source(name)), with what the launcher reads from that module: its
    // dynamic shared memory, whether a rotary kernel takes v, and the rows of the output maps' boxes its stores take (du's for
    // the gradient, q's, k's and v's for the rotary kernels; the fc kernels' s and u take 64).
    private readonly record struct LoadedKernel(CudaKernel Kernel, int SharedBytes, bool TakesV, int DuBoxRows, int QkvBoxRows);

    private LoadedKernel Kernel(string name)
    {
        if (!_loaded.TryGetValue(name, out var loaded))
        {
            var module = _kernels.Load(Source(name));
            loaded = new LoadedKernel(module.GetKernel(name), module.ReadInt32("mlp_gemm_shared_bytes"), module.TryReadInt32("qk_gemm_takes_v") is > 0,
                module.TryReadInt32("mlp_gemm_du_box_rows") ?? 64, module.TryReadInt32("mlp_gemm_qkv_box_rows") ?? 64);
            loaded.Kernel.SetMaxDynamicSharedMemory(loaded.SharedBytes);
            _loaded[name] = loaded;
        }
        return loaded;
    }

    private static void Launch(LoadedKernel k, uint grid, CudaStream stream, ReadOnlySpan<TensorMap> maps, params ReadOnlySpan<KernelArg> args)
        => k.Kernel.Launch(grid, Threads, k.SharedBytes, stream, maps, args);

    private uint Grid(long n, int hidden)
    {
        long tiles = n / TileRows * (hidden / TileColumns);
        return (uint)Math.Min(tiles, MaxBlocks > 0 ? Math.Min(MaxBlocks, _multiprocessors) : _multiprocessors);
    }

    /// <summary>What the kernels need that a product of <paramref name="n"/> tokens, <paramref name="width"/> inputs and
    /// <paramref name="hidden"/> outputs lacks (a phrase: "a token count that is a positive multiple of 128; got 200"), or
    /// null when they take it.</summary>
    public static string? ShapeProblem(long n, int width, int hidden, string outputs = "hidden width")
    {
        if (n <= 0 || n % TileRows != 0)
            return $"a token count that is a positive multiple of {TileRows}; got {n}";
        if (hidden <= 0 || hidden % TileColumns != 0)
            return $"a {outputs} that is a multiple of {TileColumns}; got {hidden}";
        if (width <= 0 || width % KStep != 0)
            return $"a model width that is a multiple of {KStep}; got {width}";
        if (n > int.MaxValue || n / TileRows * (hidden / TileColumns) > int.MaxValue)
            return $"fewer than 2^31 rows and tiles; got {n} × {hidden}";
        return null;
    }

    private static void Check(long n, int width, int hidden, Activation activation)
    {
        if (ShapeProblem(n, width, hidden) is { } problem)
            throw new ArgumentException($"the fused MLP GEMM needs {problem}.");
        if (!SupportsActivation(activation))
            throw new ArgumentException($"the fused MLP GEMM computes relu² and GELU; {activation.Name()} runs on cuBLAS and mlp_activation.cu.", nameof(activation));
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>
/// Matrix products in row-major terms on one stream, through cuBLAS and cuBLASLt, with fp32 accumulation:
/// <c>C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C</c>, where a row-major A is m × k (lda ≥ k) or, transposed,
/// k × m (lda ≥ m). cuBLAS is column-major, so each call computes Cᵀ = op(B)ᵀ · op(A)ᵀ with the operands swapped.
/// </summary>
public sealed unsafe partial class Blas : IDisposable
{
    private readonly CudaDevice _device;
    private readonly DeviceBuffer<byte> _workspace;
    private readonly ConcurrentDictionary<LtKey, LtPlan> _ltPlans = new();
    private IntPtr _cublas;
    private IntPtr _cublasLt;

    public Blas(CudaDevice device, CudaStream stream, long workspaceBytes = 64L << 20)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(stream);
        _device = device;
        Stream = stream;
        NativeLibraries.Ensure(NativeLibraries.Cublas);
        NativeLibraries.Ensure(NativeLibraries.CublasLt);
        device.MakeCurrent();
        _workspace = device.Allocate<byte>(workspaceBytes, "cuBLAS workspace");
        Cublas.cublasCreate_v2(out _cublas).Check();
        Cublas.cublasSetStream_v2(_cublas, stream.Handle).Check();
        Cublas.cublasSetWorkspace_v2(_cublas, _workspace.Pointer, (nuint)_workspace.Bytes).Check();
        Cublas.cublasSetMathMode(_cublas, cublasMath_t.CUBLAS_DEFAULT_MATH).Check();
        Cublas.cublasGetVersion_v2(_cublas, out int version).Check();
        CublasVersion = version;
        CublasLt.cublasLtCreate(out _cublasLt).Check();
    }

    public CudaStream Stream { get; }

    /// <summary>cuBLAS's version number, e.g. 130000 for 13.0.0.</summary>
    public int CublasVersion { get; }

    /// <summary>cuBLASLt's version number.</summary>
    public static long CublasLtVersion
    {
        get
        {
            NativeLibraries.Ensure(NativeLibraries.CublasLt);
            return (long)CublasLt.cublasLtGetVersion();
        }
    }

    /// <summary>"major.minor.patch" of a cuBLAS version number.</summary>
    public static string FormatVersion(long version) => $"{version / 10000}.{version / 100 % 100}.{version % 100}";

    /// <summary>One GEMM through cublasGemmEx (bf16 or fp32 operands, fp32 accumulation, tensor cores where the types allow).</summary>
    public void Gemm(bool transA, bool transB, int m, int n, int k,
        float alpha, ulong a, ElementType aType, int lda, ulong b, ElementType bType, int ldb,
        float beta, ulong c, ElementType cType, int ldc)
    {
        CheckShape(transA, transB, m, n, k, lda, ldb, ldc);
        _device.MakeCurrent();
        Cublas.cublasGemmEx(_cublas, Op(transB), Op(transA), n, m, k,
            &alpha, b, Type(bType), ldb, a, Type(aType), lda,
            &beta, c, Type(cType), ldc, cublasComputeType_t.CUBLAS_COMPUTE_32F, Cublas.CUBLAS_GEMM_DEFAULT).Check();
    }

    /// <summary>
    /// A batch of GEMMs of one shape, matrix i at <c>pointer + i·stride</c> elements (the optimizer's Newton–Schulz
    /// iterations use it).
    /// </summary>
    public void GemmStridedBatched(bool transA, bool transB, int m, int n, int k,
        float alpha, ulong a, ElementType aType, int lda, long strideA, ulong b, ElementType bType, int ldb, long strideB,
        float beta, ulong c, ElementType cType, int ldc, long strideC, int batchCount)
    {
        CheckShape(transA, transB, m, n, k, lda, ldb, ldc);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchCount);
        _device.MakeCurrent();
        Cublas.cublasGemmStridedBatchedEx(_cublas, Op(transB), Op(transA), n, m, k,
            &alpha, b, Type(bType), ldb, strideB, a, Type(aType), lda, strideA,
            &beta, c, Type(cType), ldc, strideC, batchCount, cublasComputeType_t.CUBLAS_COMPUTE_32F, Cublas.CUBLAS_GEMM_DEFAULT).Check();
    }

    /// <summary>An fp32 GEMM in full fp32 (cublasSgemm_v2; no TF32 under the default math mode).</summary>
    public void GemmF32(bool transA, bool transB, int m, int n, int k,
        float alpha, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc)
    {
        CheckShape(transA, transB, m, n, k, lda, ldb, ldc);
        _device.MakeCurrent();
        Cublas.cublasSgemm_v2(_cublas, Op(transB), Op(transA), n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc).Check();
    }

    /// <summary>
    /// One GEMM through cuBLASLt, with the algorithm chosen once per shape (cuBLASLt's heuristic, timed among its candidates
    /// when <see cref="TuneCandidates"/> &gt; 1) and cached
    /// (optionally a strided batch: <paramref name="batchCount"/> &gt; 1). The result goes to <paramref name="d"/> when it is
    /// given (D = alpha·op(A)·op(B) + beta·C, C left as it was: a residual add without a copy), else over C.
    /// </summary>
    public void GemmLt(bool transA, bool transB, int m, int n, int k,
        float alpha, ulong a, ElementType aType, int lda, ulong b, ElementType bType, int ldb,
        float beta, ulong c, ElementType cType, int ldc,
        int batchCount = 1, long strideA = 0, long strideB = 0, long strideC = 0, ulong d = 0)
    {
        CheckShape(transA, transB, m, n, k, lda, ldb, ldc);
        _device.MakeCurrent();
        var key = Key(transA, transB, m, n, k, aType, bType, cType, lda, ldb, ldc, batchCount, strideA, strideB, strideC);
        if (!_ltPlans.TryGetValue(key, out var plan))
        {
            plan = CreatePlan(key, new LtOperands(alpha, a, b, beta, c, d))!;
            _ltPlans[key] = plan;
        }
        Matmul(plan, plan.Algo, alpha, a, b, beta, c, d).Check();
    }

    /// <summary>
    /// How many of cuBLASLt's heuristic candidates a GEMM shape seen for the first time runs and times before it keeps the
    /// fastest (1, the default: the heuristic's first choice, untimed). Timing runs the product on the call's own operands a
    /// few times per candidate; where the output is also an input (beta ≠ 0 without a separate D), the runs write to a
    /// temporary copy-sized buffer instead, or, above <see cref="TuneScratchLimitBytes"/>, the shape keeps the first choice.
    /// </summary>
    public int TuneCandidates
    {
        get;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            field = value;
        }
    } = 1;

    /// <summary>The largest temporary output (bytes) that timing an accumulating GEMM may allocate.</summary>
    public long TuneScratchLimitBytes { get; set; } = 64L << 20;

    /// <summary>Host time spent making cuBLASLt plans for shapes seen for the first time: the heuristic's query and, with
    /// <see cref="TuneCandidates"/> above 1, timing the candidates unless <see cref="Choices"/> remembers the shape (from an idle
    /// stream: the work queued before is not counted).</summary>
    public TimeSpan PlanningTime => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _planningTicks));

    private long _planningTicks;

    /// <summary>
    /// Choices of earlier runs (<see cref="GemmChoices"/>): a shape found there takes its remembered candidate without timing;
    /// a shape timed here is added (the owner saves the file). Null: every shape is timed (with <see cref="TuneCandidates"/> above 1).
    /// </summary>
    public GemmChoices? Choices { get; init; }

    /// <summary>The context a <see cref="GemmChoices"/> file must match for this device and library: the GPU's name, cuBLASLt's
    /// version and the candidate count.</summary>
    public static string ChoicesContext(DeviceProperties properties, int candidates)
    {
        ArgumentNullException.ThrowIfNull(properties);
        return $"{properties.Name}; sm_{properties.ComputeMajor}{properties.ComputeMinor}; cuBLASLt {CublasLtVersion}; {candidates} candidates";
    }

    /// <summary>Everything that makes a plan's shape: sizes, transposes, element types, leading dimensions, batch and strides.</summary>
    internal static string Describe(LtKey k)
        => $"{Short(k)} {k.AType}/{k.BType}/{k.CType} ld {k.Lda},{k.Ldb},{k.Ldc}" + (k.Batch > 1 ? $" strides {k.StrideA},{k.StrideB},{k.StrideC}" : "");

    private static string Short(LtKey k) => $"{k.M}x{k.N}x{k.K}{(k.Batch > 1 ? $" batch {k.Batch}" : "")} {(k.TransA ? "T" : "N")}{(k.TransB ? "T" : "N")}";

    /// <summary>One line per tuned shape: the candidates' times and the choice (for <c>profile</c> and logs).</summary>
    public IReadOnlyList<string> TuneLog => _tuneLog;

    private readonly List<string> _tuneLog = [];

    private cublasStatus_t Matmul(LtPlan plan, ulong* algo, float alpha, ulong a, ulong b, float beta, ulong c, ulong d)
        => CublasLt.cublasLtMatmul(_cublasLt, plan.Desc, &alpha, b, plan.LayoutA, a, plan.LayoutB, &beta, c, plan.LayoutC, d == 0 ? c : d, plan.LayoutC,
            algo, _workspace.Pointer, (nuint)_workspace.Bytes, Stream.Handle);

    /// <summary>
    /// Makes the plans of the shapes <see cref="Choices"/> remembers, ahead of their first product: cuBLASLt's heuristic query
    /// (milliseconds a shape, more for the first) then runs here, e.g. on a thread of its own while the kernels load, not in the
    /// first step. A shape whose remembered candidate the heuristic no longer offers is left to its first product, which times
    /// the candidates as before, and so is one the library refuses (a hand-edited file is a cache, never an error). It stops
    /// between shapes once <paramref name="stop"/> is signalled (the caller needs the Blas: a cache grown by many models' shapes
    /// must not hold up a start), leaving the rest to their first products. Returns how many plans were made.
    /// </summary>
    public int PlanRemembered(CancellationToken stop = default)
    {
        if (Choices is null || TuneCandidates <= 1)
            return 0;
        long started = Stopwatch.GetTimestamp();
        _device.MakeCurrent();
        int planned = 0;
        foreach (var shape in Choices.Shapes)
        {
            if (stop.IsCancellationRequested)
                break;
            if (!TryParseShape(shape, out var key) || _ltPlans.ContainsKey(key))
                continue;
            LtPlan? plan;
            try
            {
                plan = CreatePlan(key, call: null);
            }
            catch (CudaException)
            {
                continue; // left to its first product, which reports it if the product itself cannot run
            }
            if (plan is null)
                continue;
            if (_ltPlans.TryAdd(key, plan))
                planned++;
            else
                DestroyPlan(plan.Desc, plan.LayoutA, plan.LayoutB, plan.LayoutC);
        }
        AheadPlanningTime += Stopwatch.GetElapsedTime(started);
        AheadPlans += planned;
        return planned;
    }

    /// <summary>Host time <see cref="PlanRemembered"/> took (not part of <see cref="PlanningTime"/>).</summary>
    public TimeSpan AheadPlanningTime { get; private set; }

    /// <summary>Plans <see cref="PlanRemembered"/> made.</summary>
    public int AheadPlans { get; private set; }

    /// <summary>A product's key. A single product's strides are not part of it: cuBLASLt reads them only for a batch, and
    /// <see cref="Describe"/> leaves them out, so a shape remembered by its description finds its plan.</summary>
    internal static LtKey Key(bool transA, bool transB, int m, int n, int k, ElementType aType, ElementType bType, ElementType cType,
        int lda, int ldb, int ldc, int batchCount, long strideA, long strideB, long strideC)
        => batchCount == 1
            ? new(transA, transB, m, n, k, aType, bType, cType, lda, ldb, ldc, 1, 0, 0, 0)
            : new(transA, transB, m, n, k, aType, bType, cType, lda, ldb, ldc, batchCount, strideA, strideB, strideC);

    /// <summary>The key a <see cref="Describe"/>d shape was made from; false for text of another form.</summary>
    internal static bool TryParseShape(string shape, out LtKey key)
    {
        key = default;
        var match = ShapePattern().Match(shape);
        if (!match.Success)
            return false;
        var numbers = new long[16];
        foreach (int group in (int[])[1, 2, 3, 4, 10, 11, 12, 13, 14, 15])
        {
            var text = match.Groups[group];
            if (text.Success && !long.TryParse(text.ValueSpan, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out numbers[group]))
                return false;
        }
        int batch = match.Groups[4].Success ? (int)Math.Min(numbers[4], int.MaxValue) : 1;
        static bool Element(string name, out ElementType type) => Enum.TryParse(name, out type) && Enum.IsDefined(type) && name == type.ToString();
        if (!Element(match.Groups[7].Value, out var aType) || !Element(match.Groups[8].Value, out var bType) || !Element(match.Groups[9].Value, out var cType)
            || (batch > 1) != match.Groups[13].Success || ((int[])[1, 2, 3, 10, 11, 12]).Any(g => numbers[g] is < 1 or > int.MaxValue))
            return false;
        key = new LtKey(match.Groups[5].Value == "T", match.Groups[6].Value == "T", (int)numbers[1], (int)numbers[2], (int)numbers[3], aType, bType, cType,
            (int)numbers[10], (int)numbers[11], (int)numbers[12], batch, numbers[13], numbers[14], numbers[15]);
        // Sizes a product would refuse (CheckShape) are no product's.
        bool fits = ShapeProblem(key.TransA, key.TransB, key.M, key.N, key.K, key.Lda, key.Ldb, key.Ldc) is null;
        return fits && Describe(key) == shape; // one spelling of each key: "batch 1", leading zeros and the like are not a key's
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^(\d+)x(\d+)x(\d+)(?: batch (\d+))? ([NT])([NT]) (\w+)/(\w+)/(\w+) ld (\d+),(\d+),(\d+)(?: strides (\d+),(\d+),(\d+))?$", System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex ShapePattern();

    // The plan of a shape: cuBLASLt's heuristic candidates, then the remembered one, or the fastest of them timed on the call's
    // operands. Without operands (call null, planning ahead) only a remembered choice makes a plan; else null.
    private LtPlan? CreatePlan(LtKey key, LtOperands? call)
    {
        long started = Stopwatch.GetTimestamp();
        IntPtr desc = 0, layoutA = 0, layoutB = 0, layoutC = 0, pref = 0;
        try
        {
            // Column-major view: D (n × m) = op(B_row)ᵀ-as-stored · op(A_row)ᵀ-as-stored.
            CublasLt.cublasLtMatmulDescCreate(out desc, cublasComputeType_t.CUBLAS_COMPUTE_32F, cudaDataType_t.CUDA_R_32F).Check();
            int opFirst = (int)Op(key.TransB), opSecond = (int)Op(key.TransA);
            CublasLt.cublasLtMatmulDescSetAttribute(desc, cublasLtMatmulDescAttributes_t.CUBLASLT_MATMUL_DESC_TRANSA, &opFirst, sizeof(int)).Check();
            CublasLt.cublasLtMatmulDescSetAttribute(desc, cublasLtMatmulDescAttributes_t.CUBLASLT_MATMUL_DESC_TRANSB, &opSecond, sizeof(int)).Check();
            // First operand = row-major B: stored as (n × k) column-major when not transposed, else (k × n).
            layoutA = Layout(Type(key.BType), key.TransB ? key.K : key.N, key.TransB ? key.N : key.K, key.Ldb, key.Batch, key.StrideB);
            layoutB = Layout(Type(key.AType), key.TransA ? key.M : key.K, key.TransA ? key.K : key.M, key.Lda, key.Batch, key.StrideA);
            layoutC = Layout(Type(key.CType), key.N, key.M, key.Ldc, key.Batch, key.StrideC);

            CublasLt.cublasLtMatmulPreferenceCreate(out pref).Check();
            ulong workspace = (ulong)_workspace.Bytes;
            CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, cublasLtMatmulPreferenceAttributes_t.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(ulong)).Check();
            int requested = TuneCandidates;
            var results = new cublasLtMatmulHeuristicResult_t[requested];
            int found;
            fixed (cublasLtMatmulHeuristicResult_t* first = results)
                CublasLt.cublasLtMatmulAlgoGetHeuristic(_cublasLt, desc, layoutA, layoutB, layoutC, layoutC, pref, requested, first, out found).Check();
            CublasLt.cublasLtMatmulPreferenceDestroy(pref).Check();
            pref = 0;
            if (found == 0 && call is not null)
                throw new InvalidOperationException($"cuBLASLt has no algorithm for {key}");
            // On the pinned object heap: cublasLtMatmul reads it through a raw pointer on every call.
            var algo = GC.AllocateArray<ulong>(8, pinned: true);
            var plan = new LtPlan(desc, layoutA, layoutB, layoutC, algo);
            int chosen = 0;
            string shape = Describe(key);
            if (found > 1 && Choices is not null && Choices.TryGet(shape, out int remembered) && remembered < found
                && results[remembered].state == cublasStatus_t.CUBLAS_STATUS_SUCCESS)
            {
                chosen = remembered;
                lock (_tuneLog)
                    _tuneLog.Add($"{Short(key)}: #{chosen} of {found} candidates, remembered");
            }
            else if (call is null)
            {
                DestroyPlan(desc, layoutA, layoutB, layoutC, check: false); // not remembered: nothing to plan ahead
                return null;
            }
            else if (found > 1)
            {
                // Timing the candidates waits for the work queued before them: waiting first keeps that work out of the planning time.
                long waited = Stopwatch.GetTimestamp();
                Stream.Synchronize();
                started += Stopwatch.GetTimestamp() - waited;
                chosen = Fastest(key, plan, results.AsSpan(0, found), call.Value);
                Choices?.Set(shape, chosen);
            }
            for (int i = 0; i < 8; i++)
                algo[i] = results[chosen].algo[i];
            if (call is not null)
                Interlocked.Add(ref _planningTicks, Stopwatch.GetTimestamp() - started);
            return plan;
        }
        catch
        {
            // A failure part way (a layout the library refuses, the heuristic's query, the candidates' timing): free what was made.
            if (pref != 0)
                CublasLt.cublasLtMatmulPreferenceDestroy(pref);
            DestroyPlan(desc, layoutA, layoutB, layoutC, check: false);
            throw;
        }
    }

    /// <summary>
    /// Runs each candidate (one warm-up, then <c>TuneRepeats</c> timed runs) and returns the index of the fastest, or 0 (the
    /// heuristic's choice) unless the fastest is at least <c>TuneMargin</c> faster.
    /// </summary>
    private int Fastest(LtKey key, LtPlan plan, Span<cublasLtMatmulHeuristicResult_t> candidates, LtOperands call)
    {
        const int TuneRepeats = 3;
        const float TuneMargin = 0.03f;
        DeviceBuffer<byte>? scratch = null;
        ulong d = call.D;
        if (call.Beta != 0f && (d == 0 || d == call.C))
        {
            // Accumulating in place: time into a temporary D so that C is read, never changed.
            long bytes = (long)(key.Batch > 1 ? key.StrideC * (key.Batch - 1) : 0) * ElementSize(key.CType) + (long)key.Ldc * key.M * ElementSize(key.CType);
            if (bytes > TuneScratchLimitBytes)
                return 0;
            scratch = _device.Allocate<byte>(bytes, "cuBLASLt tuning output");
            d = scratch.Pointer;
        }
        try
        {
            using var start = new CudaEvent(_device);
            using var end = new CudaEvent(_device);
            int best = 0;
            float bestMs = float.PositiveInfinity, firstMs = float.PositiveInfinity;
            var times = new List<string>(candidates.Length);
            var algo = stackalloc ulong[8];
            for (int i = 0; i < candidates.Length; i++)
            {
                for (int j = 0; j < 8; j++)
                    algo[j] = candidates[i].algo[j];
                if (candidates[i].state != cublasStatus_t.CUBLAS_STATUS_SUCCESS
                    || Matmul(plan, algo, call.Alpha, call.A, call.B, call.Beta, call.C, d) != cublasStatus_t.CUBLAS_STATUS_SUCCESS)
                {
                    times.Add("-"); // a candidate this call cannot run (e.g. alignment): skipped
                    continue;
                }
                start.Record(Stream);
                for (int r = 0; r < TuneRepeats; r++)
                    Matmul(plan, algo, call.Alpha, call.A, call.B, call.Beta, call.C, d).Check();
                end.Record(Stream);
                float ms = CudaEvent.ElapsedMilliseconds(start, end) / TuneRepeats;
                times.Add(ms.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture));
                if (i == 0)
                    firstMs = ms;
                if (ms < bestMs)
                {
                    bestMs = ms;
                    best = i;
                }
            }
            // The heuristic's first choice stays unless another is clearly faster: single timings of a product inside a
            // larger step differ by a percent or two.
            if (best != 0 && firstMs < float.PositiveInfinity && bestMs > firstMs * (1 - TuneMargin))
                best = 0;
            lock (_tuneLog)
                _tuneLog.Add($"{Short(key)}: candidates [{string.Join(", ", times)}] ms, chose #{best}");
            return best;
        }
        finally
        {
            scratch?.Dispose();
        }
    }

    private static int ElementSize(ElementType type) => type == ElementType.F32 ? 4 : 2;

    private static IntPtr Layout(cudaDataType_t type, int rows, int cols, int ld, int batch, long stride)
    {
        CublasLt.cublasLtMatrixLayoutCreate(out IntPtr layout, type, (ulong)rows, (ulong)cols, ld).Check();
        if (batch > 1)
        {
            try
            {
                CublasLt.cublasLtMatrixLayoutSetAttribute(layout, cublasLtMatrixLayoutAttribute_t.CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(int)).Check();
                CublasLt.cublasLtMatrixLayoutSetAttribute(layout, cublasLtMatrixLayoutAttribute_t.CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(long)).Check();
            }
            catch
            {
                CublasLt.cublasLtMatrixLayoutDestroy(layout);
                throw;
            }
        }
        return layout;
    }

    private static void CheckShape(bool transA, bool transB, int m, int n, int k, int lda, int ldb, int ldc)
    {
        if (ShapeProblem(transA, transB, m, n, k, lda, ldb, ldc) is { } problem)
            throw new ArgumentException(problem);
    }

    // What makes a product's sizes unusable, or null.
    private static string? ShapeProblem(bool transA, bool transB, int m, int n, int k, int lda, int ldb, int ldc)
    {
        if (m <= 0 || n <= 0 || k <= 0)
            return $"GEMM sizes must be positive: m={m}, n={n}, k={k}.";
        int needA = transA ? m : k, needB = transB ? k : n;
        return lda < needA || ldb < needB || ldc < n
            ? $"GEMM leading dimensions too small: lda={lda} (≥ {needA}), ldb={ldb} (≥ {needB}), ldc={ldc} (≥ {n})."
            : null;
    }

    private static cublasOperation_t Op(bool transpose) => transpose ? cublasOperation_t.CUBLAS_OP_T : cublasOperation_t.CUBLAS_OP_N;

    private static cudaDataType_t Type(ElementType type) => type switch
    {
        ElementType.F32 => cudaDataType_t.CUDA_R_32F,
        ElementType.Bf16 => cudaDataType_t.CUDA_R_16BF,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown element type"),
    };

    public void Dispose()
    {
        if (_cublas == IntPtr.Zero)
            return;
        _device.MakeCurrent();
        foreach (var plan in _ltPlans.Values)
            DestroyPlan(plan.Desc, plan.LayoutA, plan.LayoutB, plan.LayoutC);
        _ltPlans.Clear();
        CublasLt.cublasLtDestroy(_cublasLt).Check();
        Cublas.cublasDestroy_v2(_cublas).Check();
        _cublas = IntPtr.Zero;
        _workspace.Dispose();
    }

    // Frees a plan's descriptors (those made: a handle of 0 was not). Without check, on a failure's path, statuses are ignored so
    // that the failure itself is what the caller sees.
    private static void DestroyPlan(IntPtr desc, IntPtr layoutA, IntPtr layoutB, IntPtr layoutC, bool check = true)
    {
        foreach (var layout in (IntPtr[])[layoutA, layoutB, layoutC])
        {
            if (layout == 0)
                continue;
            var status = CublasLt.cublasLtMatrixLayoutDestroy(layout);
            if (check)
                status.Check("cublasLtMatrixLayoutDestroy");
        }
        if (desc != 0)
        {
            var status = CublasLt.cublasLtMatmulDescDestroy(desc);
            if (check)
                status.Check("cublasLtMatmulDescDestroy");
        }
    }

    private readonly record struct LtOperands(float Alpha, ulong A, ulong B, float Beta, ulong C, ulong D);

    internal readonly record struct LtKey(bool TransA, bool TransB, int M, int N, int K, ElementType AType, ElementType BType, ElementType CType,
        int Lda, int Ldb, int Ldc, int Batch, long StrideA, long StrideB, long StrideC);

    private sealed class LtPlan(IntPtr desc, IntPtr layoutA, IntPtr layoutB, IntPtr layoutC, ulong[] algo)
    {
        private readonly ulong[] _algo = algo;

        public IntPtr Desc { get; } = desc;

        public IntPtr LayoutA { get; } = layoutA;

        public IntPtr LayoutB { get; } = layoutB;

        public IntPtr LayoutC { get; } = layoutC;

        /// <summary>The chosen algorithm (64 bytes, pinned, so the pointer stays valid).</summary>
        public ulong* Algo => (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_algo));
    }
}

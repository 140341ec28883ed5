using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// Every device buffer one micro-batch of B rows × T tokens needs, sized once from the shape and allocated up front: what the
/// forward keeps for the backward (per layer), the chunked head's scratch, and the backward's scratch. N = B·T tokens, C the
/// width, H query and KV key/value heads of D, F the MLP's hidden width (c_fc has F or, gated, 2F rows).
/// Kept per layer (bf16 unless noted): the layer output x, the mixed input m (not with <see cref="MlpGemm"/>, below), q [N, C],
/// k and v [N, KV·D], the attention output o, x_mid = m + attention, the MLP activation s [N, F], and for GELU and SwiGLU their
/// pre-activation u [N, F or 2F] (relu² needs only s: its derivative is 2·sqrt(s)); fp32 rstd, gate and lse vectors. The normed
/// input h1 = norm(m) is recomputed from the kept rstd in the backward instead of stored (one scratch buffer); so is
/// h2 = norm(x_mid) on the cuBLAS MLP path, while with <see cref="MlpGemm"/> h2 never exists (its GEMMs scale rows by rstd).
/// With <see cref="MlpGemm"/> the MLP's hidden gradient also replaces s in place (no [N, F] scratch), and m is not kept either
/// (<see cref="MixKept"/> false: the norm-and-mix backward recomputes it from x and x0): that memory keeps h1 of every layer
/// instead (<see cref="H1"/>), so nothing is recomputed. Rows wider than <see cref="RmsNorm.FusedBackwardMaxWidth"/> keep m,
/// and h1 of the first F/C layers.
/// <see cref="EstimateBytes"/> sizes the same buffers without allocating, so a shape that cannot fit is refused before any
/// allocation.
/// </summary>
public sealed class GpuActivations : IDisposable
{
    private readonly List<IDisposable> _owned = [];
    private readonly int _width;
    private readonly int _kvDim;
    private readonly CudaDevice? _device;

    public GpuActivations(CudaDevice device, ModelShape shape, int batch, int headChunkRows, long attentionScratchBytes, bool fusedMlp = false)
        : this(device ?? throw new ArgumentNullException(nameof(device)), shape, batch, headChunkRows, attentionScratchBytes, fusedMlp, countOnly: false)
    {
    }

    /// <summary>The bytes the buffers of this shape and batch take, without allocating them.</summary>
    public static long EstimateBytes(ModelShape shape, int batch, int headChunkRows, long attentionScratchBytes, bool fusedMlp)
        => new GpuActivations(null, shape, batch, headChunkRows, attentionScratchBytes, fusedMlp, countOnly: true).Bytes;

    private GpuActivations(CudaDevice? device, ModelShape shape, int batch, int headChunkRows, long attentionScratchBytes, bool fusedMlp, bool countOnly)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        _device = device;
        Batch = batch;
        long tokens = (long)batch * shape.SeqLen;
        if (tokens > int.MaxValue)
            throw new ArgumentException($"a micro-batch of {batch} rows × {shape.SeqLen} tokens has more than 2^31 tokens: lower --device-batch");
        Tokens = (int)tokens;
        HeadChunkRows = Math.Min(headChunkRows, Tokens);
        long n = Tokens, c = shape.ModelDim, f = shape.MlpHidden, h = shape.Heads, kv = shape.KvHeads, kvd = shape.KvDim;
        DeviceBuffer<T> A<T>(long count, string owner) where T : unmanaged
        {
            Bytes += count * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            if (countOnly)
                return null!;
            var b = _device!.Allocate<T>(count, owner);
            _owned.Add(b);
            return b;
        }

        Inputs = A<int>(n, "inputs");
        Targets = A<int>(n, "targets");
        Embedded = A<ushort>(n * c, "wte[inputs]");
        Rstd0 = A<float>(n, "rstd of the embedding norm");
        X = new DeviceBuffer<ushort>[shape.Depth + 1];
        X[0] = A<ushort>(n * c, "x0");
        M = new DeviceBuffer<ushort>[shape.Depth];
        Rstd1 = new DeviceBuffer<float>[shape.Depth];
        Q = new DeviceBuffer<ushort>[shape.Depth];
        K = new DeviceBuffer<ushort>[shape.Depth];
        V = new DeviceBuffer<ushort>[shape.Depth];
        RstdQ = new DeviceBuffer<float>[shape.Depth];
        RstdK = new DeviceBuffer<float>[shape.Depth];
        Gate = new DeviceBuffer<float>?[shape.Depth];
        O = new DeviceBuffer<ushort>[shape.Depth];
        Lse = new DeviceBuffer<float>[shape.Depth];
        XMid = new DeviceBuffer<ushort>[shape.Depth];
        Rstd2 = new DeviceBuffer<float>[shape.Depth];
        S = new DeviceBuffer<ushort>[shape.Depth];
        U = new DeviceBuffer<ushort>?[shape.Depth];
        H1 = new DeviceBuffer<ushort>?[shape.Depth];
        bool keepU = MlpActivation.KeepsPreActivation(shape.Activation);
        MixKept = !(fusedMlp && c <= RmsNorm.FusedBackwardMaxWidth);
        int keptH1 = !fusedMlp ? 0 : MixKept ? (int)Math.Min(shape.Depth, f / c) : shape.Depth;
        var mixScratch = MixKept ? null : A<ushort>(n * c, "mixed input m (scratch: recomputed in the backward)");
        for (int i = 0; i < shape.Depth; i++)
        {
            X[i + 1] = A<ushort>(n * c, $"layer {i} output");
            M[i] = MixKept ? A<ushort>(n * c, $"layer {i} mixed input") : mixScratch!;
            Rstd1[i] = A<float>(n, $"layer {i} attention norm rstd");
            Q[i] = A<ushort>(n * c, $"layer {i} q");
            K[i] = A<ushort>(n * kvd, $"layer {i} k");
            V[i] = A<ushort>(n * kvd, $"layer {i} v");
            RstdQ[i] = A<float>(n * h, $"layer {i} q norm rstd");
            RstdK[i] = A<float>(n * kv, $"layer {i} k norm rstd");
            Gate[i] = shape.HasValueEmbedding[i] ? A<float>(n * kv, $"layer {i} value gate") : null;
            O[i] = A<ushort>(n * c, $"layer {i} attention output");
            Lse[i] = A<float>(n * h, $"layer {i} attention log-sum-exp");
            XMid[i] = A<ushort>(n * c, $"layer {i} residual after attention");
            Rstd2[i] = A<float>(n, $"layer {i} MLP norm rstd");
            S[i] = A<ushort>(n * f, $"layer {i} MLP activation {shape.Activation.Name()}" + (fusedMlp ? " (its gradient in the backward)" : ""));
            U[i] = keepU ? A<ushort>(n * shape.FcRows, $"layer {i} MLP pre-activation (its gradient in the backward)") : null;
            H1[i] = i < keptH1 ? A<ushort>(n * c, $"layer {i} attention norm output h1") : null;
        }
        HFinal = A<ushort>(n * c, "final norm");
        RstdFinal = A<float>(n, "final norm rstd");
        Logits = A<ushort>((long)HeadChunkRows * shape.VocabSize, "logits chunk (bf16)");
        DLogits = A<ushort>((long)HeadChunkRows * shape.VocabSize, "logits gradient chunk");
        Losses = A<float>(n, "per-token losses");
        LossSum = A<float>(1, "loss sum");
        G = A<float>(n * c, "residual gradient");
        GBf16 = A<ushort>(n * c, "residual gradient (bf16)");
        DH = A<float>(n * c, "normed-input gradient");

        // Where a norm's output is recomputed or written for cuBLAS: not needed when every h1 is kept and h2 never exists.
        Normed = fusedMlp && keptH1 == shape.Depth ? null : A<ushort>(n * c, "normed input (recomputed h1; h2 on the cuBLAS MLP path)");
        // The cuBLAS MLP path: relu²'s pre-activation in the forward, and in the backward the gradient at s (and for relu² at
        // u, in place), never live together: one buffer.
        MlpScratch = fusedMlp ? null : A<ushort>(n * f, "MLP relu² pre-activation / gradient at s (scratch)");
        DQKV = A<ushort>(n * shape.QkvDim, "dq | dk | dv");
        _width = (int)c;
        _kvDim = (int)kvd;
        DO = A<ushort>(n * c, "attention output gradient");
        DX0 = A<float>(n * c, "x0 gradient");
        AttentionScratch = A<byte>(attentionScratchBytes, "attention backward scratch");
    }

    /// <summary>Bytes of all the buffers (what <see cref="EstimateBytes"/> returns).</summary>
    public long Bytes { get; private set; }

    public int Batch { get; }

    public int Tokens { get; }

    public int HeadChunkRows { get; }

    public DeviceBuffer<int> Inputs { get; }
    public DeviceBuffer<int> Targets { get; }
    public DeviceBuffer<ushort> Embedded { get; }
    public DeviceBuffer<float> Rstd0 { get; }
    public DeviceBuffer<ushort>[] X { get; }
    public DeviceBuffer<ushort>[] M { get; }
    public DeviceBuffer<float>[] Rstd1 { get; }
    public DeviceBuffer<ushort>[] Q { get; }
    public DeviceBuffer<ushort>[] K { get; }
    public DeviceBuffer<ushort>[] V { get; }
    public DeviceBuffer<float>[] RstdQ { get; }
    public DeviceBuffer<float>[] RstdK { get; }
    public DeviceBuffer<float>?[] Gate { get; }
    public DeviceBuffer<ushort>[] O { get; }
    public DeviceBuffer<float>[] Lse { get; }
    public DeviceBuffer<ushort>[] XMid { get; }
    public DeviceBuffer<float>[] Rstd2 { get; }
    public DeviceBuffer<ushort>[] S { get; }
    /// <summary>The MLP pre-activation per layer for the activations whose derivative needs it (GELU, SwiGLU); null for relu².</summary>
    public DeviceBuffer<ushort>?[] U { get; }
    /// <summary>Whether each layer's mixed input m is kept for the backward (else all of <see cref="M"/> is one scratch buffer).</summary>
    public bool MixKept { get; }
    /// <summary>Layers whose h1 = norm(m) is kept from the forward (not null), the others recompute it into <see cref="Normed"/>.</summary>
    public DeviceBuffer<ushort>?[] H1 { get; }
    public DeviceBuffer<ushort> HFinal { get; }
    public DeviceBuffer<float> RstdFinal { get; }
    public DeviceBuffer<ushort> Logits { get; }
    public DeviceBuffer<ushort> DLogits { get; }
    public DeviceBuffer<float> Losses { get; }
    public DeviceBuffer<float> LossSum { get; }
    public DeviceBuffer<float> G { get; }
    public DeviceBuffer<ushort> GBf16 { get; }
    public DeviceBuffer<float> DH { get; }
    public DeviceBuffer<ushort>? Normed { get; }
    /// <summary>[N, F] scratch of the cuBLAS MLP path (relu²'s pre-activation, then the gradient at s); null with <see cref="MlpGemm"/>.</summary>
    public DeviceBuffer<ushort>? MlpScratch { get; }
    /// <summary>
    /// [B·T, C + 2·KV·D] bf16: each token's row holds dq, dk, dv side by side (rows <see cref="DQKVRowStride"/> elements apart),
    /// so the backward of the three projections is one weight-gradient GEMM and one input-gradient GEMM over K = C + 2·KV·D.
    /// </summary>
    public DeviceBuffer<ushort> DQKV { get; }
    public int DQKVRowStride => _width + 2 * _kvDim;
    public ulong DQ => DQKV.Pointer;
    public ulong DK => DQKV.At(_width);
    public ulong DV => DQKV.At(_width + _kvDim);
    public DeviceBuffer<ushort> DO { get; }
    public DeviceBuffer<float> DX0 { get; }
    public DeviceBuffer<byte> AttentionScratch { get; }

    public void Dispose()
    {
        foreach (var b in _owned)
            b.Dispose();
        _owned.Clear();
    }
}

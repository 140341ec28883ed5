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
/// Memory that is dead when a scratch tensor is live holds it, so the plan costs no time:
/// <list type="bullet">
/// <item>a layer's s is dead once its MLP backward is done, so the attention backward of the same layer keeps dq | dk | dv and
/// dO there (<see cref="Dqkv"/>, <see cref="DOf"/>) when they fit (C + C + 2·KV·D ≤ F: the baseline fills it exactly);</item>
/// <item>the final norm's output lives in the residual gradient G (bf16, the same size), which the backward writes first after
/// the head is done
/// (<see cref="HFinal"/>).</item>
/// </list>
/// With <see cref="RecomputeMlp"/> (the Recompute knob), s (and u) of every layer share one buffer: the forward writes it and
/// the proj GEMM reads it at once, and the backward recomputes it with the same kernels just before the layer's MLP backward,
/// bit for bit.
/// The embedding's gathered rows (wte[inputs]) are never stored: the embedding's norm reads them from wte in its forward and
/// again in its backward (<see cref="Embedding.NormForward"/>, <see cref="Embedding.NormBackward"/>).
/// <see cref="EstimateBytes"/> sizes the same buffers without allocating, so a shape that cannot fit is refused before any
/// allocation.
/// </summary>
public sealed class GpuActivations : IDisposable
{
    private readonly List<IDisposable> _owned = [];
    private readonly int _width;
    private readonly int _kvDim;
    private readonly CudaDevice? _device;

    /// <param name="placeScratch">Whether dq | dk | dv, dO and the final norm's output may live in dead buffers (the default);
    /// false gives each its own buffer: what the placement must not change (tests compare the two).</param>
    public GpuActivations(CudaDevice device, ModelShape shape, int batch, int headChunkRows, long attentionScratchBytes, bool fusedMlp = false,
        bool recomputeMlp = false, bool placeScratch = true)
        : this(device ?? throw new ArgumentNullException(nameof(device)), shape, batch, headChunkRows, attentionScratchBytes, fusedMlp, recomputeMlp,
            countOnly: false, placeScratch)
    {
    }

    /// <summary>The bytes the buffers of this shape and batch take, without allocating them.</summary>
    public static long EstimateBytes(ModelShape shape, int batch, int headChunkRows, long attentionScratchBytes, bool fusedMlp, bool recomputeMlp = false)
        => Plan(shape, batch, headChunkRows, attentionScratchBytes, fusedMlp, recomputeMlp).Bytes;

    /// <summary>
    /// The plan of this shape and batch without a device: <see cref="Bytes"/> and where the scratch tensors go
    /// (<see cref="ScratchInActivation"/>); it holds no buffers (every buffer and view is empty).
    /// </summary>
    public static GpuActivations Plan(ModelShape shape, int batch, int headChunkRows, long attentionScratchBytes, bool fusedMlp, bool recomputeMlp = false)
        => new(null, shape, batch, headChunkRows, attentionScratchBytes, fusedMlp, recomputeMlp, countOnly: true, placeScratch: true);

    private GpuActivations(CudaDevice? device, ModelShape shape, int batch, int headChunkRows, long attentionScratchBytes, bool fusedMlp, bool recomputeMlp,
        bool countOnly, bool placeScratch)
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
        DeviceView<T> View<T>(DeviceBuffer<T> buffer) where T : unmanaged => countOnly ? default : DeviceView<T>.Of(buffer);
        // A view of `length` elements `byteOffset` bytes into a buffer A returned (nothing when only counting).
        DeviceView<T> In<T, TB>(DeviceBuffer<TB> buffer, long byteOffset, long length) where T : unmanaged where TB : unmanaged
            => countOnly ? default : DeviceView<T>.Inside<TB>(buffer, byteOffset, length);

        RecomputeMlp = recomputeMlp;
        Inputs = A<int>(n, "inputs");
        Targets = A<int>(n, "targets");
        TokenOrder = A<int>(n, "token positions grouped by id");
        TokenCursor = A<int>(shape.VocabSize, "token counts, then offsets, by id");
        // With the recompute, one s (and u) for all layers.
        var sShared = recomputeMlp ? A<ushort>(n * f, $"MLP activation {shape.Activation.Name()} (one for all layers: recomputed in the backward)") : null;
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
        var uShared = recomputeMlp && keepU ? A<ushort>(n * shape.FcRows, "MLP pre-activation (one for all layers: recomputed in the backward)") : null;
        MixKept = KeepsMix(shape, fusedMlp);
        int keptH1 = KeptH1Layers(shape, fusedMlp);
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
            // (Tested on the flag, not on null: counting only, A returns null for every buffer.)
            S[i] = recomputeMlp ? sShared! : A<ushort>(n * f, $"layer {i} MLP activation {shape.Activation.Name()}" + (fusedMlp ? " (its gradient in the backward)" : ""));
            U[i] = !keepU ? null : recomputeMlp ? uShared! : A<ushort>(n * shape.FcRows, $"layer {i} MLP pre-activation (its gradient in the backward)");
            H1[i] = i < keptH1 ? A<ushort>(n * c, $"layer {i} attention norm output h1") : null;
        }
        RstdFinal = A<float>(n, "final norm rstd");
        Logits = A<ushort>((long)HeadChunkRows * shape.VocabSize, "logits chunk (bf16)");
        DLogits = A<ushort>((long)HeadChunkRows * shape.VocabSize, "logits gradient chunk");
        Losses = A<float>(n, "per-token losses");
        LossSum = A<float>(1, "loss sum");
        G = A<ushort>(n * c, "residual gradient (bf16)");
        // Dead in G's memory from the head's end to the backward's first write of G.
        HFinal = placeScratch ? In<ushort, ushort>(G, 0, n * c) : View(A<ushort>(n * c, "final norm output"));
        DH = A<ushort>(n * c, "normed-input gradient (bf16)");

        // Where a norm's output is recomputed or written for cuBLAS: not needed when every h1 is kept and h2 never exists.
        Normed = fusedMlp && keptH1 == shape.Depth ? null : A<ushort>(n * c, "normed input (recomputed h1; h2 on the cuBLAS MLP path)");
        // The cuBLAS MLP path: relu²'s pre-activation in the forward, and in the backward the gradient at s (and for relu² at
        // u, in place), never live together: one buffer.
        MlpScratch = fusedMlp ? null : A<ushort>(n * f, "MLP relu² pre-activation / gradient at s (scratch)");
        _width = (int)c;
        _kvDim = (int)kvd;
        // dq | dk | dv and dO of a layer's attention backward: in that layer's s when both fit (s is dead after the MLP backward),
        // else one buffer each for all layers.
        long qkvElements = n * shape.QkvDim, doOffset = AlignedBytes(2 * qkvElements);
        ScratchInActivation = placeScratch && doOffset + 2 * n * c <= 2 * n * f;
        _dqkv = new DeviceView<ushort>[shape.Depth];
        _do = new DeviceView<ushort>[shape.Depth];
        var dqkv = ScratchInActivation ? null : A<ushort>(qkvElements, "dq | dk | dv");
        var dO = ScratchInActivation ? null : A<ushort>(n * c, "attention output gradient");
        for (int i = 0; i < shape.Depth; i++)
        {
            _dqkv[i] = ScratchInActivation ? In<ushort, ushort>(S[i], 0, qkvElements) : View(dqkv!);
            _do[i] = ScratchInActivation ? In<ushort, ushort>(S[i], doOffset, n * c) : View(dO!);
        }
        DX0 = A<ushort>(n * c, "x0 gradient (bf16)");
        AttentionScratch = A<byte>(attentionScratchBytes, "attention backward scratch");
    }

    /// <summary>Bytes of all the buffers (what <see cref="EstimateBytes"/> returns).</summary>
    public long Bytes { get; private set; }

    public int Batch { get; }

    public int Tokens { get; }

    public int HeadChunkRows { get; }

    public DeviceBuffer<int> Inputs { get; }
    public DeviceBuffer<int> Targets { get; }
    /// <summary>The positions 0 .. n−1 grouped by token id (<see cref="Embedding.GroupTokens"/>), for the table gradients; written
    /// only where a grouped kernel reads it (<see cref="KernelPaths.GroupsTokens"/>).</summary>
    public DeviceBuffer<int> TokenOrder { get; }
    /// <summary>Scratch of <see cref="Embedding.GroupTokens"/>, one int a vocabulary entry.</summary>
    public DeviceBuffer<int> TokenCursor { get; }
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

    /// <summary><see cref="MixKept"/> for this shape: m is recomputed where the MLP is ours and the norm-and-mix backward is one
    /// pass (the only kernel that recomputes it).</summary>
    public static bool KeepsMix(ModelShape shape, bool fusedMlp)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return !(fusedMlp && RmsNorm.FusesNormMixBackward(shape.ModelDim));
    }

    /// <summary>How many layers keep h1 (the first ones; <see cref="H1"/>): every layer where m is not kept, the first F/C where
    /// it is, none on the cuBLAS MLP path (whose scratch recomputes it).</summary>
    public static int KeptH1Layers(ModelShape shape, bool fusedMlp)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return !fusedMlp ? 0 : KeepsMix(shape, fusedMlp) ? Math.Min(shape.Depth, shape.MlpHidden / shape.ModelDim) : shape.Depth;
    }
    /// <summary>Layers whose h1 = norm(m) is kept from the forward (not null), the others recompute it into <see cref="Normed"/>.</summary>
    public DeviceBuffer<ushort>?[] H1 { get; }
    /// <summary>The final norm's output [N, C]: inside <see cref="G"/>'s memory (dead there until the backward's first op writes G).</summary>
    public DeviceView<ushort> HFinal { get; }
    public DeviceBuffer<float> RstdFinal { get; }
    public DeviceBuffer<ushort> Logits { get; }
    public DeviceBuffer<ushort> DLogits { get; }
    public DeviceBuffer<float> Losses { get; }
    public DeviceBuffer<float> LossSum { get; }
    /// <summary>The residual gradient dL/dx [N, C], bf16 between kernels as in the reference; the GEMMs of the backward read it.</summary>
    public DeviceBuffer<ushort> G { get; }
    /// <summary>The gradient at a norm's output [N, C] (the head's, h2's, h1's), bf16 as it leaves the GEMMs.</summary>
    public DeviceBuffer<ushort> DH { get; }
    public DeviceBuffer<ushort>? Normed { get; }
    /// <summary>[N, F] scratch of the cuBLAS MLP path (relu²'s pre-activation, then the gradient at s); null with <see cref="MlpGemm"/>.</summary>
    public DeviceBuffer<ushort>? MlpScratch { get; }

    /// <summary>Whether s and u are one buffer for all layers, recomputed in the backward (the Recompute knob).</summary>
    public bool RecomputeMlp { get; }

    /// <summary>Whether each layer's dq | dk | dv and dO live in that layer's s (see the class summary).</summary>
    public bool ScratchInActivation { get; }

    private readonly DeviceView<ushort>[] _dqkv;
    private readonly DeviceView<ushort>[] _do;

    /// <summary>
    /// [B·T, C + 2·KV·D] bf16 for layer <paramref name="layer"/>'s backward: each token's row holds dq, dk, dv side by side (rows
    /// <see cref="DQKVRowStride"/> elements apart), so the backward of the three projections is one weight-gradient GEMM and one
    /// input-gradient GEMM over K = C + 2·KV·D.
    /// </summary>
    public DeviceView<ushort> Dqkv(int layer) => _dqkv[layer];
    public int DQKVRowStride => _width + 2 * _kvDim;
    public ulong DQ(int layer) => _dqkv[layer].Pointer;
    public ulong DK(int layer) => _dqkv[layer].At(_width);
    public ulong DV(int layer) => _dqkv[layer].At(_width + _kvDim);

    /// <summary>The attention output gradient [N, C] of layer <paramref name="layer"/>'s backward.</summary>
    public DeviceView<ushort> DOf(int layer) => _do[layer];

    /// <summary>dL/dx0 [N, C], summed over the layers in bf16 (as in the reference), then through the embedding norm in place.</summary>
    public DeviceBuffer<ushort> DX0 { get; }
    public DeviceBuffer<byte> AttentionScratch { get; }

    /// <summary>Byte offsets inside a buffer start on 256-byte boundaries (what the kernels' vector accesses and TMA expect).</summary>
    private static long AlignedBytes(long bytes) => (bytes + 255) / 256 * 256;

    public void Dispose()
    {
        foreach (var b in _owned)
            b.Dispose();
        _owned.Clear();
    }
}

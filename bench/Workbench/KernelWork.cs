using AutoResearch.Model.Gpu;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// The work of one call of each kernel, in one place: the FLOPs of the matrix products for the kernels bound by the tensor
/// cores (held against the device's bf16 GEMM rate), or the bytes moved for the kernels bound by memory (held against its
/// device-to-device copy). Bytes count every tensor element a kernel reads or writes, once, at its stored size (a
/// read-modify-write counts twice; small tables such as the rotary cos/sin are left out); L2 hits are not subtracted, so a
/// kernel whose working set fits in L2 (the embedding tables' scatter-adds) can pass 100% of the copy. A baseline doing the
/// same op the plain way is charged the same work, so the throughput columns compare directly.
/// </summary>
public readonly record struct KernelWork(double Flops, double Bytes)
{
    private const double Bf16 = 2, F32 = 4, I32 = 4;

    /// <summary>Whether the FLOPs (rather than the bytes) measure this work.</summary>
    public bool IsCompute => Flops > 0;

    public static KernelWork Compute(double flops) => new(flops, 0);

    public static KernelWork Memory(double bytes) => new(0, bytes);

    // ---- matrix products ----

    /// <summary>C[m, n] = A[m, k]·B[k, n]: 2·m·n·k.</summary>
    public static KernelWork Gemm(long m, long n, long k) => Compute(2.0 * m * n * k);

    /// <summary>Causal sliding-window attention, forward or backward: 4·D per (query, visible key) forward, 2.5× that backward.</summary>
    public static KernelWork Attention(int batch, int seqLen, int heads, int headDim, int window, bool backward)
        => Compute(GpuGpt.AttentionFlops(batch, seqLen, heads, headDim, window, backward));

    /// <summary>
    /// One Muon shape group: five Polar Express iterations on <paramref name="count"/> matrices of rows × cols, each three
    /// GEMMs: the Gram matrix A (g × g, g the shorter side, contracted over the longer, l), A² and the update X·B (or B·X):
    /// 2g²l + 2g³ + 2g²l. The element-wise stages between them (momentum, norms, NorMuon, the update) are not counted.
    /// </summary>
    public static KernelWork MuonGroup(int rows, int cols, int count)
    {
        double g = Math.Min(rows, cols), l = Math.Max(rows, cols);
        return Compute(5.0 * count * (4 * g * g * l + 2 * g * g * g));
    }

    // ---- RMSNorm family (n rows of c) ----

    /// <summary>rmsnorm_forward: x in, y out (unless only rstd is wanted), rstd out.</summary>
    public static KernelWork RmsNormForward(long n, long c, bool writesY) => Memory(n * c * Bf16 * (writesY ? 2 : 1) + n * F32);

    /// <summary>residual_mix_rmsnorm_forward: x and x0 in; m and h out; rstd out.</summary>
    public static KernelWork ResidualMixRmsNormForward(long n, long c) => Memory(4 * n * c * Bf16 + n * F32);

    /// <summary>rmsnorm_apply: x and rstd in, y out.</summary>
    public static KernelWork RmsNormApply(long n, long c) => Memory(2 * n * c * Bf16 + n * F32);

    /// <summary>rmsnorm_backward: x, rstd and dy in (dy fp32 or bf16); dx (fp32 or bf16) written or accumulated.</summary>
    public static KernelWork RmsNormBackward(long n, long c, bool dyBf16, bool dxBf16, bool accumulate)
        => Memory(n * c * (Bf16 + (dyBf16 ? Bf16 : F32) + (dxBf16 ? Bf16 : F32) * (accumulate ? 2 : 1)) + n * F32);

    /// <summary>residual_mix_backward: g (bf16), x, x0 in; dx (bf16) out unless folded into dx0; dx0 (bf16) accumulated.</summary>
    public static KernelWork ResidualMixBackward(long n, long c, bool fold)
        => Memory(n * c * (Bf16 + 2 * Bf16 + 2 * Bf16 + (fold ? 0 : Bf16)));

    /// <summary>rmsnorm_mix_backward: dy (bf16), x, x0 (and m when kept), rstd in; g (bf16) read and written unless folded into
    /// dx0; dx0 (bf16) read and written.</summary>
    public static KernelWork RmsNormMixBackward(long n, long c, bool keptMix, bool fold)
        => Memory(n * c * (Bf16 + 2 * Bf16 + (keptMix ? Bf16 : 0) + Bf16 + (fold ? 0 : Bf16) + 2 * Bf16) + n * F32);

    // ---- attention's neighbours ----

    /// <summary>rotary_qknorm_forward on rows vectors of D: x read and written in place, rstd out.</summary>
    public static KernelWork RotaryForward(long rows, int headDim) => Memory(rows * headDim * 2 * Bf16 + rows * F32);

    /// <summary>rotary_qknorm_backward: y and rstd in, dy read (bf16, or fp32 from the flash backward's dq accumulator) and written.</summary>
    public static KernelWork RotaryBackward(long rows, int headDim, bool fromAccumulator)
        => Memory(rows * headDim * (2 * Bf16 + (fromAccumulator ? F32 : Bf16)) + rows * F32);

    /// <summary>value_gate_forward: x[:, :32], ids and ve rows in; v read and written; the gate out.</summary>
    public static KernelWork ValueGateForward(long n, int kvHeads, int headDim)
        => Memory(n * (32 * Bf16 + I32 + kvHeads * F32) + n * kvHeads * headDim * 3 * Bf16);

    /// <summary>value_gate_backward: gate, dv, ids, ve rows, x[:, :32] in; dve rows and dx[:, :32] (bf16) read and written.</summary>
    public static KernelWork ValueGateBackward(long n, int kvHeads, int headDim)
        => Memory(n * (kvHeads * F32 + I32 + 32 * Bf16 + 2 * 32 * Bf16) + n * kvHeads * headDim * (2 * Bf16 + 2 * F32));

    /// <summary>value_gate_backward_grouped: as <see cref="ValueGateBackward"/> with the order read too (dve's rows counted once
    /// per token, an upper bound: a run of equal ids reads and writes its row once).</summary>
    public static KernelWork ValueGateBackwardGrouped(long n, int kvHeads, int headDim) => Memory(ValueGateBackward(n, kvHeads, headDim).Bytes + n * I32);

    // ---- embeddings, head, activations ----

    /// <summary>embedding_forward: ids, the table's rows in; out written.</summary>
    public static KernelWork EmbeddingGather(long n, long c) => Memory(n * I32 + 2 * n * c * Bf16);

    /// <summary>embedding_backward: ids, dout (bf16) in; the table's rows read and written (fp32 atomics).</summary>
    public static KernelWork EmbeddingScatter(long n, long c) => Memory(n * I32 + n * c * (Bf16 + 2 * F32));

    /// <summary>embedding_norm_forward: ids and the table's rows in; x0 and rstd written (the rows are not).</summary>
    public static KernelWork EmbeddingNorm(long n, long c) => Memory(n * (I32 + F32) + 2 * n * c * Bf16);

    /// <summary>embedding_norm_backward: ids, rstd, the table's rows and dy (bf16) in; the table gradient's rows read and written
    /// (fp32 atomics).</summary>
    public static KernelWork EmbeddingNormBackward(long n, long c) => Memory(n * (I32 + F32) + n * c * (2 * Bf16 + 2 * F32));

    /// <summary>embedding_norm_backward_grouped: as <see cref="EmbeddingNormBackward"/> with the order read too, each table row
    /// counted once per token (an upper bound: a run of equal ids reads and writes its row once).</summary>
    public static KernelWork EmbeddingNormBackwardGrouped(long n, long c) => Memory(n * (2 * I32 + F32) + n * c * (2 * Bf16 + 2 * F32));

    /// <summary>token_count, token_offsets and token_scatter: the ids read twice, the order written, the cursor (vocab ints)
    /// zeroed, counted, read and written twice.</summary>
    public static KernelWork TokenGrouping(long n, long vocab) => Memory(3 * n * I32 + 6 * vocab * I32);

    /// <summary>softcap_ or plain_cross_entropy on rows of vocab logits: logits and targets in, losses out, dlogits out when training.</summary>
    public static KernelWork CrossEntropy(long rows, long vocab, bool gradient)
        => Memory(rows * vocab * Bf16 * (gradient ? 2 : 1) + rows * (I32 + F32));

    /// <summary>sum_f32 over count values.</summary>
    public static KernelWork Sum(long count) => Memory(count * F32);

    /// <summary>relu2/gelu forward (u in, s out) or swiglu (z = [gate | up] in, s out), n rows of hidden.</summary>
    public static KernelWork ActivationForward(bool gated, long n, long hidden) => Memory(n * hidden * ((gated ? 2 : 1) + 1) * Bf16);

    /// <summary>relu2 (s, ds in; du out), gelu (u, ds in; du out), swiglu (z, ds in; dz out, twice the width).</summary>
    public static KernelWork ActivationBackward(bool gated, long n, long hidden) => Memory(n * hidden * (gated ? 5 : 3) * Bf16);

    // ---- optimizer ----

    /// <summary>adamw_step: master, m, v read and written; the gradient read; the bf16 copy written.</summary>
    public static KernelWork AdamW(long elements) => Memory(elements * (3 * 2 * F32 + F32 + Bf16));

    /// <summary>cast_f32_to_bf16.</summary>
    public static KernelWork Cast(long count) => Memory(count * (F32 + Bf16));
}

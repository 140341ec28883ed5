using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/embedding.cu at N = B·T tokens drawn uniformly from the 8192-token vocabulary, rows of the model width:
/// <see cref="Gather"/> (embedding_forward: out = table[ids], bf16) and <see cref="Scatter"/> (embedding_backward:
/// dtable[ids] += dout, fp32 vector atomics), and the model's first step with its backward, each one pass:
/// <see cref="NormGather"/> (embedding_norm_forward: x0 = norm(table[ids]), rstd) and <see cref="NormScatter"/>
/// (embedding_norm_backward: dtable[ids] += the norm's gradient, rows gathered again), the same in grouped order,
/// <see cref="NormScatterGrouped"/> (embedding_norm_backward_grouped: a run of equal ids summed, then added once), and
/// <see cref="GroupTokens"/> (token_count, token_offsets, token_scatter: the order it reads). Checked on 4096 tokens of the same width:
/// the gather bit for bit, the others against fp64. Memory-bound; the tables (8–64 MB) mostly stay in L2. Run:
/// <c>bench --filter '*EmbeddingBenchmarks*'</c>.
/// </summary>
public class EmbeddingBenchmarks : TokenKernelBenchmark
{
    private const int CheckTokens = 4096, Vocab = BenchConfigs.VocabSize;

    private Embedding _embedding = null!;
    private ulong _ids, _table, _out, _dout, _dtable, _rstd, _order, _cursor;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "width1024", "width2048");

    private int N => B * T;

    protected override void Open() => _embedding = new Embedding(KernelFiles);

    [GlobalSetup(Target = nameof(Gather))]
    public void SetupGather() => Prepare(nameof(Gather), CheckGather, () =>
    {
        _ids = Buffers.RandomIds(N, 71, Vocab, "token ids").Pointer;
        _table = Buffers.RandomBf16((long)Vocab * C, 72, 1, "table").Pointer;
        _out = Buffers.Allocate<ushort>((long)N * C, "out").Pointer;
        return KernelWork.EmbeddingGather(N, C);
    });

    [Benchmark]
    public void Gather()
    {
        Begin();
        _embedding.Forward(_ids, _table, N, C, _out, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(Scatter))]
    public void SetupScatter() => Prepare(nameof(Scatter), CheckScatter, () =>
    {
        _ids = Buffers.RandomIds(N, 71, Vocab, "token ids").Pointer;
        _dout = Buffers.RandomBf16((long)N * C, 73, 1, "dout (bf16)").Pointer;
        _dtable = Buffers.RandomF32((long)Vocab * C, 74, 1, "dtable").Pointer;
        return KernelWork.EmbeddingScatter(N, C);
    });

    [Benchmark]
    public void Scatter()
    {
        Begin();
        _embedding.Backward(_ids, _dout, N, C, _dtable, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(NormGather))]
    public void SetupNormGather() => Prepare(nameof(NormGather), CheckNormGather, () =>
    {
        _ids = Buffers.RandomIds(N, 71, Vocab, "token ids").Pointer;
        _table = Buffers.RandomBf16((long)Vocab * C, 72, 1, "table").Pointer;
        _out = Buffers.Allocate<ushort>((long)N * C, "x0").Pointer;
        _rstd = Buffers.Allocate<float>(N, "rstd").Pointer;
        return KernelWork.EmbeddingNorm(N, C);
    });

    [Benchmark]
    public void NormGather()
    {
        Begin();
        _embedding.NormForward(_ids, _table, N, C, _out, _rstd, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(NormScatter))]
    public void SetupNormScatter() => Prepare(nameof(NormScatter), () => CheckNormScatter(grouped: false), () =>
    {
        SetupNormScatterBuffers();
        return KernelWork.EmbeddingNormBackward(N, C);
    });

    private void SetupNormScatterBuffers()
    {
        _ids = Buffers.RandomIds(N, 71, Vocab, "token ids").Pointer;
        _table = Buffers.RandomBf16((long)Vocab * C, 72, 1, "table").Pointer;
        _rstd = Buffers.RandomF32(N, 75, 1, "rstd").Pointer;
        _dout = Buffers.RandomBf16((long)N * C, 73, 1, "dy (bf16)").Pointer;
        _dtable = Buffers.RandomF32((long)Vocab * C, 74, 1, "dtable").Pointer;
    }

    [Benchmark]
    public void NormScatter()
    {
        Begin();
        _embedding.NormBackward(_ids, _table, _rstd, _dout, N, C, _dtable, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(NormScatterGrouped))]
    public void SetupNormScatterGrouped() => Prepare(nameof(NormScatterGrouped), () => CheckNormScatter(grouped: true), () =>
    {
        SetupNormScatterBuffers();
        _order = Buffers.Allocate<int>(N, "order").Pointer;
        _cursor = Buffers.Allocate<int>(Vocab, "cursor").Pointer;
        _embedding.GroupTokens(_ids, N, Vocab, _order, _cursor, Stream);
        return KernelWork.EmbeddingNormBackwardGrouped(N, C);
    });

    [Benchmark]
    public void NormScatterGrouped()
    {
        Begin();
        _embedding.NormBackward(_ids, _table, _rstd, _dout, N, C, _dtable, Stream, _order);
        End();
    }

    [GlobalSetup(Target = nameof(GroupTokens))]
    public void SetupGroupTokens() => Prepare(nameof(GroupTokens), CheckGroupTokens, () =>
    {
        _ids = Buffers.RandomIds(N, 71, Vocab, "token ids").Pointer;
        _order = Buffers.Allocate<int>(N, "order").Pointer;
        _cursor = Buffers.Allocate<int>(Vocab, "cursor").Pointer;
        return KernelWork.TokenGrouping(N, Vocab);
    });

    [Benchmark]
    public void GroupTokens()
    {
        Begin();
        _embedding.GroupTokens(_ids, N, Vocab, _order, _cursor, Stream);
        End();
    }

    private KernelCheck CheckGroupTokens()
    {
        int n = CheckTokens;
        var check = new KernelCheck("token_count, token_offsets, token_scatter", 705, $"{n} tokens, vocabulary {Vocab}");
        var r = new Random(check.Seed);
        var ids = HostRandom.Ids(r, n, Vocab);
        using var s = new DeviceScratch(Device);
        var dIds = s.Upload(ids, "ids");
        var dOrder = s.Poisoned<int>(n, "order");
        var dCursor = s.Poisoned<int>(Vocab, "cursor");
        RunForCheck(() => _embedding.GroupTokens(dIds.Pointer, n, Vocab, dOrder.Pointer, dCursor.Pointer, Stream));
        // The order against the host's stable sort: the same ids position by position, and the same positions as a set.
        var order = dOrder.ToArray();
        var expected = Enumerable.Range(0, n).OrderBy(i => ids[i]).ToArray();
        check.Compare("ids in order", order.Select(i => i >= 0 && i < n ? (float)ids[i] : float.NaN).ToArray(),
            expected.Select(i => (double)ids[i]).ToArray(), 0);
        check.Compare("positions", order.Order().Select(i => (float)i).ToArray(), expected.Order().Select(i => (double)i).ToArray(), 0);
        return check;
    }

    private KernelCheck CheckGather()
    {
        int n = CheckTokens, c = C;
        var check = new KernelCheck("embedding_forward", 701, $"{n} tokens, width {c}, vocabulary {Vocab}");
        var r = new Random(check.Seed);
        var ids = HostRandom.Ids(r, n, Vocab);
        var (tableBits, table) = HostRandom.Bf16Values(r, (long)Vocab * c);
        var expected = new double[(long)n * c];
        for (long i = 0; i < n; i++)
            Array.Copy(table, ids[i] * (long)c, expected, i * c, c);
        using var s = new DeviceScratch(Device);
        var dIds = s.Upload(ids, "ids");
        var dTable = s.Upload(tableBits, "table");
        var dOut = s.Poisoned<ushort>((long)n * c, "out");
        RunForCheck(() => _embedding.Forward(dIds.Pointer, dTable.Pointer, n, c, dOut.Pointer, Stream));
        check.CompareBf16("out", dOut.ToArray(), expected, 0);
        return check;
    }

    private KernelCheck CheckScatter()
    {
        int n = CheckTokens, c = C;
        var check = new KernelCheck("embedding_backward", 702, $"{n} tokens, width {c}, vocabulary {Vocab}");
        var r = new Random(check.Seed);
        var ids = HostRandom.Ids(r, n, Vocab);
        var (doutBits, dout) = HostRandom.Bf16Values(r, (long)n * c);
        var start = HostRandom.Floats(r, (long)Vocab * c);
        var increment = new double[(long)Vocab * c];
        for (long i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
                increment[ids[i] * (long)c + j] += dout[i * c + j];
        }
        using var s = new DeviceScratch(Device);
        var dIds = s.Upload(ids, "ids");
        var dDout = s.Upload(doutBits, "dout (bf16)");
        var dTable = s.Upload(start, "dtable");
        RunForCheck(() => _embedding.Backward(dIds.Pointer, dDout.Pointer, n, c, dTable.Pointer, Stream));
        check.CompareIncrement("dtable", dTable.ToArray(), start, increment, 1e-5);
        return check;
    }

    /// <summary>The 4096 tokens' rows gathered from the table on the host.</summary>
    private static double[] GatherRows(int[] ids, double[] table, int c)
    {
        var rows = new double[(long)ids.Length * c];
        for (long i = 0; i < ids.Length; i++)
            Array.Copy(table, ids[i] * (long)c, rows, i * c, c);
        return rows;
    }

    private KernelCheck CheckNormGather()
    {
        int n = CheckTokens, c = C;
        var check = new KernelCheck("embedding_norm_forward", 703, $"{n} tokens, width {c}, vocabulary {Vocab}");
        var r = new Random(check.Seed);
        var ids = HostRandom.Ids(r, n, Vocab);
        var (tableBits, table) = HostRandom.Bf16Values(r, (long)Vocab * c, 2);
        var (x0Ref, rstdRef) = CpuOps.RmsNorm(GatherRows(ids, table, c), n, c);
        using var s = new DeviceScratch(Device);
        var dIds = s.Upload(ids, "ids");
        var dTable = s.Upload(tableBits, "table");
        var dX0 = s.Poisoned<ushort>((long)n * c, "x0");
        var dRstd = s.Poisoned<float>(n, "rstd");
        RunForCheck(() => _embedding.NormForward(dIds.Pointer, dTable.Pointer, n, c, dX0.Pointer, dRstd.Pointer, Stream));
        check.CompareBf16("x0", dX0.ToArray(), x0Ref, 1e-2);
        check.Compare("rstd", dRstd.ToArray(), rstdRef, 1e-5);
        return check;
    }

    private KernelCheck CheckNormScatter(bool grouped)
    {
        int n = CheckTokens, c = C;
        var check = new KernelCheck(grouped ? "embedding_norm_backward_grouped" : "embedding_norm_backward", 704, $"{n} tokens, width {c}, vocabulary {Vocab}");
        var r = new Random(check.Seed);
        var ids = HostRandom.Ids(r, n, Vocab);
        var (tableBits, table) = HostRandom.Bf16Values(r, (long)Vocab * c, 2);
        var (dyBits, dy) = HostRandom.Bf16Values(r, (long)n * c);
        var start = HostRandom.Floats(r, (long)Vocab * c);
        var rows = GatherRows(ids, table, c);
        var (_, rstdRef) = CpuOps.RmsNorm(rows, n, c);
        var dRows = CpuOps.RmsNormBackward(rows, dy, n, c);
        var increment = new double[(long)Vocab * c];
        for (long i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
                increment[ids[i] * (long)c + j] += dRows[i * c + j];
        }
        using var s = new DeviceScratch(Device);
        var dIds = s.Upload(ids, "ids");
        var dTable = s.Upload(tableBits, "table");
        var dRstd = s.Upload(Array.ConvertAll(rstdRef, v => (float)v), "rstd");
        var dDy = s.Upload(dyBits, "dy (bf16)");
        var dDtable = s.Upload(start, "dtable");
        ulong order = 0;
        if (grouped)
        {
            order = s.Poisoned<int>(n, "order").Pointer;
            _embedding.GroupTokens(dIds.Pointer, n, Vocab, order, s.Allocate<int>(Vocab, "cursor").Pointer, Stream);
        }
        RunForCheck(() => _embedding.NormBackward(dIds.Pointer, dTable.Pointer, dRstd.Pointer, dDy.Pointer, n, c, dDtable.Pointer, Stream, order));
        // The kernel rounds each token's gradient to bf16 before adding it (as the model's x0 gradient is): a bf16 bound.
        check.CompareIncrement("dtable", dDtable.ToArray(), start, increment, 1e-2);
        return check;
    }
}

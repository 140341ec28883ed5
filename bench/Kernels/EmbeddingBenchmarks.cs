using AutoResearch.Bench.Workbench;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/embedding.cu at N = B·T tokens drawn uniformly from the 8192-token vocabulary, rows of the model width:
/// <see cref="Gather"/> (embedding_forward: out = table[ids], bf16) and <see cref="Scatter"/> (embedding_backward:
/// dtable[ids] += dout, fp32 vector atomics). Checked on 4096 tokens of the same width: the gather bit for bit, the scatter's
/// increment against the fp64 sum. Memory-bound; the scatter's table (16–64 MB) mostly stays in L2. Run:
/// <c>bench --filter '*EmbeddingBenchmarks*'</c>.
/// </summary>
public class EmbeddingBenchmarks : TokenKernelBenchmark
{
    private const int CheckTokens = 4096, Vocab = BenchConfigs.VocabSize;

    private Embedding _embedding = null!;
    private ulong _ids, _table, _out, _dout, _dtable;

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
}

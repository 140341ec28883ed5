using System.Collections.Concurrent;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;

namespace AutoResearch.Data.Loading;

/// <summary>
/// Batches of B rows × (T+1) tokens, best-fit packed (SPEC §4) from shards that are read in order and cycled forever
/// (the epoch counts the passes, 1 on the first). Documents are read 128 at a time and tokenized in parallel with BOS first.
/// A background producer keeps up to <c>prefetch</c> batches ready; buffers are recycled, so the steady state allocates nothing
/// per batch. Dispose stops the producer.
/// </summary>
public sealed class PackedLoader : IDisposable
{
    public const int DocumentsPerRead = 128;

    private readonly IReadOnlyList<string> _shards;
    private readonly ITokenizer _tokenizer;
    private readonly BlockingCollection<(int[] Rows, int Epoch)> _ready;
    private readonly BlockingCollection<int[]> _free = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _producer;
    private int _shardIndex;
    private IReadOnlyList<string> _documents = [];
    private int _documentIndex;
    private int _epoch = 1;

    public PackedLoader(IReadOnlyList<string> shards, ITokenizer tokenizer, int batch, int seqLen, int prefetch = 4)
    {
        ArgumentNullException.ThrowIfNull(shards);
        if (shards.Count == 0)
            throw new ArgumentException("no shards to load from: run `autoresearch prepare`", nameof(shards));
        _shards = shards;
        _tokenizer = tokenizer;
        Batch = batch;
        SeqLen = seqLen;
        _ready = new BlockingCollection<(int[], int)>(prefetch);
        for (int i = 0; i < prefetch + 2; i++)
            _free.Add(new int[batch * (seqLen + 1)]);
        var packer = new BestFitPacker(NextDocuments);
        _producer = Task.Factory.StartNew(() => Produce(packer), TaskCreationOptions.LongRunning);
    }

    public int Batch { get; }

    public int SeqLen { get; }

    /// <summary>Time the consumer spent waiting for a batch.</summary>
    public TimeSpan WaitTime { get; private set; }

    /// <summary>The next batch (rows of T+1 tokens, row-major) and the epoch it came from. Give the array back with <see cref="Return"/>.</summary>
    public (int[] Rows, int Epoch) Next()
    {
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var item = _ready.Take(_stop.Token);
            WaitTime += System.Diagnostics.Stopwatch.GetElapsedTime(start);
            return item;
        }
        catch (InvalidOperationException) when (_producer.IsFaulted)
        {
            throw new InvalidOperationException($"the data loader failed: {_producer.Exception!.InnerException!.Message}", _producer.Exception.InnerException);
        }
    }

    public void Return(int[] rows) => _free.Add(rows);

    private void Produce(BestFitPacker packer)
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var rows = _free.Take(_stop.Token);
                int rowLength = SeqLen + 1;
                for (int r = 0; r < Batch; r++)
                    packer.FillRow(rows.AsSpan(r * rowLength, rowLength));
                _ready.Add((rows, _epoch), _stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _ready.CompleteAdding();
        }
    }

    private IReadOnlyList<int[]> NextDocuments()
    {
        var batch = new List<string>(DocumentsPerRead);
        while (batch.Count < DocumentsPerRead)
        {
            if (_documentIndex >= _documents.Count)
            {
                if (_shardIndex == _shards.Count)
                {
                    _shardIndex = 0;
                    _epoch++;
                }
                _documents = ParquetShards.Read(_shards[_shardIndex++]);
                _documentIndex = 0;
            }
            batch.Add(_documents[_documentIndex++]);
        }
        return _tokenizer.EncodeBatch(batch, prependBos: true);
    }

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _producer.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
        }
        _stop.Dispose();
        _ready.Dispose();
        _free.Dispose();
    }
}

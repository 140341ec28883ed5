using System.Collections.Concurrent;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;

namespace AutoResearch.Data.Loading;

/// <summary>
/// Batches of B rows × (T+1) tokens, best-fit packed (SPEC §4) from shards that are read in order and cycled forever.
/// The epoch counts passes over the data as the packer takes documents into rows (1 during the first pass), not how far
/// ahead the tokenizing stage has read to fill the packer's buffer. A tokenizing stage encodes documents (BOS first) in parallel ahead of the
/// packer, which takes them 128 at a time; a producer keeps up to <c>prefetch</c> packed batches ready; batch buffers are
/// recycled. Dispose stops both stages. With a <see cref="ShardTokenCache"/>, a shard whose pre-tokenized file is valid is read
/// from it instead of being tokenized, and a shard that has none is tokenized as usual and its file written once the shard is
/// done (the first pass builds the cache); the batches are the same either way.
/// </summary>
public sealed class PackedLoader : IDisposable
{
    public const int DocumentsPerRead = 128;

    private readonly IReadOnlyList<string> _shards;
    private readonly ITokenizer _tokenizer;
    private readonly ShardTokenCache? _tokenCache;
    private readonly BlockingCollection<(int[] Rows, double Passes)> _ready;
    private readonly BlockingCollection<int[]> _free = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _producer;
    private readonly Task _tokenizerStage;
    private readonly BlockingCollection<int[][]> _tokenized = new(16);
    private int[][] _pending = [];
    private int _pendingIndex;
    private long _documentsPerPass; // 0 until the tokenizing stage has read every shard once
    private long _tokensPerPass;
    private volatile Exception? _failure;

    public PackedLoader(IReadOnlyList<string> shards, ITokenizer tokenizer, int batch, int seqLen, int prefetch = 4, ShardTokenCache? tokenCache = null)
    {
        ArgumentNullException.ThrowIfNull(shards);
        if (shards.Count == 0)
            throw new ArgumentException("no shards to load from: run `autoresearch prepare`", nameof(shards));
        _shards = shards;
        _tokenizer = tokenizer;
        _tokenCache = tokenCache;
        Batch = batch;
        SeqLen = seqLen;
        _ready = new BlockingCollection<(int[], double)>(prefetch);
        for (int i = 0; i < prefetch + 2; i++)
            _free.Add(new int[batch * (seqLen + 1)]);
        var packer = new BestFitPacker(NextDocuments);
        _tokenizerStage = Task.Factory.StartNew(Tokenize, TaskCreationOptions.LongRunning);
        _producer = Task.Factory.StartNew(() => Produce(packer), TaskCreationOptions.LongRunning);
    }

    public int Batch { get; }

    public int SeqLen { get; }

    /// <summary>Time the consumer spent waiting for a batch.</summary>
    public TimeSpan WaitTime { get; private set; }

    /// <summary>
    /// The next batch (rows of T+1 tokens, row-major) and its epoch: 1 + the whole passes over the data completed when it was
    /// packed. Give the array back with <see cref="Return"/>.
    /// </summary>
    public (int[] Rows, int Epoch) Next()
    {
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var (rows, passes) = _ready.Take(_stop.Token);
            WaitTime += System.Diagnostics.Stopwatch.GetElapsedTime(start);
            PassesRead = passes;
            return (rows, 1 + (int)Math.Floor(passes));
        }
        catch (InvalidOperationException) when (_failure is not null)
        {
            throw new InvalidOperationException($"the data loader failed: {_failure.Message}", _failure);
        }
    }

    public void Return(int[] rows) => _free.Add(rows);

    /// <summary>
    /// Passes over the data up to the last batch <see cref="Next"/> returned: documents taken into rows over the documents of
    /// one pass; 0 until the first pass has been read to its end (it is then below 1).
    /// </summary>
    public double PassesRead { get; private set; }

    /// <summary>Token ids (BOS included) of one pass over the data; 0 until the first pass has been read to its end.</summary>
    public long TokensPerPass => Interlocked.Read(ref _tokensPerPass);

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
                long perPass = Interlocked.Read(ref _documentsPerPass);
                _ready.Add((rows, perPass == 0 ? 0 : packer.DocumentsTaken / (double)perPass), _stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _failure ??= e;
        }
        finally
        {
            _ready.CompleteAdding();
        }
    }

    /// <summary>Documents read 128 at a time (SPEC §4) from the tokenizing stage.</summary>
    private IReadOnlyList<int[]> NextDocuments()
    {
        var batch = new List<int[]>(DocumentsPerRead);
        while (batch.Count < DocumentsPerRead)
        {
            if (_pendingIndex >= _pending.Length)
            {
                _pending = _tokenized.Take(_stop.Token);
                _pendingIndex = 0;
            }
            batch.Add(_pending[_pendingIndex++]);
        }
        return batch;
    }

    /// <summary>
    /// The tokenizing stage: shards in order, cycled forever, documents encoded (BOS first) 1024 at a time in parallel, ahead of
    /// the packer, or read from the token cache.
    /// </summary>
    private void Tokenize()
    {
        const int group = 1024;
        try
        {
            long passDocuments = 0, passTokens = 0;
            bool firstPass = true;
            while (!_stop.IsCancellationRequested)
            {
                for (int s = 0; s < _shards.Count && !_stop.IsCancellationRequested; s++)
                {
                    if (_tokenCache is not null && _tokenCache.TryRead(_shards[s], out var cached))
                    {
                        if (firstPass)
                            (passDocuments, passTokens) = (passDocuments + cached.Length, passTokens + cached.Sum(d => (long)d.Length));
                        for (int start = 0; start < cached.Length; start += group)
                            _tokenized.Add(cached[start..Math.Min(cached.Length, start + group)], _stop.Token);
                        continue;
                    }
                    var documents = ParquetShards.Read(_shards[s]);
                    var encoded = _tokenCache is null ? null : new List<int[]>(documents.Count);
                    for (int start = 0; start < documents.Count; start += group)
                    {
                        var slice = documents.Skip(start).Take(group).ToArray();
                        var ids = _tokenizer.EncodeBatch(slice, prependBos: true);
                        encoded?.AddRange(ids);
                        if (firstPass)
                            (passDocuments, passTokens) = (passDocuments + ids.Length, passTokens + ids.Sum(d => (long)d.Length));
                        _tokenized.Add(ids, _stop.Token);
                    }
                    if (encoded is not null)
                        WriteToCache(_shards[s], encoded);
                }
                if (firstPass && !_stop.IsCancellationRequested)
                {
                    // Known before any document of the second pass reaches the packer.
                    Interlocked.Exchange(ref _tokensPerPass, passTokens);
                    Interlocked.Exchange(ref _documentsPerPass, passDocuments);
                    firstPass = false;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _failure ??= e;
        }
        finally
        {
            _tokenized.CompleteAdding();
        }
    }

    /// <summary>The cache only saves time: a file that cannot be written (disk full, read-only cache) leaves the loader tokenizing.</summary>
    private void WriteToCache(string shard, List<int[]> documents)
    {
        try
        {
            _tokenCache!.Write(shard, documents);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            CacheWriteFailure ??= e;
        }
    }

    /// <summary>The first error writing a token cache file, if any (the loader went on tokenizing).</summary>
    public Exception? CacheWriteFailure { get; private set; }

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            Task.WaitAll([_producer, _tokenizerStage], TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
        }
        _tokenized.Dispose();
        _stop.Dispose();
        _ready.Dispose();
        _free.Dispose();
    }
}

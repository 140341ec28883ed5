using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace AutoResearch.Data.Tokenizer;

/// <summary>
/// Byte-level BPE in the GPT-4 style (SPEC §3): text is split into chunks by <see cref="SplitPattern"/> (matched by hand in
/// <see cref="ChunkSplitter"/> for this pattern and cl100k's, by a Regex for any other), each chunk's UTF-8
/// bytes are merged pair by pair in rank order (merges never cross chunks), and the special tokens follow the BPE ids.
/// Ranks are the ids; the first 256 need not be the bytes in order (so cl100k's ranks load too). Encoding looks an ASCII chunk
/// up as a whole token first and caches chunk → ids for the rest.
/// </summary>
public sealed class BpeTokenizer : ITokenizer
{
    /// <summary>
    /// The encoding algorithm's version: part of <see cref="TokenizerFiles.ContentHash"/>, so pre-tokenized shards are rebuilt
    /// when it changes. Raise it with any change to splitting or merging that could change the ids of some text.
    /// </summary>
    public const int EncoderVersion = 1;

    /// <summary>
    /// The split pattern of SPEC §3 (`\p{N}{1,2}`), with the possessive quantifiers written as .NET atomic groups.
    /// </summary>
    public const string SplitPattern =
        @"'(?i:[sdmt]|ll|ve|re)|(?>[^\r\n\p{L}\p{N}]?)\p{L}+|\p{N}{1,2}| ?(?>[^\s\p{L}\p{N}]+)[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

    /// <summary>The special tokens, after every BPE id; the first is BOS.</summary>
    public static IReadOnlyList<string> SpecialTokens { get; } = ["<|reserved_0|>", "<|reserved_1|>", "<|reserved_2|>", "<|reserved_3|>"];

    private const int CacheLimit = 1 << 20;
    private static readonly Encoding Latin1 = Encoding.Latin1;

    private readonly Dictionary<string, int> _ranks;          // token bytes as Latin-1 chars → rank
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly byte[][] _bytesById;
    private readonly int[] _tokenBytes;
    private readonly Regex _split;
    private readonly int _maxDigits; // > 0: the pattern is one ChunkSplitter matches by hand (the regex is then only a reference)
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private int _cacheCount; // ConcurrentDictionary.Count takes every lock: too slow (and contended) to ask per chunk

    /// <param name="mergeableRanks">Token bytes by rank (rank = id).</param>
    public BpeTokenizer(IReadOnlyList<byte[]> mergeableRanks, string splitPattern = SplitPattern)
    {
        ArgumentNullException.ThrowIfNull(mergeableRanks);
        _ranks = new Dictionary<string, int>(mergeableRanks.Count, StringComparer.Ordinal);
        for (int rank = 0; rank < mergeableRanks.Count; rank++)
        {
            if (!_ranks.TryAdd(Latin1.GetString(mergeableRanks[rank]), rank))
                throw new ArgumentException($"rank {rank}: the same bytes already have rank {_ranks[Latin1.GetString(mergeableRanks[rank])]}");
        }
        for (int b = 0; b < 256; b++)
        {
            if (!_ranks.ContainsKey(((char)b).ToString()))
                throw new ArgumentException($"the ranks have no token for the single byte 0x{b:X2}: byte-level BPE needs all 256");
        }
        _lookup = _ranks.GetAlternateLookup<ReadOnlySpan<char>>();
        MergeableCount = mergeableRanks.Count;
        _bytesById = new byte[MergeableCount + SpecialTokens.Count][];
        _tokenBytes = new int[_bytesById.Length];
        for (int i = 0; i < MergeableCount; i++)
        {
            _bytesById[i] = mergeableRanks[i];
            _tokenBytes[i] = mergeableRanks[i].Length;
        }
        for (int s = 0; s < SpecialTokens.Count; s++)
            _bytesById[MergeableCount + s] = Encoding.UTF8.GetBytes(SpecialTokens[s]); // decodes to its name; 0 bytes for the metric
        _split = new Regex(splitPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        _maxDigits = ChunkSplitter.MaxDigitsOf(splitPattern);
    }

    /// <summary>BPE tokens (bytes and merges), without the specials.</summary>
    public int MergeableCount { get; }

    public int VocabSize => _bytesById.Length;

    public int BosId => MergeableCount;

    public ReadOnlySpan<int> TokenBytes => _tokenBytes;

    /// <summary>The bytes of a BPE token (by rank).</summary>
    public ReadOnlySpan<byte> BytesOf(int id) => _bytesById[id];

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        EncodeInto(text, ids);
        return [.. ids];
    }

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="ids"/>.</summary>
    public void EncodeInto(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(ids);
        var lookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        if (_maxDigits > 0)
        {
            var span = text.AsSpan();
            for (int start = 0; start < span.Length;)
            {
                int length = ChunkSplitter.ChunkLength(span, start, _maxDigits);
                if (length == 0)
                {
                    start++; // unmatched: skipped, as the regex would
                    continue;
                }
                AppendChunk(span.Slice(start, length), ids, lookup);
                start += length;
            }
            return;
        }
        foreach (var match in _split.EnumerateMatches(text))
            AppendChunk(text.AsSpan(match.Index, match.Length), ids, lookup);
    }

    private void AppendChunk(ReadOnlySpan<char> chunk, List<int> ids, ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> lookup)
    {
        // Most chunks are one token: an ASCII chunk's chars are its bytes, so the (small, cache-resident) rank table
        // answers without the chunk cache, whose size makes every look-up a few cache misses.
        if (System.Text.Ascii.IsValid(chunk) && _lookup.TryGetValue(chunk, out int whole))
        {
            ids.Add(whole);
            return;
        }
        if (!lookup.TryGetValue(chunk, out var chunkIds))
        {
            chunkIds = EncodeChunk(chunk);
            if (Volatile.Read(ref _cacheCount) >= CacheLimit)
            {
                _cache.Clear();
                Volatile.Write(ref _cacheCount, 0);
            }
            if (lookup.TryAdd(chunk, chunkIds))
                Interlocked.Increment(ref _cacheCount);
        }
        ids.AddRange(chunkIds);
    }

    public int[][] EncodeBatch(IReadOnlyList<string> documents, bool prependBos)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var result = new int[documents.Count][];
        Parallel.For(0, documents.Count, () => new List<int>(), (i, _, buffer) =>
        {
            buffer.Clear();
            if (prependBos)
                buffer.Add(BosId);
            EncodeInto(documents[i], buffer);
            result[i] = [.. buffer];
            return buffer;
        }, _ => { });
        return result;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_bytesById.Length)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside the vocabulary of {_bytesById.Length}");
            bytes.AddRange(_bytesById[id]);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>
    /// Byte-pair merging of one chunk: repeatedly merge the adjacent pair of lowest rank (the leftmost on a tie). The rank of
    /// every adjacent pair is kept, so a merge looks up only the two pairs it changes.
    /// </summary>
    private int[] EncodeChunk(ReadOnlySpan<char> chunk)
    {
        int byteCount = Encoding.UTF8.GetByteCount(chunk);
        Span<byte> bytes = byteCount <= 256 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(chunk, bytes);
        Span<char> chars = byteCount <= 256 ? stackalloc char[byteCount] : new char[byteCount];
        for (int i = 0; i < byteCount; i++)
            chars[i] = (char)bytes[i];
        if (_lookup.TryGetValue(chars, out int whole))
            return [whole];

        // Part k is chars[starts[k]..starts[k + 1]); ranks[k] is the rank of parts k and k + 1 merged (NoMerge if none).
        int parts = byteCount;
        Span<int> starts = byteCount <= 256 ? stackalloc int[byteCount + 1] : new int[byteCount + 1];
        Span<int> ranks = byteCount <= 256 ? stackalloc int[byteCount] : new int[byteCount];
        for (int i = 0; i <= byteCount; i++)
            starts[i] = i;
        for (int k = 0; k < parts; k++)
            ranks[k] = k + 1 < parts ? RankOf(chars[starts[k]..starts[k + 2]]) : NoMerge;
        while (parts > 1)
        {
            int best = 0;
            for (int k = 1; k < parts - 1; k++)
            {
                if (ranks[k] < ranks[best])
                    best = k;
            }
            if (ranks[best] == NoMerge)
                break;
            // Parts best and best + 1 become one: drop the boundary between them and the pair rank that started at best + 1.
            starts[(best + 2)..(parts + 1)].CopyTo(starts[(best + 1)..]);
            ranks[(best + 2)..parts].CopyTo(ranks[(best + 1)..]);
            parts--;
            ranks[best] = best + 1 < parts ? RankOf(chars[starts[best]..starts[best + 2]]) : NoMerge;
            if (best > 0)
                ranks[best - 1] = RankOf(chars[starts[best - 1]..starts[best + 1]]);
        }
        var ids = new int[parts];
        for (int k = 0; k < parts; k++)
            ids[k] = _lookup[chars[starts[k]..starts[k + 1]]];
        return ids;
    }

    private const int NoMerge = int.MaxValue;

    private int RankOf(ReadOnlySpan<char> bytesAsChars) => _lookup.TryGetValue(bytesAsChars, out int rank) ? rank : NoMerge;
}

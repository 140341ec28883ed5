using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;

namespace AutoResearch.Data.Loading;

/// <summary>
/// Pre-tokenized shards: the ids of every document of a shard, as the tokenizer encodes them, in
/// <c>&lt;directory&gt;/&lt;shard file name&gt;.&lt;tokenizer hash, 16 hex&gt;.bin</c>, so that later passes and later runs read
/// ids instead of tokenizing again. A file is trusted only if everything checks out: magic and version, the tokenizer hash,
/// the shard's size and last-write time (a changed shard invalidates it), the exact length its counts imply (a truncated file
/// fails) and a SHA-256 of its payload (a corrupted one fails); otherwise the loader encodes the shard again and rewrites it.
/// Files are written to a temporary name and renamed; building one deletes the shard's files for other tokenizers.
/// </summary>
/// <remarks>
/// Layout, little-endian: the 8 ASCII bytes <c>ARTOKENS</c>; int32 version; int32 id width (2 bytes when the vocabulary fits
/// in 16 bits, else 4); the 32-byte tokenizer hash; int64 shard size; int64 shard last-write time (UTC ticks); int64 document
/// count D; int64 id count N; the 32-byte SHA-256 of the payload. Payload: D int32 document lengths (in ids, BOS not stored),
/// then the N ids of the documents one after another.
/// </remarks>
public sealed class ShardTokenCache
{
    public const int Version = 1;
    public const int HeaderBytes = 8 + 4 + 4 + 32 + 8 + 8 + 8 + 8 + 32;
    private static ReadOnlySpan<byte> Magic => "ARTOKENS"u8;

    private readonly ITokenizer _tokenizer;
    private readonly byte[] _tokenizerHash;
    private readonly int _idWidth;
    private int _reads, _writes, _rejected;

    /// <param name="directory">Where the files go (<see cref="CachePaths.Tokens"/> for the training cache).</param>
    /// <param name="tokenizer">Encodes the shards that have no valid file yet.</param>
    /// <param name="tokenizerHash">32 bytes that change whenever the tokenizer's output could: <see cref="TokenizerFiles.ContentHash"/>.</param>
    public ShardTokenCache(string directory, ITokenizer tokenizer, byte[] tokenizerHash)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(tokenizerHash);
        if (tokenizerHash.Length != 32)
            throw new ArgumentException($"the tokenizer hash must be 32 bytes (SHA-256), got {tokenizerHash.Length}", nameof(tokenizerHash));
        Directory = directory;
        _tokenizer = tokenizer;
        _tokenizerHash = (byte[])tokenizerHash.Clone();
        _idWidth = tokenizer.VocabSize <= 1 << 16 ? 2 : 4;
    }

    public string Directory { get; }

    /// <summary>Shards served from a valid file.</summary>
    public int Reads => _reads;

    /// <summary>Files written (shards encoded).</summary>
    public int Writes => _writes;

    /// <summary>Files found but not trusted (stale, truncated or corrupt) and so rebuilt.</summary>
    public int Rejected => _rejected;

    /// <summary>The cache file of a shard for this tokenizer.</summary>
    public string PathOf(string shard)
        => Path.Combine(Directory, $"{Path.GetFileName(shard)}.{Convert.ToHexStringLower(_tokenizerHash.AsSpan(0, 8))}.bin");

    /// <summary>The documents of a shard, each as its ids with BOS first: from its file when valid, else encoded and written.</summary>
    public int[][] Load(string shard)
    {
        if (TryRead(shard, out var documents))
            return documents;
        documents = _tokenizer.EncodeBatch(ParquetShards.Read(shard), prependBos: true);
        Write(shard, documents);
        return documents;
    }

    /// <summary>Reads the shard's file if it exists and every check passes; documents come with BOS first.</summary>
    public bool TryRead(string shard, out int[][] documents)
    {
        documents = [];
        var path = PathOf(shard);
        if (!File.Exists(path))
            return false;
        byte[] file;
        try
        {
            file = File.ReadAllBytes(path);
        }
        catch (IOException)
        {
            Interlocked.Increment(ref _rejected);
            return false;
        }
        var shardInfo = new FileInfo(shard);
        if (!shardInfo.Exists || !TryParse(file, shardInfo, out documents))
        {
            Interlocked.Increment(ref _rejected);
            documents = [];
            return false;
        }
        Interlocked.Increment(ref _reads);
        return true;
    }

    /// <summary>
    /// The document and id counts (BOS not included) of a shard from its file's header alone, without reading or checking the
    /// payload: cheap, for sizing. False when there is no file or its header does not match the shard and this tokenizer.
    /// </summary>
    public bool TryCount(string shard, out long documents, out long ids)
    {
        documents = ids = 0;
        var path = PathOf(shard);
        var shardInfo = new FileInfo(shard);
        if (!File.Exists(path) || !shardInfo.Exists)
            return false;
        var header = new byte[HeaderBytes];
        try
        {
            using var file = File.OpenRead(path);
            if (file.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes)
                return false;
        }
        catch (IOException)
        {
            return false;
        }
        if (!header.AsSpan(0, 8).SequenceEqual(Magic)
            || BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8)) != Version
            || BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12)) != _idWidth
            || !header.AsSpan(16, 32).SequenceEqual(_tokenizerHash)
            || BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(48)) != shardInfo.Length
            || BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(56)) != shardInfo.LastWriteTimeUtc.Ticks)
            return false;
        documents = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(64));
        ids = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(72));
        return documents >= 0 && ids >= 0;
    }

    /// <summary>
    /// Writes the ids of a shard's documents (each with BOS first, as <see cref="Load"/> returns them) to a temporary file renamed
    /// over the shard's file, and deletes the shard's files for other tokenizers.
    /// </summary>
    public void Write(string shard, IReadOnlyList<int[]> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var shardInfo = new FileInfo(shard);
        if (!shardInfo.Exists)
            throw new FileNotFoundException($"shard '{shard}' does not exist", shard);
        long ids = 0;
        foreach (var document in documents)
        {
            if (document.Length == 0 || document[0] != _tokenizer.BosId)
                throw new ArgumentException("every document must start with BOS", nameof(documents));
            ids += document.Length - 1;
        }
        long payloadBytes = 4L * documents.Count + _idWidth * ids;
        if (payloadBytes > Array.MaxLength - HeaderBytes)
            throw new IOException($"shard '{shard}' has {ids} ids: too many for one token cache file (files are read whole, under 2 GB)");
        var payload = new byte[payloadBytes];
        int at = 0;
        foreach (var document in documents)
        {
            BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(at), document.Length - 1);
            at += 4;
        }
        foreach (var document in documents)
        {
            var body = document.AsSpan(1);
            if (_idWidth == 2)
            {
                var target = MemoryMarshal.Cast<byte, ushort>(payload.AsSpan(at, body.Length * 2));
                for (int i = 0; i < body.Length; i++)
                    target[i] = (ushort)body[i];
            }
            else
            {
                MemoryMarshal.AsBytes(body).CopyTo(payload.AsSpan(at));
            }
            at += body.Length * _idWidth;
        }
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("the token cache is written little-endian");

        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), _idWidth);
        _tokenizerHash.CopyTo(header.AsSpan(16));
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(48), shardInfo.Length);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(56), shardInfo.LastWriteTimeUtc.Ticks);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(64), documents.Count);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(72), ids);
        SHA256.HashData(payload, header.AsSpan(80));

        System.IO.Directory.CreateDirectory(Directory);
        var path = PathOf(shard);
        var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                stream.Write(header);
                stream.Write(payload);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        Interlocked.Increment(ref _writes);
        foreach (var stale in System.IO.Directory.EnumerateFiles(Directory, $"{Path.GetFileName(shard)}.*.bin"))
        {
            if (stale != path && Path.GetFileName(stale).Length == Path.GetFileName(path).Length)
                File.Delete(stale);
        }
    }

    private bool TryParse(byte[] file, FileInfo shard, out int[][] documents)
    {
        documents = [];
        if (file.Length < HeaderBytes || !file.AsSpan(0, 8).SequenceEqual(Magic))
            return false;
        if (BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(8)) != Version
            || BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(12)) != _idWidth
            || !file.AsSpan(16, 32).SequenceEqual(_tokenizerHash)
            || BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(48)) != shard.Length
            || BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(56)) != shard.LastWriteTimeUtc.Ticks)
            return false;
        long count = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(64));
        long ids = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(72));
        if (count < 0 || ids < 0 || count > file.Length || ids > file.Length || HeaderBytes + 4 * count + _idWidth * ids != file.Length)
            return false;
        var payload = file.AsSpan(HeaderBytes);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(payload, hash);
        if (!hash.SequenceEqual(file.AsSpan(80, 32)))
            return false;

        var result = new int[count][];
        int bos = _tokenizer.BosId, vocab = _tokenizer.VocabSize;
        var lengths = MemoryMarshal.Cast<byte, int>(payload[..(int)(4 * count)]);
        long at = 4 * count;
        for (int d = 0; d < count; d++)
        {
            int length = lengths[d];
            if (length < 0 || at + (long)length * _idWidth > payload.Length)
                return false;
            var document = new int[length + 1];
            document[0] = bos;
            var body = document.AsSpan(1);
            if (_idWidth == 2)
            {
                var source = MemoryMarshal.Cast<byte, ushort>(payload.Slice((int)at, length * 2));
                for (int i = 0; i < length; i++)
                    body[i] = source[i];
            }
            else
            {
                MemoryMarshal.Cast<byte, int>(payload.Slice((int)at, length * 4)).CopyTo(body);
            }
            foreach (int id in body)
            {
                if ((uint)id >= (uint)vocab)
                    return false;
            }
            at += (long)length * _idWidth;
            result[d] = document;
        }
        if (at != payload.Length)
            return false;
        documents = result;
        return true;
    }
}

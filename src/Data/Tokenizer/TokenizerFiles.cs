using System.Buffers.Binary;
using System.Text;

namespace AutoResearch.Data.Tokenizer;

/// <summary>
/// The tokenizer on disk (SPEC §3), in a folder: <c>tokenizer.tiktoken</c> — one line per BPE token, the base64 of its bytes,
/// a space and its rank, as Python's tiktoken loads it — and <c>token_bytes.bin</c>, the UTF-8 length of every id (0 for the
/// special tokens) as int32 little-endian. Both are written to temporary names and renamed.
/// </summary>
public static class TokenizerFiles
{
    public const string RanksFile = "tokenizer.tiktoken";
    public const string TokenBytesFile = "token_bytes.bin";

    public static void Save(BpeTokenizer tokenizer, string directory)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        Directory.CreateDirectory(directory);
        var text = new StringBuilder();
        for (int rank = 0; rank < tokenizer.MergeableCount; rank++)
            text.Append(Convert.ToBase64String(tokenizer.BytesOf(rank))).Append(' ').Append(rank).Append('\n');
        var tokenBytes = new byte[tokenizer.VocabSize * 4];
        for (int id = 0; id < tokenizer.VocabSize; id++)
            BinaryPrimitives.WriteInt32LittleEndian(tokenBytes.AsSpan(id * 4), tokenizer.TokenBytes[id]);
        WriteAtomically(Path.Combine(directory, RanksFile), Encoding.ASCII.GetBytes(text.ToString()));
        WriteAtomically(Path.Combine(directory, TokenBytesFile), tokenBytes);
    }

    public static BpeTokenizer Load(string directory, string splitPattern = BpeTokenizer.SplitPattern)
    {
        var ranksPath = Path.Combine(directory, RanksFile);
        if (!File.Exists(ranksPath))
            throw new FileNotFoundException($"no tokenizer at '{ranksPath}': run `autoresearch prepare` first", ranksPath);
        return new BpeTokenizer(ReadRanks(ranksPath, File.ReadAllLines(ranksPath)), splitPattern);
    }

    /// <summary>
    /// SHA-256 of what decides the ids a loaded tokenizer gives: the ranks file's bytes, the split pattern and the encoder's
    /// <see cref="BpeTokenizer.EncoderVersion"/>. Keys the pre-tokenized shards (<see cref="Loading.ShardTokenCache"/>), so
    /// retraining the tokenizer or changing the encoder invalidates them.
    /// </summary>
    public static byte[] ContentHash(string directory, string splitPattern = BpeTokenizer.SplitPattern)
    {
        ArgumentNullException.ThrowIfNull(splitPattern);
        var ranksPath = Path.Combine(directory, RanksFile);
        if (!File.Exists(ranksPath))
            throw new FileNotFoundException($"no tokenizer at '{ranksPath}': run `autoresearch prepare` first", ranksPath);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(File.ReadAllBytes(ranksPath));
        hash.AppendData(Encoding.UTF8.GetBytes("\n" + splitPattern + "\nencoder " + BpeTokenizer.EncoderVersion.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return hash.GetHashAndReset();
    }

    /// <summary>Parses tiktoken text (base64, space, rank per line; ranks must be 0, 1, 2, ... in order).</summary>
    public static List<byte[]> ReadRanks(string sourceName, IEnumerable<string> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        var ranks = new List<byte[]>();
        int lineNumber = 0;
        foreach (var line in lines)
        {
            lineNumber++;
            if (line.Length == 0)
                continue;
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space <= 0 || !int.TryParse(line.AsSpan(space + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int rank))
                throw new InvalidDataException($"{sourceName} line {lineNumber}: expected '<base64 bytes> <rank>', got '{Shorten(line)}'");
            if (rank != ranks.Count)
                throw new InvalidDataException($"{sourceName} line {lineNumber}: rank {rank} out of order (expected {ranks.Count})");
            try
            {
                ranks.Add(Convert.FromBase64String(line[..space]));
            }
            catch (FormatException)
            {
                throw new InvalidDataException($"{sourceName} line {lineNumber}: '{Shorten(line[..space])}' is not base64");
            }
        }
        if (ranks.Count < 256)
            throw new InvalidDataException($"{sourceName}: {ranks.Count} tokens; a byte-level BPE has at least the 256 byte tokens");
        return ranks;
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "…";

    private static void WriteAtomically(string path, byte[] bytes)
    {
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }
}

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

    /// <summary>
    /// Loads the tokenizer of a folder. The ranks file has no checksum of its own (tiktoken reads it), so a damaged one is caught
    /// where it can be: malformed lines, repeated or missing byte tokens, and a disagreement with <c>token_bytes.bin</c> when
    /// that is there (a ranks file cut at a line end still parses, but is fewer tokens than the byte lengths list). A folder
    /// with the ranks file alone, as tiktoken has it, loads.
    /// </summary>
    public static BpeTokenizer Load(string directory, string splitPattern = BpeTokenizer.SplitPattern)
    {
        var ranksPath = Path.Combine(directory, RanksFile);
        if (!File.Exists(ranksPath))
            throw new FileNotFoundException($"no tokenizer at '{ranksPath}': run `autoresearch prepare` first", ranksPath);
        List<byte[]> ranks;
        try
        {
            ranks = ReadRanks(ranksPath, File.ReadAllLines(ranksPath));
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{e.Message}: the tokenizer file is damaged; run `autoresearch prepare` again", e);
        }
        BpeTokenizer tokenizer;
        try
        {
            tokenizer = new BpeTokenizer(ranks, splitPattern);
        }
        catch (ArgumentException e) when (e is not System.Text.RegularExpressions.RegexParseException)
        {
            throw new InvalidDataException($"{ranksPath}: {e.Message}: the tokenizer file is damaged; run `autoresearch prepare` again", e);
        }
        CheckTokenBytes(Path.Combine(directory, TokenBytesFile), ranksPath, tokenizer);
        return tokenizer;
    }

    /// <summary>The token byte lengths, when there, are those of the ranks file's tokens (both are written by one <see cref="Save"/>).</summary>
    private static void CheckTokenBytes(string tokenBytesPath, string ranksPath, BpeTokenizer tokenizer)
    {
        if (!File.Exists(tokenBytesPath))
            return;
        var bytes = File.ReadAllBytes(tokenBytesPath);
        string? mismatch = null;
        if (bytes.Length != tokenizer.VocabSize * 4)
        {
            mismatch = $"it holds {bytes.Length} bytes, the lengths of {bytes.Length / 4.0:0.##} tokens, but the ranks give {tokenizer.VocabSize} tokens";
        }
        else
        {
            for (int id = 0; id < tokenizer.VocabSize && mismatch is null; id++)
            {
                int length = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(id * 4));
                if (length != tokenizer.TokenBytes[id])
                    mismatch = $"token {id} is {length} bytes long there and {tokenizer.TokenBytes[id]} in the ranks";
            }
        }
        if (mismatch is not null)
            throw new InvalidDataException($"'{tokenBytesPath}' does not match '{ranksPath}' ({mismatch}): one of them is damaged, "
                + "or they come from different prepares; run `autoresearch prepare` again");
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

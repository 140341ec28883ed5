namespace AutoResearch.Data.Tokenizer;

/// <summary>
/// What the loader, the metric and the CLI need of a tokenizer (SPEC §3). The byte-level BPE
/// implements it; tests may use small fakes.
/// </summary>
public interface ITokenizer
{
    /// <summary>Total ids including the special tokens (8192 for the baseline).</summary>
    int VocabSize { get; }

    /// <summary>Id of the BOS token (<c>&lt;|reserved_0|&gt;</c>), prepended to every document.</summary>
    int BosId { get; }

    /// <summary>For every id, the UTF-8 length of its bytes; 0 for special tokens (SPEC §3, §8).</summary>
    ReadOnlySpan<int> TokenBytes { get; }

    /// <summary>Encodes one text (no BOS added).</summary>
    int[] Encode(string text);

    /// <summary>Encodes many documents in parallel, each with BOS prepended when <paramref name="prependBos"/> is set.</summary>
    int[][] EncodeBatch(IReadOnlyList<string> documents, bool prependBos);

    /// <summary>Decodes ids back to text (invalid UTF-8 sequences become U+FFFD).</summary>
    string Decode(ReadOnlySpan<int> ids);
}

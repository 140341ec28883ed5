using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Tokenizer;
using TiktokenTokenizer = Microsoft.ML.Tokenizers.TiktokenTokenizer;
using Xunit;

namespace AutoResearch.Data.Tests.Tokenizer;

public class BpeTokenizerTests
{
    private static readonly Lazy<BpeTokenizer> Trained = new(() =>
    {
        var docs = CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample()).Take(40).ToList();
        return BpeTrainer.Train(docs, vocabSize: 1024);
    });

    private static string[] Chunks(string text) => Regex.Matches(text, BpeTokenizer.SplitPattern).Select(m => m.Value).ToArray();

    [Fact]
    public void Split_pattern_keeps_contractions_letters_digit_pairs_and_punctuation_runs()
    {
        Assert.Equal(["Hello", " world", "!", " Numbers", ":", " ", "12", "3", ".", " Unicode", ":", " 你好"], Chunks("Hello world! Numbers: 123. Unicode: 你好"));
        Assert.Equal(["don", "'t", " we", "'LL"], Chunks("don't we'LL"));
        Assert.Equal(["12", "34", "5"], Chunks("12345"));
        // The punctuation run takes its trailing newlines; whitespace before a word leaves one space for it.
        Assert.Equal(["a", " ?!\n\n", "b"], Chunks("a ?!\n\nb"));
        Assert.Equal(["x", "  ", " y"], Chunks("x   y"));
    }

    [Fact]
    public void Training_merges_the_most_frequent_pair_first()
    {
        // "aaaa" holds (a, a) three times: it becomes 256; then the word is [256, 256] and (256, 256) becomes 257.
        var tokenizer = BpeTrainer.Train(["aaaa"], vocabSize: 256 + 4 + 2);
        Assert.Equal("aa", Encoding.UTF8.GetString(tokenizer.BytesOf(256)));
        Assert.Equal("aaaa", Encoding.UTF8.GetString(tokenizer.BytesOf(257)));
        Assert.Equal([257], tokenizer.Encode("aaaa"));
        Assert.Equal([256, 'a'], tokenizer.Encode("aaa"));
        Assert.Equal(262, tokenizer.VocabSize);
        Assert.Equal(258, tokenizer.BosId);
        Assert.Equal(0, tokenizer.TokenBytes[258]);
        Assert.Equal(4, tokenizer.TokenBytes[257]);
    }

    [Fact]
    public void Too_little_text_for_the_vocabulary_is_a_clear_error()
    {
        var e = Assert.Throws<InvalidOperationException>(() => BpeTrainer.Train(["ab"], vocabSize: 300));
        Assert.Contains("too few distinct pairs", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Trained_tokenizer_round_trips_the_spec_example_and_random_unicode()
    {
        var tokenizer = Trained.Value;
        const string example = "Hello world! Numbers: 123. Unicode: 你好";
        Assert.Equal(example, tokenizer.Decode(tokenizer.Encode(example)));
        var r = new Random(77);
        string[] pieces = ["\r\n", "\n", "\r", " ", "e\u0301", "👩‍👩‍👧", "\U0001F600", "1234567890123", "ß", "Ω", "\u200d", "\t", "'s", "𝕏", "中文"];
        for (int n = 0; n < 300; n++)
        {
            var s = new StringBuilder();
            int length = r.Next(1, 40);
            for (int i = 0; i < length; i++)
            {
                if (r.Next(3) == 0)
                {
                    s.Append(pieces[r.Next(pieces.Length)]);
                }
                else
                {
                    // Any scalar value of any plane (surrogate code points are not text).
                    int cp;
                    do
                        cp = r.Next(1, 0x110000);
                    while (cp is >= 0xD800 and <= 0xDFFF);
                    s.Append(char.ConvertFromUtf32(cp));
                }
            }
            var text = s.ToString();
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        }
    }

    [Fact]
    public void Batch_encoding_prepends_bos_and_matches_single_encoding()
    {
        var tokenizer = Trained.Value;
        string[] docs = ["first document", "", "third\nwith lines"];
        var batch = tokenizer.EncodeBatch(docs, prependBos: true);
        for (int i = 0; i < docs.Length; i++)
            Assert.Equal([tokenizer.BosId, .. tokenizer.Encode(docs[i])], batch[i]);
    }

    [Fact]
    public void Save_and_load_round_trip_and_malformed_files_name_the_line()
    {
        var tokenizer = Trained.Value;
        var dir = Path.Combine(Path.GetTempPath(), $"autoresearch-tok-{Guid.NewGuid():N}");
        TokenizerFiles.Save(tokenizer, dir);
        var loaded = TokenizerFiles.Load(dir);
        const string text = "The State of the Union is strong, 2018.";
        Assert.Equal(tokenizer.Encode(text), loaded.Encode(text));
        Assert.Equal(tokenizer.TokenBytes.ToArray(), loaded.TokenBytes.ToArray());
        var lines = File.ReadAllLines(Path.Combine(dir, TokenizerFiles.RanksFile));
        lines[300] = "not-base64!! 300";
        File.WriteAllLines(Path.Combine(dir, TokenizerFiles.RanksFile), lines);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerFiles.Load(dir));
        Assert.Contains("line 301", e.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<FileNotFoundException>(() => TokenizerFiles.Load(Path.Combine(dir, "nope")));
        Assert.Contains("autoresearch prepare", missing.Message, StringComparison.Ordinal);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_ranks_file_cut_at_a_line_end_or_a_damaged_token_bytes_file_is_refused_naming_the_files()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"autoresearch-tok-{Guid.NewGuid():N}");
        try
        {
            TokenizerFiles.Save(Trained.Value, dir);
            var ranksPath = Path.Combine(dir, TokenizerFiles.RanksFile);
            var tokenBytesPath = Path.Combine(dir, TokenizerFiles.TokenBytesFile);
            var lines = File.ReadAllLines(ranksPath);
            var tokenBytes = File.ReadAllBytes(tokenBytesPath);

            // Still well-formed: only the byte lengths show that tokens are missing.
            File.WriteAllLines(ranksPath, lines[..^10]);
            var e = Assert.Throws<InvalidDataException>(() => TokenizerFiles.Load(dir));
            Assert.Contains(tokenBytesPath, e.Message, StringComparison.Ordinal);
            Assert.Contains("autoresearch prepare", e.Message, StringComparison.Ordinal);

            File.WriteAllLines(ranksPath, lines);
            var flipped = (byte[])tokenBytes.Clone();
            flipped[4 * 300] ^= 0x7;
            File.WriteAllBytes(tokenBytesPath, flipped);
            e = Assert.Throws<InvalidDataException>(() => TokenizerFiles.Load(dir));
            Assert.Contains("token 300", e.Message, StringComparison.Ordinal);

            // The same bytes twice: an error naming the file, not the constructor's bare message.
            File.WriteAllBytes(tokenBytesPath, tokenBytes);
            var repeated = (string[])lines.Clone();
            repeated[300] = $"{lines[65].Split(' ')[0]} 300";
            File.WriteAllLines(ranksPath, repeated);
            e = Assert.Throws<InvalidDataException>(() => TokenizerFiles.Load(dir));
            Assert.Contains(ranksPath, e.Message, StringComparison.Ordinal);
            Assert.Contains("autoresearch prepare", e.Message, StringComparison.Ordinal);

            // The ranks file alone (as tiktoken has it) loads.
            File.WriteAllLines(ranksPath, lines);
            File.Delete(tokenBytesPath);
            Assert.Equal(Trained.Value.VocabSize, TokenizerFiles.Load(dir).VocabSize);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>cl100k's own split pattern (digits in runs of 1–3).</summary>
    private const string Cl100kPattern =
        @"'(?i:[sdmt]|ll|ve|re)|(?>[^\r\n\p{L}\p{N}]?)\p{L}+|\p{N}{1,3}| ?(?>[^\s\p{L}\p{N}]+)[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

    [Fact]
    public void With_cl100k_ranks_our_encoder_gives_exactly_the_ids_of_Microsoft_ML_Tokenizers_on_the_whole_sample()
    {
        var dataAssembly = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Cl100kBase");
        var resource = dataAssembly.GetManifestResourceNames().Single(n => n.EndsWith("cl100k_base.tiktoken.deflate", StringComparison.Ordinal));
        using var deflate = new DeflateStream(dataAssembly.GetManifestResourceStream(resource)!, CompressionMode.Decompress);
        using var reader = new StreamReader(deflate);
        // The package's copy starts with a "Capacity: N" line and leaves the ranks implicit (one base64 token per line, in
        // rank order): put them back into the tiktoken form our loader reads.
        var lines = reader.ReadToEnd().Split('\n').Where(l => l.Length > 0 && !l.StartsWith("Capacity:", StringComparison.Ordinal))
            .Select((l, rank) => l.Contains(' ', StringComparison.Ordinal) ? l : $"{l} {rank}");
        var ranks = TokenizerFiles.ReadRanks("cl100k_base.tiktoken", lines);
        Assert.Equal(3, ChunkSplitter.MaxDigitsOf(Cl100kPattern)); // so the hand-written splitter is what is compared
        var ours = new BpeTokenizer(ranks, Cl100kPattern);
        var theirs = TiktokenTokenizer.CreateForModel("gpt-4");
        int documents = 0;
        foreach (var document in CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample()))
        {
            var expected = theirs.EncodeToIds(document);
            var actual = ours.Encode(document);
            Assert.True(expected.SequenceEqual(actual), $"document {documents} encodes differently ({actual.Length} ids vs {expected.Count})");
            documents++;
        }
        Assert.Equal(233, documents);
    }
}

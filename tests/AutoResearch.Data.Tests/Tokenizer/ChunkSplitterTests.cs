using System.Text;
using System.Text.RegularExpressions;
using AutoResearch.Data.Corpus;
using AutoResearch.Data.Tokenizer;
using Xunit;

namespace AutoResearch.Data.Tests.Tokenizer;

/// <summary>The hand-written splitter gives exactly the regex's chunks (the regex is the reference).</summary>
public class ChunkSplitterTests
{
    public static TheoryData<int> DigitRuns => [2, 3];

    private static string PatternOf(int maxDigits) => maxDigits == 2 ? BpeTokenizer.SplitPattern : ChunkSplitter.Cl100kPattern;

    private static List<(int, int)> ByRegex(Regex regex, string text)
    {
        var chunks = new List<(int, int)>();
        foreach (var match in regex.EnumerateMatches(text))
            chunks.Add((match.Index, match.Length));
        return chunks;
    }

    private static List<(int, int)> BySplitter(string text, int maxDigits)
    {
        var chunks = new List<(int, int)>();
        for (int start = 0; start < text.Length;)
        {
            int length = ChunkSplitter.ChunkLength(text, start, maxDigits);
            if (length == 0)
            {
                start++;
                continue;
            }
            chunks.Add((start, length));
            start += length;
        }
        return chunks;
    }

    private static void AssertSameChunks(Regex regex, string text, int maxDigits)
    {
        var expected = ByRegex(regex, text);
        var actual = BySplitter(text, maxDigits);
        if (!expected.SequenceEqual(actual))
        {
            var escaped = string.Concat(text.Select(c => c < 128 && !char.IsControl(c) ? c.ToString() : $"\\u{(int)c:X4}"));
            Assert.Fail($"'{escaped}': regex {string.Join(" ", expected)} vs splitter {string.Join(" ", actual)}");
        }
    }

    [Fact]
    public void The_patterns_it_matches_by_hand_are_the_spec_one_and_cl100k()
    {
        Assert.Equal(2, ChunkSplitter.MaxDigitsOf(BpeTokenizer.SplitPattern));
        Assert.Equal(3, ChunkSplitter.MaxDigitsOf(ChunkSplitter.Cl100kPattern));
        Assert.Contains(@"\p{N}{1,3}", ChunkSplitter.Cl100kPattern, StringComparison.Ordinal);
        Assert.Equal(0, ChunkSplitter.MaxDigitsOf(@"\w+|\s+"));
    }

    [Theory]
    [MemberData(nameof(DigitRuns))]
    public void Every_UTF16_unit_splits_as_the_regex_splits_it_in_every_context(int maxDigits)
    {
        var regex = new Regex(PatternOf(maxDigits), RegexOptions.Compiled | RegexOptions.CultureInvariant);
        // Contexts that reach each alternative with the unit before, after or inside it.
        string[] contexts = ["'{0}", "'{0}e x", "x'{0}l", "{0}", "{0}{0}a", " {0}b", "a{0}1", "1{0}22", "\n{0}\r\n", " {0} ", "  {0}\n\n ", "{0}'s", "?{0}!\n"];
        for (int c = 0; c <= char.MaxValue; c++)
        {
            var unit = ((char)c).ToString();
            foreach (var context in contexts)
                AssertSameChunks(regex, context.Replace("{0}", unit, StringComparison.Ordinal), maxDigits);
        }
    }

    [Theory]
    [MemberData(nameof(DigitRuns))]
    public void Random_text_splits_as_the_regex_splits_it(int maxDigits)
    {
        var regex = new Regex(PatternOf(maxDigits), RegexOptions.Compiled | RegexOptions.CultureInvariant);
        const int seed = 2026;
        var random = new Random(seed);
        string[] pieces = ["'s", "'S", "'ll", "'LL", "'Ve", "'re", "'d", "'m", "'t", "'x", "'", "''", " ", "  ", "\t", "\r", "\n", "\r\n",
            "\u00A0", "\u2028", "\u3000", "\u0085", "\v", "\f", "a", "Z", "é", "e\u0301", "ß", "ſ", "K", "中", "ǅ", "ʰ", "1", "٣", "²", "Ⅻ",
            "½", "!", "?!", ".", ",", "-", "—", "\"", "(", ")", "_", "\U0001F600", "\U0001D54F", "\uD800", "\uDC00", "\0", "x", "y", "7"];
        for (int n = 0; n < 20_000; n++)
        {
            var text = new StringBuilder();
            int length = random.Next(1, 24);
            for (int i = 0; i < length; i++)
                text.Append(pieces[random.Next(pieces.Length)]);
            AssertSameChunks(regex, text.ToString(), maxDigits);
        }
    }

    [Theory]
    [MemberData(nameof(DigitRuns))]
    public void The_whole_sample_splits_as_the_regex_splits_it(int maxDigits)
    {
        var regex = new Regex(PatternOf(maxDigits), RegexOptions.Compiled | RegexOptions.CultureInvariant);
        foreach (var document in CorpusText.ReadDocuments(CorpusText.OpenEmbeddedSample()))
            Assert.True(ByRegex(regex, document).SequenceEqual(BySplitter(document, maxDigits)), "a sample document splits differently");
    }

    [Fact]
    public void A_pattern_it_does_not_know_is_matched_by_the_regex()
    {
        var ranks = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        var words = new BpeTokenizer(ranks, @"[a-z]+|[^a-z]");
        Assert.Equal("ab, c", words.Decode(words.Encode("ab, c")));
    }
}

using System.Text;
using System.Text.RegularExpressions;

namespace AutoResearch.Data.Tokenizer;

/// <summary>
/// Learns a byte-level BPE (SPEC §3): the chunks of the training text (at most <c>maxCharacters</c> in all, each document cut
/// to its first <c>documentCap</c> characters) are counted once; then each merge joins the most frequent adjacent pair
/// (ties: the smaller pair of ids), updating only the pair counts of the chunks that contain it. Memory is bounded by the
/// number of distinct chunks, not the text.
/// </summary>
public static class BpeTrainer
{
    public static BpeTokenizer Train(IEnumerable<string> documents, int vocabSize = 8192, IProgress<double>? progress = null,
        long maxCharacters = 1_000_000_000, int documentCap = 10_000)
    {
        ArgumentNullException.ThrowIfNull(documents);
        int mergeCount = vocabSize - BpeTokenizer.SpecialTokens.Count - 256;
        if (mergeCount < 0)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, $"the vocabulary must hold the 256 bytes and {BpeTokenizer.SpecialTokens.Count} special tokens");

        // 1. Distinct chunks and their counts.
        var split = new Regex(BpeTokenizer.SplitPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var lookup = counts.GetAlternateLookup<ReadOnlySpan<char>>();
        long seen = 0;
        foreach (var document in documents)
        {
            if (seen >= maxCharacters)
                break;
            var text = document.Length > documentCap ? document[..documentCap] : document;
            if (seen + text.Length > maxCharacters)
                text = text[..(int)(maxCharacters - seen)];
            seen += text.Length;
            foreach (var match in split.EnumerateMatches(text))
            {
                var chunk = text.AsSpan(match.Index, match.Length);
                lookup[chunk] = lookup.TryGetValue(chunk, out long c) ? c + 1 : 1;
            }
        }

        // 2. Words as id sequences (ids 0..255 are the bytes), pair counts and where each pair occurs.
        var words = new List<int[]>(counts.Count);
        var weights = new List<long>(counts.Count);
        foreach (var (chunk, count) in counts)
        {
            words.Add(Encoding.UTF8.GetBytes(chunk).Select(b => (int)b).ToArray());
            weights.Add(count);
        }
        var pairCounts = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < words.Count; w++)
            AddPairs(words[w], weights[w], w, pairCounts, pairWords);
        var queue = new SortedSet<(long NegativeCount, long Pair)>();
        foreach (var (pair, count) in pairCounts)
            queue.Add((-count, pair));

        var tokens = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        for (int m = 0; m < mergeCount; m++)
        {
            if (queue.Count == 0)
                throw new InvalidOperationException($"the training text has too few distinct pairs for {vocabSize} tokens: stopped after {tokens.Count} (give it more text)");
            var (negative, pair) = queue.Min;
            queue.Remove(queue.Min);
            int a = (int)(pair >> 32), b = (int)(pair & 0xFFFFFFFF), merged = tokens.Count;
            tokens.Add([.. tokens[a], .. tokens[b]]);
            var affected = pairWords[pair].ToArray();
            foreach (var w in affected)
            {
                var word = words[w];
                if (!Contains(word, a, b))
                    continue;
                RemovePairs(word, weights[w], pairCounts, queue);
                words[w] = word = Merge(word, a, b, merged);
                AddPairs(word, weights[w], w, pairCounts, pairWords, queue);
            }
            pairWords.Remove(pair);
            pairCounts.Remove(pair);
            progress?.Report((m + 1) / (double)mergeCount);
            _ = negative;
        }
        return new BpeTokenizer(tokens);
    }

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    private static bool Contains(int[] word, int a, int b)
    {
        for (int i = 0; i + 1 < word.Length; i++)
        {
            if (word[i] == a && word[i + 1] == b)
                return true;
        }
        return false;
    }

    private static int[] Merge(int[] word, int a, int b, int merged)
    {
        var result = new List<int>(word.Length);
        for (int i = 0; i < word.Length; i++)
        {
            if (i + 1 < word.Length && word[i] == a && word[i + 1] == b)
            {
                result.Add(merged);
                i++;
            }
            else
            {
                result.Add(word[i]);
            }
        }
        return [.. result];
    }

    private static void AddPairs(int[] word, long weight, int index, Dictionary<long, long> counts, Dictionary<long, HashSet<int>> where,
        SortedSet<(long, long)>? queue = null)
    {
        for (int i = 0; i + 1 < word.Length; i++)
        {
            long key = Key(word[i], word[i + 1]);
            counts.TryGetValue(key, out long old);
            queue?.Remove((-old, key));
            counts[key] = old + weight;
            queue?.Add((-(old + weight), key));
            if (!where.TryGetValue(key, out var set))
                where[key] = set = [];
            set.Add(index);
        }
    }

    private static void RemovePairs(int[] word, long weight, Dictionary<long, long> counts, SortedSet<(long, long)> queue)
    {
        for (int i = 0; i + 1 < word.Length; i++)
        {
            long key = Key(word[i], word[i + 1]);
            if (!counts.TryGetValue(key, out long old))
                continue;
            queue.Remove((-old, key));
            long now = old - weight;
            if (now > 0)
            {
                counts[key] = now;
                queue.Add((-now, key));
            }
            else
            {
                counts.Remove(key);
            }
        }
    }
}

namespace AutoResearch.Data.Loading;

/// <summary>
/// BOS-aligned best-fit packing (SPEC §4). Tokenized documents (BOS first) wait in a buffer kept sorted by length and refilled
/// to at least <see cref="MinimumBuffered"/> documents; a row of T+1 tokens is filled from position 0 by repeatedly appending the
/// longest buffered document that fits entirely in the remaining space; when none fits, the shortest document's first
/// `remaining` tokens fill the row (the rest of it is dropped). No padding; every row starts with BOS.
/// </summary>
public sealed class BestFitPacker
{
    /// <summary>The buffer is refilled to at least this many documents before a row is packed.</summary>
    public const int MinimumBuffered = 1000;

    private readonly Func<IReadOnlyList<int[]>> _nextDocuments;
    private readonly List<int[]> _buffer = []; // sorted by length, shortest first

    /// <param name="nextDocuments">Returns the next batch of tokenized documents (each starting with BOS; 128 at a time in the loader).</param>
    public BestFitPacker(Func<IReadOnlyList<int[]>> nextDocuments) => _nextDocuments = nextDocuments;

    /// <summary>Documents taken out of the buffer into rows so far (whole, or cut to fill a row).</summary>
    public long DocumentsTaken { get; private set; }

    /// <summary>Fills <paramref name="row"/> (length T+1) completely.</summary>
    public void FillRow(Span<int> row)
    {
        Refill();
        int position = 0;
        while (position < row.Length)
        {
            int remaining = row.Length - position;
            int index = LongestAtMost(remaining);
            if (index >= 0)
            {
                var document = _buffer[index];
                _buffer.RemoveAt(index);
                DocumentsTaken++;
                document.CopyTo(row[position..]);
                position += document.Length;
            }
            else
            {
                var shortest = _buffer[0];
                _buffer.RemoveAt(0);
                DocumentsTaken++;
                shortest.AsSpan(0, remaining).CopyTo(row[position..]);
                position = row.Length;
            }
            if (_buffer.Count == 0 && position < row.Length)
                Refill();
        }
    }

    private void Refill()
    {
        while (_buffer.Count < MinimumBuffered)
        {
            var batch = _nextDocuments();
            if (batch.Count == 0)
                throw new InvalidOperationException("the document source returned an empty batch: no documents to pack");
            foreach (var document in batch)
            {
                if (document.Length == 0)
                    continue;
                int at = LongestAtMost(document.Length) + 1; // after every document of the same or smaller length
                _buffer.Insert(at, document);
            }
        }
    }

    /// <summary>Index of the last (longest) buffered document of length ≤ <paramref name="length"/>, or −1.</summary>
    private int LongestAtMost(int length)
    {
        int lo = 0, hi = _buffer.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_buffer[mid].Length <= length)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found;
    }
}

using AutoResearch.Data.Loading;
using Xunit;

namespace AutoResearch.Data.Tests;

public class BestFitPackerTests
{
    private const int Bos = -7;

    /// <summary>Documents [BOS, id, id, ...] of the given lengths, handed out 128 at a time, cycling.</summary>
    private sealed class Source(Func<int, int> lengthOf)
    {
        public int Next;

        public IReadOnlyList<int[]> Batch()
        {
            var batch = new List<int[]>();
            for (int i = 0; i < 128; i++, Next++)
            {
                var doc = new int[lengthOf(Next)];
                doc[0] = Bos;
                for (int j = 1; j < doc.Length; j++)
                    doc[j] = Next;
                batch.Add(doc);
            }
            return batch;
        }
    }

    [Fact]
    public void Documents_of_one_length_fill_each_row_whole_then_crop_one()
    {
        var source = new Source(_ => 4);
        var packer = new BestFitPacker(source.Batch);
        var row = new int[10];
        for (int r = 0; r < 5; r++)
        {
            packer.FillRow(row);
            // Two whole documents of 4, then the first 2 tokens of a third: [B a a a B b b b B c].
            Assert.Equal(Bos, row[0]);
            Assert.Equal(Bos, row[4]);
            Assert.Equal(Bos, row[8]);
            Assert.True(row[1] == row[2] && row[2] == row[3] && row[5] == row[6] && row[6] == row[7]);
            Assert.NotEqual(row[1], row[5]);
        }
    }

    [Fact]
    public void Every_row_matches_a_plain_simulation_of_best_fit_packing()
    {
        Func<int, int> length = k => 1 + (int)((k * 2654435761L) % 61);
        var source = new Source(length);
        var packer = new BestFitPacker(source.Batch);

        // The plain simulation: the buffer in arrival order; refill to ≥ 1000 before each row; longest that fits (latest
        // arrival among equals), else the shortest (earliest arrival among equals) cropped.
        var shadow = new Source(length);
        var buffer = new List<int[]>();
        const int rowLength = 65;
        var row = new int[rowLength];
        var expected = new int[rowLength];
        for (int r = 0; r < 300; r++)
        {
            while (buffer.Count < BestFitPacker.MinimumBuffered)
                buffer.AddRange(shadow.Batch());
            int pos = 0;
            while (pos < rowLength)
            {
                int remaining = rowLength - pos;
                int pick = -1;
                for (int i = 0; i < buffer.Count; i++)
                {
                    if (buffer[i].Length <= remaining && (pick < 0 || buffer[i].Length >= buffer[pick].Length))
                        pick = i;
                }
                if (pick >= 0)
                {
                    buffer[pick].CopyTo(expected, pos);
                    pos += buffer[pick].Length;
                    buffer.RemoveAt(pick);
                }
                else
                {
                    int shortest = 0;
                    for (int i = 1; i < buffer.Count; i++)
                    {
                        if (buffer[i].Length < buffer[shortest].Length)
                            shortest = i;
                    }
                    Array.Copy(buffer[shortest], 0, expected, pos, remaining);
                    pos = rowLength;
                    buffer.RemoveAt(shortest);
                }
            }
            packer.FillRow(row);
            Assert.True(expected.AsSpan().SequenceEqual(row), $"row {r} differs from the simulation");
            Assert.Equal(Bos, row[0]);
        }
    }

    [Fact]
    public void A_document_longer_than_the_row_is_cropped_to_fill_it()
    {
        var source = new Source(_ => 100);
        var packer = new BestFitPacker(source.Batch);
        var row = new int[33];
        packer.FillRow(row);
        Assert.Equal(Bos, row[0]);
        Assert.All(row[1..], t => Assert.Equal(row[1], t));
    }

    [Fact]
    public void An_empty_source_is_a_clear_error()
    {
        var packer = new BestFitPacker(() => []);
        var e = Assert.Throws<InvalidOperationException>(() => packer.FillRow(new int[8]));
        Assert.Contains("no documents", e.Message, StringComparison.Ordinal);
    }
}

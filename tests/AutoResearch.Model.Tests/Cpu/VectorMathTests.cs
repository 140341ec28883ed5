using AutoResearch.Model.Cpu;
using Xunit;

namespace AutoResearch.Model.Tests.Cpu;

/// <summary>The reference's SIMD inner loops against plain loops, at lengths that are and are not multiples of the vector width.</summary>
public class VectorMathTests
{
    private static double[] Random(Random r, int count) => Enumerable.Range(0, count).Select(_ => r.NextDouble() * 2 - 1).ToArray();

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(131)]
    public void Dot_and_axpy_agree_with_plain_loops(int length)
    {
        var r = new Random(length);
        var a = Random(r, length);
        var b = Random(r, length);
        double expected = 0;
        for (int i = 0; i < length; i++)
            expected += a[i] * b[i];
        Assert.Equal(expected, VectorMath.Dot(a, b), 1e-12);

        var y = Random(r, length);
        var plain = (double[])y.Clone();
        for (int i = 0; i < length; i++)
            plain[i] += 0.37 * a[i];
        VectorMath.Axpy(0.37, a, y);
        for (int i = 0; i < length; i++)
            Assert.Equal(plain[i], y[i], 1e-15);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(512)]
    [InlineData(515)]
    public void Four_rows_at_once_equal_four_single_rows(int length)
    {
        var r = new Random(100 + length);
        var w = Random(r, length);
        var rows = Enumerable.Range(0, 4).Select(_ => Random(r, length)).ToArray();
        var dots = new double[4];
        VectorMath.Dot4(w, rows[0], rows[1], rows[2], rows[3], dots);
        for (int k = 0; k < 4; k++)
            Assert.Equal(VectorMath.Dot(w, rows[k]), dots[k]); // the same lanes in the same order: the same bits

        var a = new[] { 0.5, -1.25, 0, 3.0 };
        var together = rows.Select(row => (double[])row.Clone()).ToArray();
        var alone = rows.Select(row => (double[])row.Clone()).ToArray();
        VectorMath.Axpy4(a[0], a[1], a[2], a[3], w, together[0], together[1], together[2], together[3]);
        for (int k = 0; k < 4; k++)
        {
            VectorMath.Axpy(a[k], w, alone[k]);
            Assert.Equal(alone[k], together[k]);
        }
    }

    [Fact]
    public void Mismatched_lengths_are_refused()
    {
        Assert.Throws<ArgumentException>(() => VectorMath.Dot(new double[3], new double[4]));
        Assert.Throws<ArgumentException>(() => VectorMath.Axpy(1, new double[3], new double[4]));
    }
}

using System.Numerics;
using System.Runtime.InteropServices;

namespace AutoResearch.Model.Cpu;

/// <summary>
/// The two inner loops of the fp64 reference, on the machine's SIMD width (<see cref="Vector{T}"/>): a dot product and
/// y += a·x. Each sums in a fixed order for a given vector width, so a run is reproducible on one machine.
/// </summary>
public static class VectorMath
{
    public static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"spans of {a.Length} and {b.Length} values");
        int width = Vector<double>.Count, i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && a.Length >= width)
        {
            var va = MemoryMarshal.Cast<double, Vector<double>>(a);
            var vb = MemoryMarshal.Cast<double, Vector<double>>(b);
            var acc = Vector<double>.Zero;
            for (int v = 0; v < va.Length; v++)
                acc += va[v] * vb[v];
            sum = Vector.Sum(acc);
            i = va.Length * width;
        }
        for (; i < a.Length; i++)
            sum += a[i] * b[i];
        return sum;
    }

    /// <summary>y += a·x.</summary>
    public static void Axpy(double a, ReadOnlySpan<double> x, Span<double> y)
    {
        if (x.Length != y.Length)
            throw new ArgumentException($"spans of {x.Length} and {y.Length} values");
        int width = Vector<double>.Count, i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= width)
        {
            var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
            var vy = MemoryMarshal.Cast<double, Vector<double>>(y);
            var va = new Vector<double>(a);
            for (int v = 0; v < vx.Length; v++)
                vy[v] += va * vx[v];
            i = vx.Length * width;
        }
        for (; i < x.Length; i++)
            y[i] += a * x[i];
    }

    /// <summary>The dots of <paramref name="w"/> with four rows at once: w is read once for the four (the matrix products' inner loop).</summary>
    public static void Dot4(ReadOnlySpan<double> w, ReadOnlySpan<double> x0, ReadOnlySpan<double> x1, ReadOnlySpan<double> x2, ReadOnlySpan<double> x3,
        Span<double> result)
    {
        int width = Vector<double>.Count, i = 0;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        if (Vector.IsHardwareAccelerated && w.Length >= width)
        {
            var vw = MemoryMarshal.Cast<double, Vector<double>>(w);
            var v0 = MemoryMarshal.Cast<double, Vector<double>>(x0);
            var v1 = MemoryMarshal.Cast<double, Vector<double>>(x1);
            var v2 = MemoryMarshal.Cast<double, Vector<double>>(x2);
            var v3 = MemoryMarshal.Cast<double, Vector<double>>(x3);
            Vector<double> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int v = 0; v < vw.Length; v++)
            {
                var wv = vw[v];
                a0 += wv * v0[v];
                a1 += wv * v1[v];
                a2 += wv * v2[v];
                a3 += wv * v3[v];
            }
            (s0, s1, s2, s3) = (Vector.Sum(a0), Vector.Sum(a1), Vector.Sum(a2), Vector.Sum(a3));
            i = vw.Length * width;
        }
        for (; i < w.Length; i++)
        {
            s0 += w[i] * x0[i];
            s1 += w[i] * x1[i];
            s2 += w[i] * x2[i];
            s3 += w[i] * x3[i];
        }
        result[0] = s0;
        result[1] = s1;
        result[2] = s2;
        result[3] = s3;
    }

    /// <summary>y_k += a_k·x for four rows y_k at once: x is read once for the four.</summary>
    public static void Axpy4(double a0, double a1, double a2, double a3, ReadOnlySpan<double> x, Span<double> y0, Span<double> y1, Span<double> y2,
        Span<double> y3)
    {
        int width = Vector<double>.Count, i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= width)
        {
            var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
            var v0 = MemoryMarshal.Cast<double, Vector<double>>(y0);
            var v1 = MemoryMarshal.Cast<double, Vector<double>>(y1);
            var v2 = MemoryMarshal.Cast<double, Vector<double>>(y2);
            var v3 = MemoryMarshal.Cast<double, Vector<double>>(y3);
            Vector<double> b0 = new(a0), b1 = new(a1), b2 = new(a2), b3 = new(a3);
            for (int v = 0; v < vx.Length; v++)
            {
                var xv = vx[v];
                v0[v] += b0 * xv;
                v1[v] += b1 * xv;
                v2[v] += b2 * xv;
                v3[v] += b3 * xv;
            }
            i = vx.Length * width;
        }
        for (; i < x.Length; i++)
        {
            y0[i] += a0 * x[i];
            y1[i] += a1 * x[i];
            y2[i] += a2 * x[i];
            y3[i] += a3 * x[i];
        }
    }
}

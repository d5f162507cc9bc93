// Deterministic reductions: a fixed summation order that does not follow the machine's vector width
// (TensorPrimitives.Sum's lane order does), so bias gradients are the same bits on every machine.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels;

public static class Reductions
{
    /// <summary>
    /// Sum in a fixed order on every SIMD path: 8 partial sums (element i goes to partial i mod 8 over
    /// the first 8·⌊n/8⌋ elements), combined ((p0+p4)+(p2+p6))+((p1+p5)+(p3+p7)), then the tail in order.
    /// </summary>
    public static float SumFixed(ReadOnlySpan<float> x)
    {
        // Vector256 is the portable 8-lane API here (software on machines without it): the lane
        // structure is part of the result's definition, so every path uses exactly 8 lanes.
        ref float r = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        var acc = Vector256<float>.Zero;
        if (n >= 16)
        {
            var acc2 = Vector256<float>.Zero;
            // Two chains for latency: acc takes chunks 0, 2, 4, ..., acc2 chunks 1, 3, 5, ...; added at the end.
            for (; i + 16 <= n; i += 16)
            {
                acc += Vector256.LoadUnsafe(ref r, (nuint)i);
                acc2 += Vector256.LoadUnsafe(ref r, (nuint)(i + 8));
            }
            acc += acc2;
        }
        for (; i + 8 <= n; i += 8) acc += Vector256.LoadUnsafe(ref r, (nuint)i);
        float s = Combine(acc);
        for (; i < n; i++) s += Unsafe.Add(ref r, i);
        return s;
    }

    /// <summary>Σ x[i]·y[i] with the lane structure of <see cref="SumFixed"/> (one FMA chain per lane), on every path.</summary>
    public static float DotFixed(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"Dot: x has {x.Length} floats, y has {y.Length}.", nameof(y));
        ref float xr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        ref float yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        var acc = Vector256<float>.Zero;
        for (; i + 8 <= n; i += 8)
            acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref xr, (nuint)i), Vector256.LoadUnsafe(ref yr, (nuint)i), acc);
        float s = Combine(acc);
        for (; i < n; i++) s = MathF.FusedMultiplyAdd(Unsafe.Add(ref xr, i), Unsafe.Add(ref yr, i), s);
        return s;
    }

    /// <summary>Reference of <see cref="SumFixed"/> in plain scalar code (the test oracle of the order).</summary>
    public static float SumFixedReference(ReadOnlySpan<float> x)
    {
        int n = x.Length, full = n / 8 * 8;
        Span<float> a = stackalloc float[8], b = stackalloc float[8];
        a.Clear(); b.Clear();
        int i = 0;
        if (n >= 16)
        {
            for (; i + 16 <= n; i += 16)
                for (int l = 0; l < 8; l++) { a[l] += x[i + l]; b[l] += x[i + 8 + l]; }
            for (int l = 0; l < 8; l++) a[l] += b[l];
        }
        for (; i < full; i += 8)
            for (int l = 0; l < 8; l++) a[l] += x[i + l];
        float s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
        for (i = full; i < n; i++) s += x[i];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Combine(Vector256<float> v)
    {
        var h = v.GetLower() + v.GetUpper();          // (p0+p4, p1+p5, p2+p6, p3+p7)
        return (h.GetElement(0) + h.GetElement(2)) + (h.GetElement(1) + h.GetElement(3));
    }

    /// <summary>
    /// Column sums of a (rows, cols) row-major matrix added into <paramref name="sums"/> (cols), row by
    /// row in order: each column is one sequential chain, so the bits never depend on width or threads.
    /// Used for bias gradients of dense layers (dy summed over the batch).
    /// </summary>
    public static void AddColumnSums(ReadOnlySpan<float> m, int rows, int cols, Span<float> sums)
    {
        if (rows < 0 || cols < 0 || m.Length < (long)rows * cols)
            throw new ArgumentException($"Column sums: matrix has {m.Length} floats but ({rows},{cols}) was given.", nameof(m));
        if (sums.Length != cols)
            throw new ArgumentException($"Column sums: sums has {sums.Length} floats but the matrix has {cols} columns.", nameof(sums));
        for (int r = 0; r < rows; r++)
            System.Numerics.Tensors.TensorPrimitives.Add(sums, m.Slice(r * cols, cols), sums);
    }
}

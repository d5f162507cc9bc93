// Gradient clipping by global norm (PyTorch clip_grad_norm_, L2). The sum of squares is exact (an integer
// accumulator, ExactSquareSum), so it does not depend on element order, SIMD path or how the vector is
// split into PS shards: shards merge their accumulators and get the same bits as one shard would.
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Nn.Optimizers;

public static class GradientClipping
{
    /// <summary>Σ g² over the span, exact, rounded once to double (NaN or +∞ if any element is).</summary>
    public static double SumOfSquares(ReadOnlySpan<float> grads)
    {
        var acc = new ExactSquareSum();
        acc.Add(grads);
        return acc.ToDouble();
    }

    /// <summary>√(Σ g²).</summary>
    public static double GlobalNorm(ReadOnlySpan<float> grads) => Math.Sqrt(SumOfSquares(grads));

    /// <summary>PyTorch's factor: min(1, maxNorm / (norm + 1e-6)).</summary>
    public static float ClipCoefficient(double norm, float maxNorm)
    {
        CheckMaxNorm(maxNorm);
        return (float)Math.Min(1.0, maxNorm / (norm + 1e-6));
    }

    /// <summary>grads *= factor (elementwise, so every SIMD path gives the same bits).</summary>
    public static void Scale(Span<float> grads, float factor) => TensorPrimitives.Multiply(grads, factor, grads);

    /// <summary>Scales <paramref name="grads"/> so their global norm is at most <paramref name="maxNorm"/> and
    /// returns the norm before clipping. A NaN or infinite norm is returned with the gradient left
    /// untouched: the caller must reject that step (DESIGN contract 8), clipping cannot repair it.</summary>
    public static double ClipByGlobalNorm(Span<float> grads, float maxNorm)
    {
        CheckMaxNorm(maxNorm);
        var norm = GlobalNorm(grads);
        if (!double.IsFinite(norm)) return norm;
        var coef = ClipCoefficient(norm, maxNorm);
        if (coef < 1f) Scale(grads, coef);
        return norm;
    }

    private static void CheckMaxNorm(float maxNorm)
    {
        if (!(maxNorm > 0f) || !float.IsFinite(maxNorm))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "The clipping threshold maxNorm must be a finite number > 0.");
    }
}

/// <summary>The exact sum of squares of float32 values as a 640-bit fixed-point integer in units of
/// 2^-298 (the square of the smallest subnormal). A float square m²·2^(2e) is exact in that grid, so
/// adding in any order or merging partial sums gives identical digits. A mutable struct: pass by ref.</summary>
public struct ExactSquareSum
{
    /// <summary>Number of 32-bit digits in <see cref="CopyTo"/> (last one holds the NaN/∞ flags).</summary>
    public const int SerializedLength = DigitCount + 1;
    private const int DigitCount = 20;
    private const int FlushEvery = 32768; // 2^15 squares < 2^48 each keep a bucket below 2^63 (even in one set)

    private Digits _d;
    private uint _flags; // 1 = +∞ seen, 2 = NaN seen

    [InlineArray(DigitCount)]
    private struct Digits { private ulong _e; }

    /// <summary>Adds Σ x² of <paramref name="xs"/>.</summary>
    public void Add(ReadOnlySpan<float> xs)
    {
        // Per biased exponent e, sum the 48-bit integer squares of the 24-bit mantissas; four bucket sets
        // rotate so consecutive elements with the same exponent (gradients cluster) do not serialise on
        // one memory cell's add latency.
        // The loop is branch-free; ±∞/NaN (e = 255) land in bucket 255, which Flush skips, and are
        // recognised afterwards from the largest |x| bit pattern seen.
        Span<ulong> buckets = stackalloc ulong[1024];
        ref ulong b0 = ref MemoryMarshal.GetReference(buckets);
        ref float x0 = ref MemoryMarshal.GetReference(xs);
        uint maxAbs = 0;
        for (int start = 0; start < xs.Length; start += FlushEvery)
        {
            int end = Math.Min(xs.Length, start + FlushEvery);
            for (int i = start; i < end; i++)
            {
                uint abs = BitConverter.SingleToUInt32Bits(Unsafe.Add(ref x0, i)) & 0x7FFFFFFF;
                maxAbs = Math.Max(maxAbs, abs);
                uint e = abs >> 23;
                ulong m = (abs & 0x7FFFFF) | (e != 0 ? 0x800000u : 0u);
                Unsafe.Add(ref b0, (int)(Math.Max(e, 1u) | ((uint)(i & 3) << 8))) += m * m;
            }
            Flush(buckets);
        }
        if (maxAbs > 0x7F800000) _flags |= 2;
        else if (maxAbs == 0x7F800000) _flags |= 1;
    }

    /// <summary>Adds another partial sum (another shard's range).</summary>
    public void Add(in ExactSquareSum other)
    {
        for (int i = 0; i < DigitCount; i++) _d[i] += other._d[i];
        _flags |= other._flags;
        Normalize();
    }

    /// <summary>The sum rounded to double (a fixed function of the digits); NaN or +∞ if an input was.</summary>
    public readonly double ToDouble()
    {
        if ((_flags & 2) != 0) return double.NaN;
        if ((_flags & 1) != 0) return double.PositiveInfinity;
        double r = 0;
        for (int i = DigitCount - 1; i >= 0; i--) r = r * 4294967296.0 + _d[i];
        return Math.ScaleB(r, -298);
    }

    /// <summary>Writes the digits and flags (for sending a shard's partial sum).</summary>
    public readonly void CopyTo(Span<uint> dst)
    {
        if (dst.Length < SerializedLength)
            throw new ArgumentException($"ExactSquareSum needs {SerializedLength} digits, the span has {dst.Length}.", nameof(dst));
        for (int i = 0; i < DigitCount; i++) dst[i] = (uint)_d[i];
        dst[DigitCount] = _flags;
    }

    /// <summary>Reads what <see cref="CopyTo"/> wrote.</summary>
    public static ExactSquareSum FromDigits(ReadOnlySpan<uint> src)
    {
        if (src.Length != SerializedLength)
            throw new ArgumentException($"ExactSquareSum needs exactly {SerializedLength} digits, got {src.Length}.", nameof(src));
        var s = new ExactSquareSum();
        for (int i = 0; i < DigitCount; i++) s._d[i] = src[i];
        s._flags = src[DigitCount];
        return s;
    }

    private void Flush(Span<ulong> buckets)
    {
        for (int j = 0; j < buckets.Length; j++)
        {
            ulong b = buckets[j];
            if (b == 0) continue;
            if ((j & 0xFF) == 0xFF) { buckets[j] = 0; continue; } // ±∞/NaN: reported through the flags
            buckets[j] = 0;
            int shift = 2 * (j & 0xFF) - 2;          // (m·2^(e−150))² / 2^-298 = m²·2^(2e−2)
            int limb = shift >> 5;
            UInt128 v = (UInt128)b << (shift & 31); // below 2^95: three digits
            _d[limb] += (ulong)(uint)v;
            _d[limb + 1] += (ulong)(uint)(v >> 32);
            _d[limb + 2] += (ulong)(uint)(v >> 64);
        }
        Normalize();
    }

    private void Normalize()
    {
        ulong carry = 0;
        for (int i = 0; i < DigitCount; i++)
        {
            ulong v = _d[i] + carry;
            _d[i] = v & 0xFFFFFFFF;
            carry = v >> 32;
        }
    }
}

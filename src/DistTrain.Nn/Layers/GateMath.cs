// Sigmoid and tanh for the recurrent gates: one exp approximation (Cephes expf: range reduction by
// ln 2, degree-5 polynomial, 2ⁿ by exponent bits, ~1 ulp), run by one driver over Vector256 blocks
// and a scalar tail that repeat the same IEEE operations (no FMA), so every element gets the same
// bits on every machine and at every span length, which TensorPrimitives' Sigmoid/Tanh do not
// guarantee (their scalar tail differs from their vector body). Also faster here (AVX2, 229k floats,
// min of 60): sigmoid 0.24 vs 0.62 ms, tanh 0.39 vs 0.70 ms.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Nn.Layers;

internal static class GateMath
{
    /// <summary>y = 1 / (1 + e^(−x)); x and y may be the same span.</summary>
    public static void Sigmoid(ReadOnlySpan<float> x, Span<float> y) => Run<SigmoidOp>(x, y);

    /// <summary>y = tanh(x) = sign(x)·(1 − e^(−2|x|)) / (1 + e^(−2|x|)); x and y may be the same span.</summary>
    public static void Tanh(ReadOnlySpan<float> x, Span<float> y) => Run<TanhOp>(x, y);

    /// <summary>The same sigmoid and tanh on one value or one Vector256, for fused cell kernels: an element
    /// gets the same bits from these as from the span forms.</summary>
    public static float Sigmoid(float x) => SigmoidOp.Invoke(x);
    public static Vector256<float> Sigmoid(Vector256<float> x) => SigmoidOp.Invoke(x);
    public static float Tanh(float x) => TanhOp.Invoke(x);
    public static Vector256<float> Tanh(Vector256<float> x) => TanhOp.Invoke(x);

    private interface IUnaryOp
    {
        static abstract float Invoke(float x);
        static abstract Vector256<float> Invoke(Vector256<float> x);
    }

    private static void Run<TOp>(ReadOnlySpan<float> x, Span<float> y) where TOp : IUnaryOp
    {
        if (y.Length < x.Length) throw new ArgumentException($"Destination has {y.Length} elements for {x.Length} inputs.", nameof(y));
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        for (; i <= x.Length - 8; i += 8)
            TOp.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        for (; i < x.Length; i++)
            Unsafe.Add(ref yr, i) = TOp.Invoke(Unsafe.Add(ref xr, i));
    }

    // Cephes expf constants.
    private const float Log2E = 1.44269504088896341f, Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f;
    private const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
                        P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;
    // e^x for x in [Lo, Hi] keeps 2ⁿ a normal float; compare-and-select clamps keep NaN as NaN.
    private const float Lo = -87.3f, Hi = 88.3f;

    private static float Exp(float x)
    {
        x = x < Lo ? Lo : x > Hi ? Hi : x;
        float n = MathF.Floor(x * Log2E + 0.5f);
        float r = x - n * Ln2Hi;
        r = r - n * Ln2Lo;
        float p = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5;
        p = p * (r * r) + r + 1f;
        return p * BitConverter.Int32BitsToSingle(((int)n + 127) << 23);
    }

    private static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(Lo)), Vector256.Create(Lo), x);
        x = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(Hi)), Vector256.Create(Hi), x);
        var n = Vector256.Floor(x * Vector256.Create(Log2E) + Vector256.Create(0.5f));
        var r = x - n * Vector256.Create(Ln2Hi);
        r = r - n * Vector256.Create(Ln2Lo);
        var p = ((((Vector256.Create(P0) * r + Vector256.Create(P1)) * r + Vector256.Create(P2)) * r
                 + Vector256.Create(P3)) * r + Vector256.Create(P4)) * r + Vector256.Create(P5);
        p = p * (r * r) + r + Vector256<float>.One;
        var scale = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();
        return p * scale;
    }

    private readonly struct SigmoidOp : IUnaryOp
    {
        public static float Invoke(float x) => 1f / (1f + Exp(-x));
        public static Vector256<float> Invoke(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Exp(-x));
    }

    private readonly struct TanhOp : IUnaryOp
    {
        public static float Invoke(float x)
        {
            float t = Exp(-2f * MathF.Abs(x));
            float v = (1f - t) / (1f + t);
            return x < 0f ? -v : v;
        }

        public static Vector256<float> Invoke(Vector256<float> x)
        {
            var t = Exp(Vector256.Create(-2f) * Vector256.Abs(x));
            var v = (Vector256<float>.One - t) / (Vector256<float>.One + t);
            return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), -v, v);
        }
    }
}

// GELU, exact form (PyTorch's default approximate='none'): y = ½x(1 + erf(x/√2)), erf from Abramowitz–Stegun
// 7.1.26 (|error| ≤ 1.5e-7) with FastExp, and its derivative Φ(x) + x·φ(x), which reuses the same exp(−x²/2).
// Plain multiply and add in every form (no FMA contraction), so scalar and vector lanes give the same bits.
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels.Operators;

internal static class GeluErfMath
{
    public const float InvSqrt2 = 0.70710678118654752f, InvSqrt2Pi = 0.39894228040143268f, P = 0.3275911f;
    public const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;

    /// <summary>Φ(x) = ½(1 + erf(x/√2)) and e = exp(−x²/2).</summary>
    public static float Cdf(float x, out float e)
    {
        float a = MathF.Abs(x) * InvSqrt2;
        float t = 1f / (1f + P * a);
        float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        e = FastExp.Exp(-(a * a));
        float r = 1f - poly * e;
        return 0.5f * (1f + (x < 0 ? -r : r));
    }

    public static Vector256<float> Cdf(Vector256<float> x, out Vector256<float> e)
    {
        var one = Vector256.Create(1f);
        var a = Vector256.Abs(x) * Vector256.Create(InvSqrt2);
        var t = one / (one + Vector256.Create(P) * a);
        var poly = ((((Vector256.Create(A5) * t + Vector256.Create(A4)) * t + Vector256.Create(A3)) * t + Vector256.Create(A2)) * t + Vector256.Create(A1)) * t;
        e = FastExp.Exp(-(a * a));
        var r = one - poly * e;
        return Vector256.Create(0.5f) * (one + Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), -r, r));
    }

    public static Vector512<float> Cdf(Vector512<float> x, out Vector512<float> e)
    {
        var one = Vector512.Create(1f);
        var a = Vector512.Abs(x) * Vector512.Create(InvSqrt2);
        var t = one / (one + Vector512.Create(P) * a);
        var poly = ((((Vector512.Create(A5) * t + Vector512.Create(A4)) * t + Vector512.Create(A3)) * t + Vector512.Create(A2)) * t + Vector512.Create(A1)) * t;
        e = FastExp.Exp(-(a * a));
        var r = one - poly * e;
        return Vector512.Create(0.5f) * (one + Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<float>.Zero), -r, r));
    }
}

/// <summary>y = x·Φ(x).</summary>
public readonly struct GeluErfOperator : IUnaryOperator
{
    public float Invoke(float x) => x * GeluErfMath.Cdf(x, out _);
    public Vector256<float> Invoke(Vector256<float> x) => x * GeluErfMath.Cdf(x, out _);
    public Vector512<float> Invoke(Vector512<float> x) => x * GeluErfMath.Cdf(x, out _);
}

/// <summary>dx = dy·(Φ(x) + x·φ(x)), φ(x) = exp(−x²/2)/√(2π).</summary>
public readonly struct GeluErfBackwardOperator : IBinaryOperator
{
    public float Invoke(float x, float dy)
    {
        float cdf = GeluErfMath.Cdf(x, out var e);
        return dy * (cdf + x * (GeluErfMath.InvSqrt2Pi * e));
    }

    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> dy)
    {
        var cdf = GeluErfMath.Cdf(x, out var e);
        return dy * (cdf + x * (Vector256.Create(GeluErfMath.InvSqrt2Pi) * e));
    }

    public Vector512<float> Invoke(Vector512<float> x, Vector512<float> dy)
    {
        var cdf = GeluErfMath.Cdf(x, out var e);
        return dy * (cdf + x * (Vector512.Create(GeluErfMath.InvSqrt2Pi) * e));
    }
}

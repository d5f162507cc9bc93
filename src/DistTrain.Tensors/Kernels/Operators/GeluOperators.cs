// GELU, tanh approximation (PyTorch gelu(approximate='tanh')): y = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³),
// tanh(u) = 1 − 2/(exp(2u) + 1) through FastExp so every path gives the same bits.
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels.Operators;

internal static class GeluMath
{
    public const float K = 0.7978845608028654f, A = 0.044715f, A3 = 3f * 0.044715f;
}

public readonly struct GeluOperator : IUnaryOperator
{
    public float Invoke(float x)
    {
        float u = GeluMath.K * MathF.FusedMultiplyAdd(GeluMath.A * x, x * x, x);
        float t = 1f - 2f / (FastExp.Exp(2f * u) + 1f);
        return 0.5f * x * (1f + t);
    }

    public Vector256<float> Invoke(Vector256<float> x)
    {
        var one = Vector256.Create(1f);
        var u = Vector256.Create(GeluMath.K) * Vector256.FusedMultiplyAdd(Vector256.Create(GeluMath.A) * x, x * x, x);
        var t = one - Vector256.Create(2f) / (FastExp.Exp(Vector256.Create(2f) * u) + one);
        return Vector256.Create(0.5f) * x * (one + t);
    }

    public Vector512<float> Invoke(Vector512<float> x)
    {
        var one = Vector512.Create(1f);
        var u = Vector512.Create(GeluMath.K) * Vector512.FusedMultiplyAdd(Vector512.Create(GeluMath.A) * x, x * x, x);
        var t = one - Vector512.Create(2f) / (FastExp.Exp(Vector512.Create(2f) * u) + one);
        return Vector512.Create(0.5f) * x * (one + t);
    }
}

/// <summary>dx = dy · (½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)), t = tanh(u).</summary>
public readonly struct GeluBackwardOperator : IBinaryOperator
{
    public float Invoke(float x, float dy)
    {
        float x2 = x * x;
        float u = GeluMath.K * MathF.FusedMultiplyAdd(GeluMath.A * x, x2, x);
        float t = 1f - 2f / (FastExp.Exp(2f * u) + 1f);
        float du = GeluMath.K * MathF.FusedMultiplyAdd(GeluMath.A3, x2, 1f);
        return dy * (0.5f * (1f + t) + 0.5f * x * (1f - t * t) * du);
    }

    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> dy)
    {
        var one = Vector256.Create(1f); var half = Vector256.Create(0.5f); var k = Vector256.Create(GeluMath.K);
        var x2 = x * x;
        var u = k * Vector256.FusedMultiplyAdd(Vector256.Create(GeluMath.A) * x, x2, x);
        var t = one - Vector256.Create(2f) / (FastExp.Exp(Vector256.Create(2f) * u) + one);
        var du = k * Vector256.FusedMultiplyAdd(Vector256.Create(GeluMath.A3), x2, one);
        return dy * (half * (one + t) + half * x * (one - t * t) * du);
    }

    public Vector512<float> Invoke(Vector512<float> x, Vector512<float> dy)
    {
        var one = Vector512.Create(1f); var half = Vector512.Create(0.5f); var k = Vector512.Create(GeluMath.K);
        var x2 = x * x;
        var u = k * Vector512.FusedMultiplyAdd(Vector512.Create(GeluMath.A) * x, x2, x);
        var t = one - Vector512.Create(2f) / (FastExp.Exp(Vector512.Create(2f) * u) + one);
        var du = k * Vector512.FusedMultiplyAdd(Vector512.Create(GeluMath.A3), x2, one);
        return dy * (half * (one + t) + half * x * (one - t * t) * du);
    }
}

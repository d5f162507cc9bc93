// Sigmoid and tanh backward from the forward outputs y (what a layer caches): no exp needed.
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels.Operators;

/// <summary>dx = dy · y · (1 − y), y = sigmoid(x).</summary>
public readonly struct SigmoidBackwardOperator : IBinaryOperator
{
    public float Invoke(float y, float dy) => dy * (y * (1f - y));
    public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) => dy * (y * (Vector256.Create(1f) - y));
    public Vector512<float> Invoke(Vector512<float> y, Vector512<float> dy) => dy * (y * (Vector512.Create(1f) - y));
}

/// <summary>dx = dy · (1 − y²), y = tanh(x).</summary>
public readonly struct TanhBackwardOperator : IBinaryOperator
{
    public float Invoke(float y, float dy) => dy * (1f - y * y);
    public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) => dy * (Vector256.Create(1f) - y * y);
    public Vector512<float> Invoke(Vector512<float> y, Vector512<float> dy) => dy * (Vector512.Create(1f) - y * y);
}

/// <summary>y = exp(x) through <see cref="FastExp"/> (same bits on every path and machine).</summary>
public readonly struct ExpOperator : IUnaryOperator
{
    public float Invoke(float x) => FastExp.Exp(x);
    public Vector256<float> Invoke(Vector256<float> x) => FastExp.Exp(x);
    public Vector512<float> Invoke(Vector512<float> x) => FastExp.Exp(x);
}

/// <summary>z = a·x + y (FMA), the axpy update.</summary>
public readonly struct AxpyOperator(float a) : IBinaryOperator
{
    public float Invoke(float x, float y) => MathF.FusedMultiplyAdd(a, x, y);
    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> y) => Vector256.FusedMultiplyAdd(Vector256.Create(a), x, y);
    public Vector512<float> Invoke(Vector512<float> x, Vector512<float> y) => Vector512.FusedMultiplyAdd(Vector512.Create(a), x, y);
}

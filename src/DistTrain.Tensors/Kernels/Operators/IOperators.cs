// Operator contracts run by the shared drivers in Elementwise.cs (STYLE point 8): one readonly struct
// per op with scalar, Vector256 and Vector512 forms. The scalar form computes the same operations in
// the same order as a vector lane (FMA in both or neither), so every SIMD path gives the same bits.
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels.Operators;

/// <summary>y = f(x), elementwise.</summary>
public interface IUnaryOperator
{
    float Invoke(float x);
    Vector256<float> Invoke(Vector256<float> x);
    Vector512<float> Invoke(Vector512<float> x);
}

/// <summary>z = f(x, y), elementwise (e.g. dx = f(x, dy) for an activation's backward).</summary>
public interface IBinaryOperator
{
    float Invoke(float x, float y);
    Vector256<float> Invoke(Vector256<float> x, Vector256<float> y);
    Vector512<float> Invoke(Vector512<float> x, Vector512<float> y);
}

// ReLU and LeakyReLU backward masks and LeakyReLU forward (ReLU forward is TensorPrimitives.Max(x, 0)).
// Binary operators take (x, dy) -> dx; the mask tests the forward input x.
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels.Operators;

/// <summary>dx = x &gt; 0 ? dy : 0.</summary>
public readonly struct ReluBackwardOperator : IBinaryOperator
{
    public float Invoke(float x, float dy) => x > 0f ? dy : 0f;
    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> dy) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), dy, Vector256<float>.Zero);
    public Vector512<float> Invoke(Vector512<float> x, Vector512<float> dy) =>
        Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512<float>.Zero), dy, Vector512<float>.Zero);
}

/// <summary>y = x &gt; 0 ? x : slope·x.</summary>
public readonly struct LeakyReluOperator(float slope) : IUnaryOperator
{
    public float Invoke(float x) => x > 0f ? x : slope * x;
    public Vector256<float> Invoke(Vector256<float> x) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), x, x * Vector256.Create(slope));
    public Vector512<float> Invoke(Vector512<float> x) =>
        Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512<float>.Zero), x, x * Vector512.Create(slope));
}

/// <summary>dx = x &gt; 0 ? dy : slope·dy.</summary>
public readonly struct LeakyReluBackwardOperator(float slope) : IBinaryOperator
{
    public float Invoke(float x, float dy) => x > 0f ? dy : slope * dy;
    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> dy) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), dy, dy * Vector256.Create(slope));
    public Vector512<float> Invoke(Vector512<float> x, Vector512<float> dy) =>
        Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512<float>.Zero), dy, dy * Vector512.Create(slope));
}

/// <summary>y = min(max(x, lo), hi) (NaN stays NaN).</summary>
public readonly struct ClampOperator(float lo, float hi) : IUnaryOperator
{
    public float Invoke(float x) => MathF.Min(MathF.Max(x, lo), hi);
    public Vector256<float> Invoke(Vector256<float> x) => Vector256.Min(Vector256.Max(x, Vector256.Create(lo)), Vector256.Create(hi));
    public Vector512<float> Invoke(Vector512<float> x) => Vector512.Min(Vector512.Max(x, Vector512.Create(lo)), Vector512.Create(hi));
}

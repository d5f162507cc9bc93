// Sigmoid: y = 1 / (1 + e^-x); backward dx = dy · y · (1 − y).
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class Sigmoid : Activation
{
    protected override void Apply(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Sigmoid(x, y);

    protected override void Gradient(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) =>
        Elementwise.SigmoidBackward(y, dy, dx);

    public override string ToString() => "Sigmoid()";
}

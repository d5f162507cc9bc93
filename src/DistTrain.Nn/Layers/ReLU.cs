// ReLU: y = max(x, 0); backward passes dy where y > 0 (the gradient at exactly 0 is 0, as in PyTorch).
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class ReLU : Activation
{
    protected override void Apply(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Max(x, 0f, y);

    protected override void Gradient(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) =>
        Elementwise.ReluBackward(y, dy, dx);

    public override string ToString() => "ReLU()";
}

// LeakyReLU: y = x if x > 0 else slope·x (PyTorch default slope 0.01).
namespace DistTrain.Nn.Layers;

public sealed class LeakyReLU : Activation
{
    public LeakyReLU(float negativeSlope = 0.01f)
    {
        if (!float.IsFinite(negativeSlope)) throw new ArgumentException($"LeakyReLU: negative slope {negativeSlope} must be finite.");
        NegativeSlope = negativeSlope;
    }

    public float NegativeSlope { get; }

    protected override void Apply(ReadOnlySpan<float> x, Span<float> y) => Elementwise.LeakyRelu(x, NegativeSlope, y);

    protected override void Gradient(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) =>
        Elementwise.LeakyReluBackward(x, dy, NegativeSlope, dx);

    public override string ToString() => FormattableString.Invariant($"LeakyReLU(negative_slope={NegativeSlope})");
}

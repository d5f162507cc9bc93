// Base of the shape-preserving elementwise activations: keeps the input, output and dx workspaces,
// so each activation file is just its Forward and Backward formula. Letters: N = elements of x.
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public abstract class Activation : Layer
{
    private int[] _shape = [];
    private Tensor? _y, _dx;
    /// <summary>The last Forward's input and output (owned by the previous layer / by this one).</summary>
    protected Tensor X = null!, Y = null!;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length == 0) throw ShapeError(inputShape, "a per-sample shape with at least one dimension");
        _shape = inputShape;
        return inputShape;
    }

    /// <summary>Set by Sequential when the next layer applies this activation itself (ReLU before MaxPool2d):
    /// Forward then returns x and Backward dy, untouched.</summary>
    internal bool PassThrough { get; set; }

    // x (B, ...) -> y (B, ...) same shape
    public sealed override Tensor Forward(Tensor x, in StepContext ctx)
    {
        if (PassThrough) return X = Y = x;
        X = x;
        Y = Workspace.Ensure(ref _y, x.Dim(0), _shape);
        Apply(x.Span, Y.Span);
        return Y;
    }

    // dy (B, ...) -> dx (B, ...)
    public sealed override Tensor Backward(Tensor dy)
    {
        if (X is null) throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        if (PassThrough) return dy;
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _shape);
        if (ComputeInputGrad) Gradient(X.Span, Y.Span, dy.Span, dx.Span);
        return dx;
    }

    /// <summary>y = f(x), elementwise.</summary>
    protected abstract void Apply(ReadOnlySpan<float> x, Span<float> y);
    /// <summary>dx = f'(x) ⊙ dy, from x or y = f(x).</summary>
    protected abstract void Gradient(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx);
}

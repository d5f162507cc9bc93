// Softmax over the last dimension (PyTorch nn.Softmax(dim=-1)), for models that output probabilities.
// For training a classifier prefer logits + SoftmaxCrossEntropy (fused, stable). Letters: R rows, K classes.
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class Softmax : Layer
{
    private int[] _shape = [];
    private int _k;
    private Tensor? _y, _dx;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length == 0 || inputShape[^1] == 0) throw ShapeError(inputShape, "(..., K) with K ≥ 1");
        _shape = inputShape;
        _k = inputShape[^1];
        return inputShape;
    }

    // x (B, ..., K) -> y (B, ..., K), each row y = exp(x − max) / Σ exp(x − max)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        var y = Workspace.Ensure(ref _y, x.Dim(0), _shape);
        var xs = x.Span; var ys = y.Span;
        for (int r = 0; r < xs.Length; r += _k)
        {
            var xr = xs.Slice(r, _k); var yr = ys.Slice(r, _k);
            TensorPrimitives.Subtract(xr, TensorPrimitives.Max(xr), yr);
            TensorPrimitives.Exp(yr, yr);
            TensorPrimitives.Multiply(yr, 1f / Elementwise.Sum(yr), yr);
        }
        return y;
    }

    // dy (B, ..., K) -> dx = y ⊙ (dy − Σ dy·y) per row
    public override Tensor Backward(Tensor dy)
    {
        var y = _y ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _shape);
        if (!ComputeInputGrad) return dx;
        var ys = y.Span; var ds = dy.Span; var xs = dx.Span;
        for (int r = 0; r < ys.Length; r += _k)
        {
            var yr = ys.Slice(r, _k); var dxr = xs.Slice(r, _k);
            TensorPrimitives.Subtract(ds.Slice(r, _k), Elementwise.Dot(ds.Slice(r, _k), yr), dxr);
            TensorPrimitives.Multiply(dxr, yr, dxr);
        }
        return dx;
    }

    public override string ToString() => "Softmax(dim=-1)";
}

// Reduces a token sequence to one vector: "cls" takes token 0 (the class token, ViT), "mean" averages
// the tokens, "last" takes the final one (a causal sequence model's summary). (T,E) -> (E).
// Letters: B batch, T tokens, E embed dim.
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class TokenPool : Layer
{
    public static readonly string[] Modes = ["cls", "mean", "last"];
    private int _t, _e;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dx;

    public TokenPool(string mode = "cls")
    {
        if (!Modes.Contains(mode)) throw new ArgumentException($"TokenPool: mode \"{mode}\" is not one of {string.Join(", ", Modes)}.");
        Mode = mode;
    }

    public string Mode { get; }

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2) throw ShapeError(inputShape, "(T,E) tokens x embed dim");
        (_t, _e) = (inputShape[0], inputShape[1]);
        _inShape = inputShape;
        _outShape = [_e];
        return _outShape;
    }

    // x (B,T,E) -> y (B,E)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0), n = _t * _e;
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        var xs = x.Span; var ys = y.Span;
        for (int b = 0; b < batch; b++)
        {
            var yb = ys.Slice(b * _e, _e);
            switch (Mode)
            {
                case "cls": xs.Slice(b * n, _e).CopyTo(yb); break;
                case "last": xs.Slice(b * n + n - _e, _e).CopyTo(yb); break;
                default:
                    xs.Slice(b * n, _e).CopyTo(yb);
                    for (int t = 1; t < _t; t++) TensorPrimitives.Add(yb, xs.Slice(b * n + t * _e, _e), yb);
                    TensorPrimitives.Multiply(yb, 1f / _t, yb);
                    break;
            }
        }
        return y;
    }

    // dy (B,E) -> dx (B,T,E): into the picked token (zeros elsewhere), or dy/T into every token for "mean"
    public override Tensor Backward(Tensor dy)
    {
        int batch = dy.Dim(0), n = _t * _e;
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        if (!ComputeInputGrad) return dx;
        var ds = dy.Span; var xs = dx.Span;
        if (Mode != "mean") xs.Clear();
        for (int b = 0; b < batch; b++)
        {
            var db = ds.Slice(b * _e, _e);
            switch (Mode)
            {
                case "cls": db.CopyTo(xs.Slice(b * n, _e)); break;
                case "last": db.CopyTo(xs.Slice(b * n + n - _e, _e)); break;
                default:
                    for (int t = 0; t < _t; t++) TensorPrimitives.Multiply(db, 1f / _t, xs.Slice(b * n + t * _e, _e));
                    break;
            }
        }
        return dx;
    }

    public override string ToString() => $"TokenPool(mode={Mode})";
}

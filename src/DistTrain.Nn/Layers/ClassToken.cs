// Prepends a learned class token to a token sequence (ViT): (T,E) -> (T+1,E); the parameter is
// class_token (1,1,E), zero-initialised as in torchvision's VisionTransformer. Letters: B, T, E.
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class ClassToken : Layer
{
    private int _t, _e;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dx;

    public Param Token { get; private set; } = null!;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2) throw ShapeError(inputShape, "(T,E) tokens x embed dim");
        (_t, _e) = (inputShape[0], inputShape[1]);
        Token = DeclareParam("class_token", 1, 1, _e);
        _inShape = inputShape;
        _outShape = [_t + 1, _e];
        return _outShape;
    }

    public override void ResetParameters(Random rng) => Token.Value.Clear();

    // x (B,T,E) -> y (B,T+1,E), y[b,0] = class_token
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0), n = _t * _e;
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        var xs = x.Span; var ys = y.Span; var tok = Token.Value.Span;
        for (int b = 0; b < batch; b++)
        {
            tok.CopyTo(ys.Slice(b * (n + _e), _e));
            xs.Slice(b * n, n).CopyTo(ys.Slice(b * (n + _e) + _e, n));
        }
        return y;
    }

    // dy (B,T+1,E) -> dx (B,T,E); dclass_token += Σ_b dy[b,0] (samples in order)
    public override Tensor Backward(Tensor dy)
    {
        int batch = dy.Dim(0), n = _t * _e;
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        var ds = dy.Span; var xs = dx.Span; var g = Token.Grad.Span;
        for (int b = 0; b < batch; b++)
        {
            TensorPrimitives.Add(g, ds.Slice(b * (n + _e), _e), g);
            if (ComputeInputGrad) ds.Slice(b * (n + _e) + _e, n).CopyTo(xs.Slice(b * n, n));
        }
        return dx;
    }

    public override string ToString() => $"ClassToken(embed_dim={(_e == 0 ? "?" : _e)})";
}

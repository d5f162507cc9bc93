// Cuts an image into non-overlapping p×p patches, one token per patch (row-major over the patch grid),
// each the patch's values in (channel, row, column) order: the input layout of a vision Transformer's
// patch embedding (torchvision's conv_proj with kernel = stride = p is this followed by a Dense).
// Letters: B batch, C channels, H×W image, p patch size, T = (H/p)(W/p) tokens, P = C·p·p.
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class Patches : Layer
{
    private int _c, _h, _w, _gw, _t;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dx;

    public Patches(int size)
    {
        if (size <= 0) throw new ArgumentException($"Patches(size={size}): the patch size must be positive.");
        Size = size;
    }

    public int Size { get; }

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 3 || inputShape[1] % Size != 0 || inputShape[2] % Size != 0)
            throw ShapeError(inputShape, $"(C,H,W) with H and W multiples of the patch size {Size}");
        (_c, _h, _w) = (inputShape[0], inputShape[1], inputShape[2]);
        _gw = _w / Size;
        _t = (_h / Size) * _gw;
        _inShape = inputShape;
        _outShape = [_t, _c * Size * Size];
        return _outShape;
    }

    // x (B,C,H,W) -> y (B,T,P)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        var y = Workspace.Ensure(ref _y, x.Dim(0), _outShape);
        Move(x.Span, y.Span, x.Dim(0), toPatches: true);
        return y;
    }

    // dy (B,T,P) -> dx (B,C,H,W): the same permutation backwards
    public override Tensor Backward(Tensor dy)
    {
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _inShape);
        if (ComputeInputGrad) Move(dx.Span, dy.Span, dy.Dim(0), toPatches: false);
        return dx;
    }

    private void Move(Span<float> image, Span<float> tokens, int batch, bool toPatches)
    {
        int p = Size, plane = _h * _w, pp = _c * p * p;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < _t; t++)
            {
                int r0 = t / _gw * p, c0 = t % _gw * p;
                for (int c = 0; c < _c; c++)
                    for (int i = 0; i < p; i++)
                    {
                        var img = image.Slice(b * _c * plane + c * plane + (r0 + i) * _w + c0, p);
                        var tok = tokens.Slice((b * _t + t) * pp + (c * p + i) * p, p);
                        if (toPatches) img.CopyTo(tok); else tok.CopyTo(img);
                    }
            }
    }

    public override string ToString() => $"Patches(size={Size})";
}

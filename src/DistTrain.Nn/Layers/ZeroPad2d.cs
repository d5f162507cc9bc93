// Zero padding of an image on all four sides (PyTorch nn.ZeroPad2d(p)): (C,H,W) -> (C,H+2p,W+2p). Before a stride-1
// max pool it gives Inception's "same"-size pooling branch; on non-negative inputs (after a ReLU) zeros pad like −∞.
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class ZeroPad2d : Layer
{
    private int _c, _h, _w;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dx;

    public ZeroPad2d(int padding)
    {
        if (padding < 0) throw new ArgumentException($"ZeroPad2d: padding {padding} must be ≥ 0.", nameof(padding));
        Padding = padding;
    }

    public int Padding { get; }

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 3) throw ShapeError(inputShape, "(C,H,W)");
        _inShape = inputShape;
        (_c, _h, _w) = (inputShape[0], inputShape[1], inputShape[2]);
        return _outShape = [_c, _h + 2 * Padding, _w + 2 * Padding];
    }

    // x (B,C,H,W) -> y (B,C,H+2p,W+2p), zeros around
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0), p = Padding, ow = _w + 2 * p, oh = _h + 2 * p;
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        y.Clear();
        var xs = x.Span; var ys = y.Span;
        for (int plane = 0; plane < batch * _c; plane++)
            for (int r = 0; r < _h; r++)
                xs.Slice((plane * _h + r) * _w, _w).CopyTo(ys.Slice((plane * oh + r + p) * ow + p, _w));
        return y;
    }

    // dy (B,C,H+2p,W+2p) -> dx (B,C,H,W): the interior
    public override Tensor Backward(Tensor dy)
    {
        int batch = dy.Dim(0), p = Padding, ow = _w + 2 * p, oh = _h + 2 * p;
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        if (!ComputeInputGrad) return dx;
        var ds = dy.Span; var dxs = dx.Span;
        for (int plane = 0; plane < batch * _c; plane++)
            for (int r = 0; r < _h; r++)
                ds.Slice((plane * oh + r + p) * ow + p, _w).CopyTo(dxs.Slice((plane * _h + r) * _w, _w));
        return dx;
    }

    public override string ToString() => $"ZeroPad2d(padding={Padding})";
}

// Max pooling (PyTorch nn.MaxPool2d(kernel, stride), no padding), on the Tensors Pool2d kernels.
// Letters: C channels, H/W input, OH = (H − K)/S + 1. Ties pick the first maximum in scan order.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Nn.Layers;

public sealed class MaxPool2d : Layer
{
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dx;
    private int[] _argmax = [];
    private int _batch;

    public MaxPool2d(int kernelSize, int? stride = null)
    {
        if (kernelSize <= 0 || stride is <= 0)
            throw new ArgumentException($"MaxPool2d(kernel_size={kernelSize}, stride={stride}): kernel and stride must be positive.");
        Kernel = kernelSize; Stride = stride ?? kernelSize;
    }

    public int Kernel { get; }
    public int Stride { get; }

    private PoolShape Shape(int batch) => new(batch, _inShape[0], _inShape[1], _inShape[2], Kernel, Stride);

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 3 || inputShape[1] < Kernel || inputShape[2] < Kernel)
            throw ShapeError(inputShape, $"(C, H, W) with H, W ≥ kernel {Kernel}");
        _inShape = inputShape;
        var s = Shape(1);
        _outShape = [inputShape[0], s.OutH, s.OutW];
        return _outShape;
    }

    // x (B,C,H,W) -> y (B,C,OH,OW); argmax remembers each max's input index
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        _batch = x.Dim(0);
        var y = Workspace.Ensure(ref _y, _batch, _outShape);
        if (_argmax.Length != y.Length) _argmax = new int[y.Length];
        Pool2d.MaxForward(Shape(_batch), x.Span, y.Span, _argmax);
        return y;
    }

    // dy (B,C,OH,OW) -> dx (B,C,H,W): each dy goes to its max's position
    public override Tensor Backward(Tensor dy)
    {
        var dx = Workspace.Ensure(ref _dx, _batch, _inShape);
        if (ComputeInputGrad) Pool2d.MaxBackward(Shape(_batch), dy.Span, _argmax, dx.Span);
        return dx;
    }

    public override string ToString() => $"MaxPool2d(kernel_size={Kernel}, stride={Stride})";
}

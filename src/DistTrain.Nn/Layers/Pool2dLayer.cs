// What MaxPool2d and AvgPool2d share (PyTorch semantics, no padding): kernel/stride, shape checks,
// output shape, and the reused output / input-gradient workspaces. Subclasses run their kernel.
// Letters: C channels, H/W input, OH = (H − K)/S + 1.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Nn.Layers;

public abstract class Pool2dLayer : Layer
{
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dx;
    private int _batch;

    protected Pool2dLayer(int kernelSize, int? stride)
    {
        if (kernelSize <= 0 || stride is <= 0)
            throw new ArgumentException($"{GetType().Name}(kernel_size={kernelSize}, stride={stride}): kernel and stride must be positive.");
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

    // x (B,C,H,W) -> y (B,C,OH,OW)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        _batch = x.Dim(0);
        var y = Workspace.Ensure(ref _y, _batch, _outShape);
        PoolForward(Shape(_batch), x.Span, y.Span);
        return y;
    }

    // dy (B,C,OH,OW) -> dx (B,C,H,W)
    public override Tensor Backward(Tensor dy)
    {
        var dx = Workspace.Ensure(ref _dx, _batch, _inShape);
        if (ComputeInputGrad) PoolBackward(Shape(_batch), dy.Span, dx.Span);
        return dx;
    }

    /// <summary>The last Forward's output (this layer's workspace; the next layer reads it, never writes it).</summary>
    protected ReadOnlySpan<float> LastOutput => _y is null ? default : _y.Span;

    protected abstract void PoolForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y);
    protected abstract void PoolBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx);

    public override string ToString() => $"{GetType().Name}(kernel_size={Kernel}, stride={Stride})";
}

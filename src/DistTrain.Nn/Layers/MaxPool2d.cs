// Max pooling (PyTorch nn.MaxPool2d(kernel, stride), no padding), on the Tensors Pool2d kernels.
// Ties pick the first maximum in scan order.
using DistTrain.Tensors.Kernels;

namespace DistTrain.Nn.Layers;

public sealed class MaxPool2d(int kernelSize, int? stride = null) : Pool2dLayer(kernelSize, stride)
{
    private int[] _argmax = [];

    // argmax remembers each max's input index (reused across steps of the same batch size)
    protected override void PoolForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        if (_argmax.Length != y.Length) _argmax = new int[y.Length];
        Pool2d.MaxForward(s, x, y, _argmax);
    }

    // each dy goes to its max's position
    protected override void PoolBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx) => Pool2d.MaxBackward(s, dy, _argmax, dx);
}

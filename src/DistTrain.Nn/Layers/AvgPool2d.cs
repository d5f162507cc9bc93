// Average pooling (PyTorch nn.AvgPool2d(kernel, stride), no padding), on the Tensors Pool2d kernels.
using DistTrain.Tensors.Kernels;

namespace DistTrain.Nn.Layers;

public sealed class AvgPool2d(int kernelSize, int? stride = null) : Pool2dLayer(kernelSize, stride)
{
    // each y is the mean of its K×K window
    protected override void PoolForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y) => Pool2d.AvgForward(s, x, y);

    // dy/K² spread over each window
    protected override void PoolBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx) => Pool2d.AvgBackward(s, dy, dx);
}

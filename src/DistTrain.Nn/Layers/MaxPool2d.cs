// Max pooling (PyTorch nn.MaxPool2d(kernel, stride), no padding), on the Tensors Pool2d kernels.
// Ties pick the first maximum in scan order.
using DistTrain.Tensors.Kernels;

namespace DistTrain.Nn.Layers;

public sealed class MaxPool2d(int kernelSize, int? stride = null) : Pool2dLayer(kernelSize, stride)
{
    private int[] _argmax = [];

    /// <summary>Set by Sequential when the layer before is a ReLU (which then passes its input through): this
    /// layer pools the ReLU's input and applies ReLU to the 4× smaller output — the same bits, since ReLU is
    /// monotone and its gradient is 0 wherever the window's max is not positive.</summary>
    internal bool FusedRelu { get; set; }

    // argmax remembers each max's input index (reused across steps of the same batch size)
    protected override void PoolForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        if (_argmax.Length != y.Length) _argmax = new int[y.Length];
        Pool2d.MaxForward(s, x, y, _argmax, FusedRelu);
    }

    // each dy goes to its max's position (with the fused ReLU, only where the output is positive)
    protected override void PoolBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx) =>
        Pool2d.MaxBackward(s, dy, _argmax, dx, FusedRelu ? LastOutput : default);
}

// Transposed 2-D convolution ("deconvolution"; PyTorch nn.ConvTranspose2d, groups=1, dilation=1): the
// adjoint of Conv2d, so it runs on the Conv2d kernels with roles swapped — forward is Conv2d's input
// gradient, backward's dx is Conv2d's forward and dW is Conv2d's weight gradient. Deterministic for
// the same reasons those kernels are. Letters: C in channels, OC out channels, H/W input size,
// KH/KW kernel, s stride, p padding, op output padding; OH = (H−1)·s − 2p + KH + op (likewise OW).
// weight (C,OC,KH,KW) and bias (OC), PyTorch's layout and names, so checkpoints load there.
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using ConvKernel = DistTrain.Tensors.Kernels.Conv2d;

namespace DistTrain.Nn.Layers;

public sealed class ConvTranspose2d : Layer
{
    private Param _weight = null!, _bias = null!;
    private int[] _inShape = [], _outShape = [];
    private int _h, _w, _oh, _ow;
    private Tensor? _x, _y, _dx, _placeholder;

    public ConvTranspose2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, int outputPadding = 0,
        bool bias = true, string init = "default")
    {
        if (inChannels <= 0 || outChannels <= 0 || kernelSize <= 0 || stride <= 0 || padding < 0 || outputPadding < 0)
            throw new ArgumentException($"ConvTranspose2d({inChannels}, {outChannels}, kernel={kernelSize}, stride={stride}, padding={padding}, " +
                                        $"output_padding={outputPadding}): channels, kernel and stride must be positive, paddings non-negative.");
        if (outputPadding >= stride)
            throw new ArgumentException($"ConvTranspose2d: output_padding {outputPadding} must be smaller than the stride {stride} (as in PyTorch).");
        InChannels = inChannels; OutChannels = outChannels; Kernel = kernelSize;
        Stride = stride; Padding = padding; OutputPadding = outputPadding; HasBias = bias; Init = init;
        DefaultInit.Validate(init, ToString());
    }

    public int InChannels { get; }
    public int OutChannels { get; }
    public int Kernel { get; }
    public int Stride { get; }
    public int Padding { get; }
    public int OutputPadding { get; }
    public bool HasBias { get; }
    public string Init { get; }
    public Param Weight => _weight;
    public Param? Bias => HasBias ? _bias : null;

    /// <summary>Output size of one spatial dimension for input size <paramref name="n"/>.</summary>
    public static int OutputSize(int n, int kernel, int stride, int padding, int outputPadding) =>
        (n - 1) * stride - 2 * padding + kernel + outputPadding;

    // The Conv2d whose input gradient this layer's forward is: input (B,OC,OH,OW), weight (C,OC,KH,KW), output (B,C,H,W).
    private ConvShape Adjoint(int batch) => new(batch, OutChannels, _oh, _ow, InChannels, Kernel, Kernel, Stride, Padding);

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 3 || inputShape[0] != InChannels)
            throw ShapeError(inputShape, $"(C={InChannels}, H, W)");
        _h = inputShape[1]; _w = inputShape[2];
        _oh = OutputSize(_h, Kernel, Stride, Padding, OutputPadding);
        _ow = OutputSize(_w, Kernel, Stride, Padding, OutputPadding);
        if (_oh <= 0 || _ow <= 0)
            throw ShapeError(inputShape, $"H and W large enough for a positive output ((H−1)·{Stride} − 2·{Padding} + {Kernel} + {OutputPadding} > 0)");
        _inShape = inputShape;
        _outShape = [OutChannels, _oh, _ow];
        _weight = DeclareParam("weight", InChannels, OutChannels, Kernel, Kernel);
        if (HasBias) _bias = DeclareParam("bias", OutChannels);
        return _outShape;
    }

    // PyTorch's fan_in of a ConvTranspose2d weight (C,OC,KH,KW) is its dim 1 × the kernel: OC·KH·KW.
    public override void ResetParameters(Random rng) =>
        DefaultInit.Apply(Init, _weight.Value, HasBias ? _bias.Value : null,
            OutChannels * Kernel * Kernel, InChannels * Kernel * Kernel, rng, $"Layer {Name} {this}");

    // x (B,C,H,W) -> y (B,OC,OH,OW): y = Conv2dᵀ x + bias
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0);
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        // Conv2d.Backward wants its forward input for dW only; with dW skipped its contents are never read,
        // but it must be a buffer of the right length apart from y.
        var placeholder = Workspace.Ensure(ref _placeholder, batch, _outShape);
        ConvKernel.Backward(Adjoint(batch), placeholder.Span, _weight.Value.Span, x.Span, y.Span, default, default);
        if (HasBias)
        {
            var ys = y.Span; var b = _bias.Value.Span;
            int plane = _oh * _ow;
            for (int n = 0; n < batch; n++)
                for (int o = 0; o < OutChannels; o++)
                {
                    var row = ys.Slice((n * OutChannels + o) * plane, plane);
                    TensorPrimitives.Add(row, b[o], row);
                }
        }
        _x = x;
        return y;
    }

    // dy (B,OC,OH,OW) -> dx (B,C,H,W) = Conv2d(dy); dW += Conv2d's weight gradient with (input dy, output gradient x);
    // db[o] += Σ_n Σ_plane dy[n,o], samples added in order.
    public override Tensor Backward(Tensor dy)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int batch = x.Dim(0);
        var s = Adjoint(batch);
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        if (ComputeInputGrad) ConvKernel.Forward(s, dy.Span, _weight.Value.Span, default, dx.Span);
        ConvKernel.Backward(s, dy.Span, _weight.Value.Span, x.Span, default, _weight.Grad.Span, default);
        if (HasBias)
        {
            var g = dy.Span; var db = _bias.Grad.Span;
            int plane = _oh * _ow;
            for (int o = 0; o < OutChannels; o++)
                for (int n = 0; n < batch; n++)
                    db[o] += Reductions.SumFixed(g.Slice((n * OutChannels + o) * plane, plane));
        }
        return dx;
    }

    public override string ToString() =>
        $"ConvTranspose2d({InChannels}, {OutChannels}, kernel_size={Kernel}, stride={Stride}, padding={Padding}" +
        $"{(OutputPadding == 0 ? "" : $", output_padding={OutputPadding}")}{(HasBias ? "" : ", bias=false")}{(Init == "default" ? "" : $", init={Init}")})";
}

// 2-D convolution layer (PyTorch nn.Conv2d, groups=1, dilation=1) on the Tensors Conv2d kernels.
// Letters: C in channels, OC out channels, H/W input size, KH/KW kernel, OH/OW output size.
// weight (OC,C,KH,KW), bias (OC).
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using ConvKernel = DistTrain.Tensors.Kernels.Conv2d;

namespace DistTrain.Nn.Layers;

public sealed class Conv2d : Layer
{
    private Param _weight = null!, _bias = null!;
    private int[] _inShape = [], _outShape = [];
    private int _h, _w;
    private Tensor? _x, _y, _dx;

    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, bool bias = true, string init = "default")
        : this(inChannels, outChannels, kernelSize, kernelSize, stride, padding, bias, init) { }

    public Conv2d(int inChannels, int outChannels, int kernelH, int kernelW, int stride, int padding, bool bias = true, string init = "default")
    {
        if (inChannels <= 0 || outChannels <= 0 || kernelH <= 0 || kernelW <= 0 || stride <= 0 || padding < 0)
            throw new ArgumentException($"Conv2d({inChannels}, {outChannels}, kernel={kernelH}x{kernelW}, stride={stride}, padding={padding}): " +
                                        "channels, kernel and stride must be positive and padding non-negative.");
        InChannels = inChannels; OutChannels = outChannels; KernelH = kernelH; KernelW = kernelW;
        Stride = stride; Padding = padding; HasBias = bias; Init = init;
        DefaultInit.Validate(init, ToString());
    }

    public int InChannels { get; }
    public int OutChannels { get; }
    public int KernelH { get; }
    public int KernelW { get; }
    public int Stride { get; }
    public int Padding { get; }
    public bool HasBias { get; }
    public string Init { get; }
    public Param Weight => _weight;
    public Param? Bias => HasBias ? _bias : null;

    private ConvShape Shape(int batch) => new(batch, InChannels, _h, _w, OutChannels, KernelH, KernelW, Stride, Padding);

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 3 || inputShape[0] != InChannels)
            throw ShapeError(inputShape, $"(C={InChannels}, H, W)");
        _h = inputShape[1]; _w = inputShape[2];
        var s = Shape(1);
        if (s.OutH <= 0 || s.OutW <= 0 || _h + 2 * Padding < KernelH || _w + 2 * Padding < KernelW)
            throw ShapeError(inputShape, $"H and W of at least the kernel {KernelH}x{KernelW} minus 2×padding");
        _inShape = inputShape;
        _outShape = [OutChannels, s.OutH, s.OutW];
        _weight = DeclareParam("weight", OutChannels, InChannels, KernelH, KernelW);
        if (HasBias) _bias = DeclareParam("bias", OutChannels);
        return _outShape;
    }

    public override void ResetParameters(Random rng) =>
        DefaultInit.Apply(Init, _weight.Value, HasBias ? _bias.Value : null,
            InChannels * KernelH * KernelW, OutChannels * KernelH * KernelW, rng, $"Layer {Name} {this}");

    // x (B,C,H,W) -> y (B,OC,OH,OW)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0);
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        ConvKernel.Forward(Shape(batch), x.Span, _weight.Value.Span, HasBias ? _bias.Value.Span : default, y.Span);
        _x = x;
        return y;
    }

    // dy (B,OC,OH,OW) -> dx (B,C,H,W); dW += Σ dy ⊗ x patches; db += Σ dy
    public override Tensor Backward(Tensor dy)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int batch = x.Dim(0);
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        ConvKernel.Backward(Shape(batch), x.Span, _weight.Value.Span, dy.Span,
            ComputeInputGrad ? dx.Span : default, _weight.Grad.Span, HasBias ? _bias.Grad.Span : default);
        return dx;
    }

    public override string ToString()
    {
        var k = KernelH == KernelW ? $"{KernelH}" : $"({KernelH},{KernelW})";
        return $"Conv2d({InChannels}, {OutChannels}, kernel_size={k}, stride={Stride}, padding={Padding}" +
               $"{(HasBias ? "" : ", bias=false")}{(Init == "default" ? "" : $", init={Init}")})";
    }
}

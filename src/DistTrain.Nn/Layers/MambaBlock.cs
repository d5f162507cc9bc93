// A Mamba residual block as mamba_ssm.modules.block.Block builds it (pre-norm, LayerNorm): y = x + mixer(norm(x)),
// children "norm" and "mixer" (a Mamba). Letters: B batch, T steps, Dm model dim.
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class MambaBlock : Layer
{
    private readonly LayerNorm _norm;
    private readonly Mamba _mixer;
    private int[] _shape = [];
    private Tensor? _y, _dx;

    public MambaBlock(int dModel, int dState = 16, int expand = 2, int dConv = 4, float eps = 1e-5f)
    {
        _norm = new LayerNorm([dModel], eps);
        _mixer = new Mamba(dModel, dState, expand, dConv);
    }

    public Mamba Mixer => _mixer;

    public override IEnumerable<(string Name, Layer Layer)> Children => [("norm", _norm), ("mixer", _mixer)];

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2 || inputShape[1] != _mixer.DModel) throw ShapeError(inputShape, $"(T,{_mixer.DModel}) steps x d_model");
        _shape = inputShape;
        return _mixer.Build(_norm.Build(inputShape));
    }

    // x (B,T,Dm) -> y = x + mixer(norm(x))
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        var y = Workspace.Ensure(ref _y, x.Dim(0), _shape);
        TensorPrimitives.Add(x.Span, _mixer.Forward(_norm.Forward(x, ctx), ctx).Span, y.Span);
        return y;
    }

    // dy -> dx = dy + norm'(mixer'(dy))
    public override Tensor Backward(Tensor dy)
    {
        var g = _norm.Backward(_mixer.Backward(dy));
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _shape);
        if (ComputeInputGrad) TensorPrimitives.Add(dy.Span, g.Span, dx.Span);
        return dx;
    }

    public override string ToString() => $"MambaBlock(norm=LayerNorm, mixer={_mixer})";
}

// Pre-norm Transformer encoder block, PyTorch nn.TransformerEncoderLayer(norm_first=True,
// activation="gelu", batch_first=True, dropout=0) with its parameter names: self_attn.*, linear1,
// linear2, norm1, norm2. h = x + self_attn(norm1(x)); y = h + linear2(gelu(linear1(norm2(h)))).
// Built from existing layers (LayerNorm, MultiheadAttention, Dense, GELU); only the residual adds are here.
// Letters: B batch, T tokens, E embed dim, F feed-forward width.
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class TransformerEncoderLayer : Layer
{
    private readonly LayerNorm _norm1, _norm2;
    private readonly MultiheadAttention _attn;
    private readonly Dense _linear1, _linear2;
    private readonly GELU _act = new();
    private int[] _shape = [];
    private Tensor? _h, _y, _dh, _dx;   // all (B,T,E)

    public TransformerEncoderLayer(int dModel, int numHeads, int dimFeedforward, float eps = 1e-5f)
    {
        if (dimFeedforward <= 0) throw new ArgumentException($"TransformerEncoderLayer: dim_feedforward must be positive, got {dimFeedforward}.");
        DModel = dModel; DimFeedforward = dimFeedforward;
        _norm1 = new LayerNorm([dModel], eps);
        _attn = new MultiheadAttention(dModel, numHeads);
        _norm2 = new LayerNorm([dModel], eps);
        _linear1 = new Dense(dModel, dimFeedforward);
        _linear2 = new Dense(dimFeedforward, dModel);
    }

    public int DModel { get; }
    public int DimFeedforward { get; }
    public MultiheadAttention SelfAttention => _attn;

    public override IEnumerable<(string Name, Layer Layer)> Children =>
        [("norm1", _norm1), ("self_attn", _attn), ("norm2", _norm2), ("linear1", _linear1), ("activation", _act), ("linear2", _linear2)];

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2 || inputShape[1] != DModel)
            throw ShapeError(inputShape, $"(T,{DModel}) tokens x d_model");
        _shape = inputShape;
        var s = _attn.Build(_norm1.Build(inputShape));
        _linear2.Build(_act.Build(_linear1.Build(_norm2.Build(s))));
        return inputShape;
    }

    // x (B,T,E) -> y (B,T,E)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int b = x.Dim(0);
        var h = Workspace.Ensure(ref _h, b, _shape);
        var y = Workspace.Ensure(ref _y, b, _shape);
        var a = _attn.Forward(_norm1.Forward(x, ctx), ctx);
        TensorPrimitives.Add(x.Span, a.Span, h.Span);
        var m = _linear2.Forward(_act.Forward(_linear1.Forward(_norm2.Forward(h, ctx), ctx), ctx), ctx);
        TensorPrimitives.Add(h.Span, m.Span, y.Span);
        return y;
    }

    // dy (B,T,E) -> dh = dy + norm2'(linear1'(gelu'(linear2'(dy)))); dx = dh + norm1'(self_attn'(dh))
    public override Tensor Backward(Tensor dy)
    {
        if (_h is null) throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int b = dy.Dim(0);
        var dh = Workspace.Ensure(ref _dh, b, _shape);
        var g = _norm2.Backward(_linear1.Backward(_act.Backward(_linear2.Backward(dy))));
        TensorPrimitives.Add(dy.Span, g.Span, dh.Span);
        var dx = Workspace.Ensure(ref _dx, b, _shape);
        var ga = _norm1.Backward(_attn.Backward(dh));
        if (ComputeInputGrad) TensorPrimitives.Add(dh.Span, ga.Span, dx.Span);
        return dx;
    }

    public override string ToString() =>
        $"TransformerEncoderLayer(d_model={DModel}, nhead={_attn.Heads}, dim_feedforward={DimFeedforward}, norm_first=True, activation=gelu)";
}

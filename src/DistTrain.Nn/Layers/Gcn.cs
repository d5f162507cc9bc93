// Kipf and Welling's two-layer GCN for semi-supervised node classification, on one packed graph sample per target
// node: Z = Â · dropout(ReLU(Â X W1ᵀ + b1)) W2ᵀ + b2, read at the target (row 0). Children conv1, relu, dropout, conv2
// (parameters "<name>.conv1.weight" (H,S) etc., PyTorch Geometric's GCNConv layout). Both convolutions share the sample's
// Â, so the hidden features are re-packed beside it for conv2, and ∂L/∂Â sums both layers' parts.
// Letters: B batch, K local nodes, S block width (features, slots), H hidden, O outputs.
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class Gcn : Layer
{
    private readonly GraphConv _conv1, _conv2;
    private readonly ReLU _relu = new();
    private readonly Dropout _dropout;
    private int _k;
    private int[] _packedShape = [], _outShape = [], _rowShape = [], _hiddenShape = [], _inShape = [];   // kept: a step allocates nothing
    private Tensor? _packed, _dh, _y, _dy2, _dx;

    /// <param name="blockWidth">S: the sample is (K, 3S) — S feature columns, S neighbour slots, S weights.</param>
    public Gcn(int blockWidth, int hidden, int outputs, float dropout = 0.5f)
    {
        if (blockWidth <= 0 || hidden <= 0 || outputs <= 0)
            throw new ArgumentException($"Gcn(features={blockWidth}, hidden={hidden}, out={outputs}): sizes must be positive.");
        S = blockWidth; Hidden = hidden; Outputs = outputs;
        _conv1 = new GraphConv(blockWidth, hidden);
        _conv2 = new GraphConv(hidden, outputs, outputRows: 1);
        _dropout = new Dropout(dropout);
    }

    public int S { get; }
    public int Hidden { get; }
    public int Outputs { get; }
    public GraphConv Conv1 => _conv1;
    public GraphConv Conv2 => _conv2;

    public override IEnumerable<(string Name, Layer Layer)> Children => [("conv1", _conv1), ("relu", _relu), ("dropout", _dropout), ("conv2", _conv2)];

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2 || inputShape[1] != 3 * S)
            throw ShapeError(inputShape, $"(K, {3 * S}): a packed graph sample with block width {S} (a graph:... dataset)");
        _k = inputShape[0];
        _dropout.Build(_relu.Build(_conv1.Build(inputShape)));
        _packedShape = [_k, Hidden + 2 * S]; _outShape = [Outputs]; _rowShape = [1, Outputs]; _hiddenShape = [_k, Hidden]; _inShape = inputShape;
        _conv2.Build(_packedShape);
        return _outShape;
    }

    // x (B,K,3S) -> h (B,K,H) = dropout(relu(conv1(x))) -> [h | Â] (B,K,H+2S) -> conv2 row 0 (B,1,O) = y (B,O)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0), w = 3 * S, pw = Hidden + 2 * S;
        var h = _dropout.Forward(_relu.Forward(_conv1.Forward(x, ctx), ctx), ctx);
        var packed = Workspace.Ensure(ref _packed, batch, _packedShape);
        var xs = x.Span; var hs = h.Span; var ps = packed.Span;
        for (int r = 0; r < batch * _k; r++)
        {
            hs.Slice(r * Hidden, Hidden).CopyTo(ps.Slice(r * pw, Hidden));
            xs.Slice(r * w + S, 2 * S).CopyTo(ps.Slice(r * pw + Hidden, 2 * S));
        }
        var z = _conv2.Forward(packed, ctx);
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        z.Span.CopyTo(y.Span);
        return y;
    }

    // dy (B,O) -> conv2' -> dh -> dropout', relu', conv1' -> dx (B,K,3S), plus conv2's ∂L/∂Â in the weight columns
    public override Tensor Backward(Tensor dy)
    {
        int batch = dy.Dim(0), w = 3 * S, pw = Hidden + 2 * S;
        var dy2 = Workspace.Ensure(ref _dy2, batch, _rowShape);
        dy.Span.CopyTo(dy2.Span);
        _conv2.ComputeInputGrad = true;
        var dp = _conv2.Backward(dy2).Span;
        var dh = Workspace.Ensure(ref _dh, batch, _hiddenShape);
        var dhs = dh.Span;
        for (int r = 0; r < batch * _k; r++) dp.Slice(r * pw, Hidden).CopyTo(dhs.Slice(r * Hidden, Hidden));
        _conv1.ComputeInputGrad = ComputeInputGrad;
        var g = _conv1.Backward(_relu.Backward(_dropout.Backward(dh)));
        if (!ComputeInputGrad) return g;
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        g.Span.CopyTo(dx.Span);
        var dxs = dx.Span;
        for (int r = 0; r < batch * _k; r++)
            TensorPrimitives.Add(dxs.Slice(r * w + 2 * S, S), dp.Slice(r * pw + Hidden + S, S), dxs.Slice(r * w + 2 * S, S));
        return dx;
    }

    public override string ToString() => $"Gcn(features={S}, hidden={Hidden}, out={Outputs}, dropout={_dropout.P})";
}

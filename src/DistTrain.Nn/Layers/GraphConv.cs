// Kipf and Welling's graph convolution (PyTorch Geometric's GCNConv): H' = Â H Wᵀ + b, with the normalized adjacency
// Â = D^-1/2 (A+I) D^-1/2 given per sample as a sparse padded-row block (DistTrain.Data.Graphs.Graph.Samples).
// Letters: B batch, K local nodes, F in features, D slots per row of Â, O out features, R output rows (≤ K).
// Input row i of a sample: [ h_i (F) | local indices of row i of Â (D) | their weights (D) ]; a zero weight is an unused
// slot. H Wᵀ is one GEMM over all B·K rows; the sum over a row's entries runs in slot order, so bits are fixed.
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class GraphConv : Layer
{
    private Param _weight = null!, _bias = null!;
    private int _k, _d, _width;
    private int[] _xwShape = [], _yShape = [], _inShape = [];   // per-sample shapes, kept so a step allocates nothing
    private Tensor? _x, _xw, _dxw, _y, _dx;

    /// <param name="outputRows">Rows of H' to compute (the first R local nodes; 0 = all K): the last layer of a node
    /// classifier needs only row 0, the target node.</param>
    public GraphConv(int inFeatures, int outFeatures, bool bias = true, int outputRows = 0)
    {
        if (inFeatures <= 0 || outFeatures <= 0 || outputRows < 0)
            throw new ArgumentException($"GraphConv(in={inFeatures}, out={outFeatures}, rows={outputRows}): sizes must be positive (rows ≥ 0).");
        In = inFeatures; Out = outFeatures; HasBias = bias; OutputRows = outputRows;
    }

    public int In { get; }
    public int Out { get; }
    public bool HasBias { get; }
    public int OutputRows { get; }
    /// <summary>Slots per row of Â (D), known after Build.</summary>
    public int Slots => _d;
    public Param Weight => _weight;
    public Param? Bias => HasBias ? _bias : null;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2 || inputShape[1] <= In || (inputShape[1] - In) % 2 != 0)
            throw ShapeError(inputShape, $"(K, {In} + 2D): per local node its {In} features, then D neighbour indices and D weights of its row of Â");
        _k = inputShape[0]; _width = inputShape[1]; _d = (_width - In) / 2;
        if (OutputRows > _k) throw ShapeError(inputShape, $"at least {OutputRows} local nodes (rows={OutputRows})");
        _weight = DeclareParam("weight", Out, In);
        if (HasBias) _bias = DeclareParam("bias", Out);
        _xwShape = [_k, Out]; _yShape = [Rows, Out]; _inShape = inputShape;
        return _yShape;
    }

    private int Rows => OutputRows == 0 ? _k : OutputRows;

    /// <summary>Glorot-uniform weight and zero bias, as Kipf and Welling's GCN and GCNConv initialise.</summary>
    public override void ResetParameters(Random rng) =>
        DefaultInit.Apply("xavier", _weight.Value, HasBias ? _bias.Value : null, In, Out, rng, $"Layer {Name} {this}");

    // x (B,K,F+2D) -> xw (B,K,O) = h Wᵀ -> y (B,R,O): y[i] = b + Σ_slots w · xw[index]
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0), rows = Rows;
        var xw = Workspace.Ensure(ref _xw, batch, _xwShape);
        Gemm.Sgemm(false, true, batch * _k, Out, In, x.Span, _width, _weight.Value.Span, In, xw.Span, Out);
        var y = Workspace.Ensure(ref _y, batch, _yShape);
        var xs = x.Span; var xws = xw.Span; var ys = y.Span;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < rows; i++)
            {
                var yi = ys.Slice((b * rows + i) * Out, Out);
                if (HasBias) _bias.Value.Span.CopyTo(yi); else yi.Clear();
                var row = xs.Slice((b * _k + i) * _width, _width);
                for (int e = 0; e < _d; e++)
                {
                    float w = row[In + _d + e];
                    if (w == 0f) continue;
                    int j = NeighbourIndex(row[In + e], b, i);
                    TensorPrimitives.MultiplyAdd(xws.Slice((b * _k + j) * Out, Out), w, yi, yi);
                }
            }
        _x = x;
        return y;
    }

    // dy (B,R,O) -> dxw (B,K,O) by scattering each row's entries in slot order; dW (O,F) += dxwᵀ·h; db += Σ dy;
    // dx: features dxw·W, indices 0, weights ∂L/∂â = dy[i]·xw[index]
    public override Tensor Backward(Tensor dy)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int batch = x.Dim(0), rows = Rows;
        var dxw = Workspace.Ensure(ref _dxw, batch, _xwShape);
        dxw.Clear();
        var xs = x.Span; var dys = dy.Span; var dxws = dxw.Span;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < rows; i++)
            {
                var dyi = dys.Slice((b * rows + i) * Out, Out);
                if (HasBias) TensorPrimitives.Add(_bias.Grad.Span, dyi, _bias.Grad.Span);
                var row = xs.Slice((b * _k + i) * _width, _width);
                for (int e = 0; e < _d; e++)
                {
                    float w = row[In + _d + e];
                    if (w == 0f) continue;
                    var target = dxws.Slice((b * _k + NeighbourIndex(row[In + e], b, i)) * Out, Out);
                    TensorPrimitives.MultiplyAdd(dyi, w, target, target);
                }
            }
        Gemm.Sgemm(true, false, Out, In, batch * _k, dxws, Out, xs, _width, _weight.Grad.Span, In, accumulate: true);
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        if (!ComputeInputGrad) return dx;
        dx.Clear();
        var dxs = dx.Span;
        Gemm.Sgemm(false, false, batch * _k, In, Out, dxws, Out, _weight.Value.Span, In, dxs, _width);
        var xws = _xw!.Span;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < rows; i++)
            {
                var dyi = dys.Slice((b * rows + i) * Out, Out);
                var row = xs.Slice((b * _k + i) * _width, _width);
                var drow = dxs.Slice((b * _k + i) * _width, _width);
                for (int e = 0; e < _d; e++)
                {
                    var xwj = xws.Slice((b * _k + NeighbourIndex(row[In + e], b, i)) * Out, Out);
                    float s = 0f;   // one scalar chain in index order: the same bits on every SIMD path
                    for (int o = 0; o < Out; o++) s = MathF.FusedMultiplyAdd(dyi[o], xwj[o], s);
                    drow[In + _d + e] = s;
                }
            }
        return dx;
    }

    private int NeighbourIndex(float value, int b, int i)
    {
        int j = (int)MathF.Round(value);
        if ((uint)j >= (uint)_k || MathF.Abs(value - j) > 0.25f)
            throw new ArgumentException($"Layer {Name} {this}: sample {b}, row {i} names neighbour {value} outside the {_k} local nodes; " +
                                        "the input is not a packed graph sample (a graph:... dataset makes them).");
        return j;
    }

    public override string ToString() =>
        $"GraphConv(in={In}, out={Out}{(HasBias ? "" : ", bias=false")}{(OutputRows == 0 ? "" : $", rows={OutputRows}")})";
}

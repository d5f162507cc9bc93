// LayerNorm: normalizes each sample over its last dims (normalized_shape, D elements) with the biased
// variance, then y = x̂·weight + bias elementwise (PyTorch nn.LayerNorm). Reductions use LaneSums.
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class LayerNorm : Layer
{
    private int[]? _normalizedShape;
    private int _d;                           // D = Π normalized_shape
    private Tensor? _y, _dx, _xhat;           // (B, ...) like x
    private float[] _invStd = [];             // per row (B·leading dims)
    private float[] _g = [];                  // scratch (D): dy·weight

    /// <param name="normalizedShape">The trailing dims to normalize over; null means the last dim of the input.</param>
    public LayerNorm(int[]? normalizedShape = null, float eps = 1e-5f)
    {
        if (normalizedShape is not null && (normalizedShape.Length == 0 || normalizedShape.Any(d => d <= 0)))
            throw new ArgumentException($"LayerNorm: normalizedShape {Tensor.ShapeString(normalizedShape)} must be non-empty and positive.", nameof(normalizedShape));
        if (!(eps > 0)) throw new ArgumentException($"LayerNorm: eps must be positive, got {eps}.", nameof(eps));
        _normalizedShape = normalizedShape is null ? null : (int[])normalizedShape.Clone();
        Eps = eps;
    }

    public IReadOnlyList<int> NormalizedShape => _normalizedShape ?? [];
    public float Eps { get; }
    public Param Weight { get; private set; } = null!;
    public Param Bias { get; private set; } = null!;

    public override int[] Build(int[] inputShape)
    {
        _normalizedShape ??= inputShape.Length == 0 ? null : [inputShape[^1]];
        if (_normalizedShape is null || inputShape.Length < _normalizedShape.Length ||
            !inputShape.AsSpan(inputShape.Length - _normalizedShape.Length).SequenceEqual(_normalizedShape))
            throw ShapeError(inputShape, $"trailing dims {(_normalizedShape is null ? "(D)" : Tensor.ShapeString(_normalizedShape))}");
        _d = 1;
        foreach (var n in _normalizedShape) _d *= n;
        Weight = DeclareParam("weight", _normalizedShape);
        Bias = DeclareParam("bias", _normalizedShape);
        _g = new float[_d];
        return (int[])inputShape.Clone();
    }

    /// <summary>PyTorch's reset: weight 1, bias 0.</summary>
    public override void ResetParameters(Random rng)
    {
        Weight.Value.Span.Fill(1f);
        Bias.Value.Clear();
    }

    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        if (_d == 0 || x.Rank < 2 || x.Length % _d != 0 || x.Dim(-1) != _normalizedShape![^1])
            throw new ArgumentException($"Layer {Name} {this}: input {x} does not end in normalized shape {Tensor.ShapeString(NormalizedShape.ToArray())}.", nameof(x));
        var y = BatchNormBase.EnsureLike(ref _y, x);
        var xhat = BatchNormBase.EnsureLike(ref _xhat, x);
        int rows = x.Length / _d;
        if (_invStd.Length < rows) _invStd = new float[rows];
        var xs = x.Span; var ys = y.Span; var hs = xhat.Span;
        var w = Weight.Value.Span; var b = Bias.Value.Span;
        for (int r = 0; r < rows; r++)
        {
            var xr = xs.Slice(r * _d, _d); var hr = hs.Slice(r * _d, _d); var yr = ys.Slice(r * _d, _d);
            float mean = (float)(LaneSums.Sum(xr) / _d);
            float invStd = (float)(1.0 / Math.Sqrt(LaneSums.SumSquaredDeviation(xr, mean) / _d + Eps));
            _invStd[r] = invStd;
            TensorPrimitives.Subtract(xr, mean, hr);
            TensorPrimitives.Multiply(hr, invStd, hr);
            TensorPrimitives.Multiply(hr, w, yr);
            TensorPrimitives.Add(yr, b, yr);
        }
        return y;
    }

    /// <summary>g = dy·w; dx = invstd·(g − mean(g) − x̂·mean(g·x̂)); dweight += Σ dy·x̂; dbias += Σ dy.</summary>
    public override Tensor Backward(Tensor dy)
    {
        if (_xhat is null || !dy.SameShape(_xhat))
            throw new ArgumentException($"Layer {Name} {this}: dy {dy} does not match the last Forward's output {_xhat?.ToString() ?? "(none)"}.", nameof(dy));
        var dx = BatchNormBase.EnsureLike(ref _dx, dy);
        int rows = dy.Length / _d;
        var ds = dy.Span; var hs = _xhat.Span; var xs = dx.Span; var g = _g.AsSpan();
        var w = Weight.Value.Span; var dw = Weight.Grad.Span; var db = Bias.Grad.Span;
        for (int r = 0; r < rows; r++)
        {
            var dr = ds.Slice(r * _d, _d); var hr = hs.Slice(r * _d, _d); var xr = xs.Slice(r * _d, _d);
            TensorPrimitives.FusedMultiplyAdd(dr, hr, dw, dw);
            TensorPrimitives.Add(db, dr, db);
            if (!ComputeInputGrad) continue;  // first layer: nothing consumes dx
            TensorPrimitives.Multiply(dr, w, g);
            float meanG = (float)(LaneSums.Sum(g) / _d), meanGx = (float)(LaneSums.Dot(g, hr) / _d);
            TensorPrimitives.Multiply(hr, -meanGx, xr);
            TensorPrimitives.Add(xr, g, xr);
            TensorPrimitives.Add(xr, -meanG, xr);
            TensorPrimitives.Multiply(xr, _invStd[r], xr);
        }
        return dx;
    }

    public override string ToString() =>
        $"LayerNorm({(_normalizedShape is null ? "?" : Tensor.ShapeString(_normalizedShape))}, eps={BatchNormBase.Py(Eps)})";
}

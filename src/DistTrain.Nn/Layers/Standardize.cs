// Per-feature standardization as a model's first step: y = (x − mean) / std, with mean and std fitted on
// the training split and carried in the model spec ("standardize"), so eval, predict, a cluster's workers
// and an exported model all apply exactly what training applied. No parameters: a state_dict is unchanged.
// Shapes: B = batch, S = the per-sample shape, F = its element count; mean and std have F entries (or 1, global).
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class Standardize : Layer
{
    private readonly float[] _mean, _std;
    private int[] _shape = [];
    private Tensor? _y, _dx;

    public Standardize(float[] mean, float[] std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Length == 0 || mean.Length != std.Length)
            throw new ArgumentException($"Standardize needs as many stds ({std.Length}) as means ({mean.Length}), at least one.");
        foreach (var s in std)
            if (!(s > 0) || !float.IsFinite(s)) throw new ArgumentException($"Standardize std {s} must be positive and finite.");
        _mean = (float[])mean.Clone();
        _std = (float[])std.Clone();
    }

    public IReadOnlyList<float> Mean => _mean;
    public IReadOnlyList<float> Std => _std;

    public override int[] Build(int[] inputShape)
    {
        int f = 1;
        foreach (var d in inputShape) f *= d;
        if (_mean.Length != 1 && _mean.Length != f)
            throw ShapeError(inputShape, $"{_mean.Length} features (the standardization was fitted on samples of {_mean.Length} values)");
        return _shape = inputShape;
    }

    // x (B, S) -> y (B, S): y[b, j] = (x[b, j] − mean[j]) / std[j]; division (not a reciprocal) to match Normalization.Apply bit for bit
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        var y = Workspace.Ensure(ref _y, x.Dim(0), _shape);
        var xs = x.Span; var ys = y.Span;
        int f = xs.Length / x.Dim(0);
        if (_mean.Length == 1)
        {
            float m = _mean[0], s = _std[0];
            for (int i = 0; i < xs.Length; i++) ys[i] = (xs[i] - m) / s;
            return y;
        }
        for (int o = 0; o < xs.Length; o += f)
            for (int j = 0; j < f; j++) ys[o + j] = (xs[o + j] - _mean[j]) / _std[j];
        return y;
    }

    // dy (B, S) -> dx (B, S) = dy / std
    public override Tensor Backward(Tensor dy)
    {
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _shape);
        if (!ComputeInputGrad) return dx; // the first layer: nothing consumes dx
        var ds = dy.Span; var dxs = dx.Span;
        int f = ds.Length / dy.Dim(0);
        for (int o = 0; o < ds.Length; o += f)
            for (int j = 0; j < f; j++) dxs[o + j] = ds[o + j] / _std[_mean.Length == 1 ? 0 : j];
        return dx;
    }

    public override string ToString() => $"Standardize(features={_mean.Length})";
}

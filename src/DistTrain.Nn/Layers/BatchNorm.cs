// Batch normalization over the channel axis of x (B, C, S...) where S is the product of the trailing
// dims (H·W for 2d, 1 or L for 1d). PyTorch semantics: train mode normalizes with the batch's biased
// variance and updates running_mean/running_var (unbiased) with momentum; eval mode uses the running
// statistics. Reductions use LaneSums so the bits do not depend on the machine.
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public abstract class BatchNormBase : Layer
{
    private Tensor? _y, _dx, _xhat;          // y, dx, xhat (B, C, S...)
    private float[] _invStd = [];            // 1/sqrt(var + eps) per channel, as used by the last Forward
    private float[] _batchStats = [];        // (mean[C], unbiased var[C]) of the last training Forward
    private bool _trained;                   // whether the last Forward used batch statistics
    private int _n;                          // B·S of the last Forward

    /// <param name="numFeatures">C; null infers it from the input shape in Build.</param>
    protected BatchNormBase(int? numFeatures, float eps, float momentum)
    {
        if (numFeatures is <= 0) throw new ArgumentException($"{GetType().Name}: numFeatures must be positive, got {numFeatures}.", nameof(numFeatures));
        if (!(eps > 0)) throw new ArgumentException($"{GetType().Name}: eps must be positive, got {eps}.", nameof(eps));
        if (!(momentum >= 0 && momentum <= 1)) throw new ArgumentException($"{GetType().Name}: momentum must be in [0, 1], got {momentum}.", nameof(momentum));
        NumFeatures = numFeatures ?? 0;
        Eps = eps;
        Momentum = momentum;
    }

    public int NumFeatures { get; private set; }
    public float Eps { get; }
    public float Momentum { get; }
    public Param Weight { get; private set; } = null!;
    public Param Bias { get; private set; } = null!;
    public Param RunningMean { get; private set; } = null!;
    public Param RunningVar { get; private set; } = null!;
    /// <summary>Counter of training batches, stored as a float buffer (PyTorch keeps an int64).</summary>
    public Param NumBatchesTracked { get; private set; } = null!;

    /// <summary>The per-sample ranks this layer accepts (2d: 3 for (C,H,W); 1d: 1 or 2).</summary>
    protected abstract bool AcceptsRank(int rank);
    protected abstract string ExpectedShape { get; }

    public override int[] Build(int[] inputShape)
    {
        if (!AcceptsRank(inputShape.Length) || inputShape.Any(d => d <= 0)) throw ShapeError(inputShape, ExpectedShape);
        if (NumFeatures != 0 && inputShape[0] != NumFeatures)
            throw ShapeError(inputShape, $"{NumFeatures} channels in dimension 1 (numFeatures={NumFeatures})");
        NumFeatures = inputShape[0];
        Weight = DeclareParam("weight", NumFeatures);
        Bias = DeclareParam("bias", NumFeatures);
        RunningMean = DeclareBuffer("running_mean", NumFeatures);
        RunningVar = DeclareBuffer("running_var", NumFeatures);
        NumBatchesTracked = DeclareBuffer("num_batches_tracked");
        _invStd = new float[NumFeatures];
        _batchStats = new float[2 * NumFeatures];
        return (int[])inputShape.Clone();
    }

    /// <summary>PyTorch's reset: weight 1, bias 0, running mean 0, running var 1, counter 0.</summary>
    public override void ResetParameters(Random rng)
    {
        Weight.Value.Span.Fill(1f);
        Bias.Value.Clear();
        RunningMean.Value.Clear();
        RunningVar.Value.Span.Fill(1f);
        NumBatchesTracked.Value.Clear();
    }

    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        if (!AcceptsRank(x.Rank - 1) || x.Dim(1) != NumFeatures)
            throw new ArgumentException($"Layer {Name} {this}: input {x} does not fit; expected (B, {ExpectedShape}) with C={NumFeatures}.", nameof(x));
        int b = x.Dim(0), c = NumFeatures, s = c == 0 || b == 0 ? 0 : x.Length / (b * c);
        var y = EnsureLike(ref _y, x);
        var xhat = EnsureLike(ref _xhat, x);
        _n = b * s;
        _trained = ctx.Training;
        if (_trained && _n <= 1)
            throw new ArgumentException($"Layer {Name} {this}: training needs more than one value per channel, got input {x}; use a batch larger than 1.", nameof(x));
        var xs = x.Span; var ys = y.Span; var hs = xhat.Span;
        var w = Weight.Value.Span; var bias = Bias.Value.Span;
        var rm = RunningMean.Value.Span; var rv = RunningVar.Value.Span;
        for (int ch = 0; ch < c; ch++)
        {
            float mean, invStd;
            if (_trained)
            {
                double sum = 0;
                for (int i = 0; i < b; i++) sum += LaneSums.Sum(xs.Slice((i * c + ch) * s, s));
                mean = (float)(sum / _n);
                double sq = 0;
                for (int i = 0; i < b; i++) sq += LaneSums.SumSquaredDeviation(xs.Slice((i * c + ch) * s, s), mean);
                double var = sq / _n;
                invStd = (float)(1.0 / Math.Sqrt(var + Eps));
                _batchStats[ch] = mean;
                _batchStats[c + ch] = (float)(sq / (_n - 1));
            }
            else
            {
                mean = rm[ch];
                invStd = (float)(1.0 / Math.Sqrt(rv[ch] + (double)Eps));
            }
            _invStd[ch] = invStd;
            for (int i = 0; i < b; i++)
            {
                int o = (i * c + ch) * s;
                Elementwise.NormalizeAffine(xs.Slice(o, s), mean, invStd, w[ch], bias[ch], hs.Slice(o, s), ys.Slice(o, s));
            }
        }
        if (_trained) FoldStatistics(_batchStats);
        return y;
    }

    /// <summary>Floats of <see cref="CopyBatchStatistics"/>: the batch mean and unbiased variance per channel.</summary>
    public int StatisticsLength => 2 * NumFeatures;

    /// <summary>The statistics the last training Forward folded into the running buffers: mean[C], then unbiased var[C].</summary>
    public void CopyBatchStatistics(Span<float> destination) => _batchStats.AsSpan().CopyTo(destination);

    /// <summary>
    /// The running-statistics update of one training batch (mean[C], unbiased var[C]), exactly as Forward applies it:
    /// a cluster replays the workers' micro-batch statistics through this in micro-batch order and gets the bits of one process.
    /// </summary>
    public void FoldStatistics(ReadOnlySpan<float> stats)
    {
        int c = NumFeatures;
        if (stats.Length != 2 * c)
            throw new ArgumentException($"Layer {Name} {this}: {stats.Length} statistics given, {2 * c} (mean and variance per channel) expected.", nameof(stats));
        var rm = RunningMean.Value.Span; var rv = RunningVar.Value.Span;
        for (int ch = 0; ch < c; ch++)
        {
            rm[ch] = (1 - Momentum) * rm[ch] + Momentum * stats[ch];
            rv[ch] = (1 - Momentum) * rv[ch] + Momentum * stats[c + ch];
        }
        NumBatchesTracked.Value[0] += 1f;
    }

    /// <summary>Train mode: dx = w·invstd·(dy − mean(dy) − x̂·mean(dy·x̂)); eval mode: dx = w·invstd·dy.</summary>
    public override Tensor Backward(Tensor dy)
    {
        if (_xhat is null || !dy.SameShape(_xhat))
            throw new ArgumentException($"Layer {Name} {this}: dy {dy} does not match the last Forward's output {_xhat?.ToString() ?? "(none)"}.", nameof(dy));
        int b = dy.Dim(0), c = NumFeatures, s = _n / Math.Max(b, 1);
        var dx = EnsureLike(ref _dx, dy);
        var ds = dy.Span; var hs = _xhat.Span; var xs = dx.Span;
        var w = Weight.Value.Span; var dw = Weight.Grad.Span; var db = Bias.Grad.Span;
        for (int ch = 0; ch < c; ch++)
        {
            double sdy = 0, sdyx = 0;
            for (int i = 0; i < b; i++)
            {
                int o = (i * c + ch) * s;
                sdy += LaneSums.Sum(ds.Slice(o, s));
                sdyx += LaneSums.Dot(ds.Slice(o, s), hs.Slice(o, s));
            }
            dw[ch] += (float)sdyx;
            db[ch] += (float)sdy;
            if (!ComputeInputGrad) continue;  // first layer: nothing consumes dx
            float k = w[ch] * _invStd[ch];
            float meanDy = (float)(sdy / _n), meanDyx = (float)(sdyx / _n);
            for (int i = 0; i < b; i++)
            {
                int o = (i * c + ch) * s;
                var xr = xs.Slice(o, s);
                if (_trained) Elementwise.NormalizeBackward(hs.Slice(o, s), ds.Slice(o, s), -meanDyx, -meanDy, k, xr);
                else TensorPrimitives.Multiply(ds.Slice(o, s), k, xr);
            }
        }
        return dx;
    }

    public override string ToString() =>
        $"{GetType().Name}({(NumFeatures == 0 ? "?" : NumFeatures.ToString())}, eps={Py(Eps)}, momentum={Py(Momentum)})";

    /// <summary>A float as Python prints it in a repr: 1e-05, 0.1.</summary>
    internal static string Py(float v) => v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture).ToLowerInvariant();

    /// <summary>A workspace with x's shape, reallocated only when that shape changes.</summary>
    internal static Tensor EnsureLike(ref Tensor? t, Tensor x)
    {
        if (t is not null && t.SameShape(x)) return t;
        return t = new Tensor(x.Shape);
    }
}

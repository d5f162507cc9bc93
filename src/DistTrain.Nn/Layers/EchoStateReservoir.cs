// An echo state network's reservoir (Jaeger 2001; Lukoševičius, "A practical guide to applying ESNs"): fixed random
// weights, never learned, kept as buffers so a checkpoint carries them. Leaky integration per time step:
//   h_t = (1 − a)·h_{t−1} + a·tanh(W_in·u_t + b + W·h_{t−1}),  h_{−1} = 0,
// W sparse uniform and scaled so its spectral radius is ρ. Output per step: [u_t | h_t] (with the input, as the
// readout usually wants it) or h_t. A dense layer after it is the readout, trained by SGD or in closed form
// (Solvers/RidgeReadout). Letters: B samples, T steps, F input features, N units.
// Dot products use Reductions.DotFixed, whose order does not depend on the machine's vector width.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Nn.Layers;

public sealed class EchoStateReservoir : Layer
{
    private Param _w = null!, _wIn = null!, _b = null!;
    private int _t, _f;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dx;
    private float[] _h = [], _pre = [];

    public EchoStateReservoir(int units, float spectralRadius = 0.9f, float leak = 1f, float inputScale = 1f, float density = 0.1f,
        bool includeInput = true, int washout = 0)
    {
        if (units <= 0) throw new ArgumentException($"EchoStateReservoir: units must be positive, not {units}.", nameof(units));
        if (!(spectralRadius > 0) || !float.IsFinite(spectralRadius)) throw new ArgumentException($"EchoStateReservoir: spectral_radius must be positive, not {spectralRadius}.", nameof(spectralRadius));
        if (!(leak > 0 && leak <= 1)) throw new ArgumentException($"EchoStateReservoir: leak must lie in (0, 1], not {leak}.", nameof(leak));
        if (!(inputScale > 0) || !float.IsFinite(inputScale)) throw new ArgumentException($"EchoStateReservoir: input_scale must be positive, not {inputScale}.", nameof(inputScale));
        if (!(density > 0 && density <= 1)) throw new ArgumentException($"EchoStateReservoir: density must lie in (0, 1], not {density}.", nameof(density));
        if (washout < 0) throw new ArgumentException($"EchoStateReservoir: washout must be ≥ 0, not {washout}.", nameof(washout));
        Units = units; SpectralRadius = spectralRadius; Leak = leak; InputScale = inputScale; Density = density;
        IncludeInput = includeInput; Washout = washout;
    }

    public int Units { get; }
    public float SpectralRadius { get; }
    public float Leak { get; }
    public float InputScale { get; }
    public float Density { get; }
    public bool IncludeInput { get; }
    /// <summary>Leading steps of each sequence whose states still depend on h_{−1} = 0: the ridge readout and its
    /// error measure skip them.</summary>
    public int Washout { get; }
    /// <summary>W (N,N), the recurrent weights.</summary>
    public Param Recurrent => _w;
    public int OutputFeatures => (IncludeInput ? _f : 0) + Units;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2) throw ShapeError(inputShape, "(T, F): a sequence of T steps with F features");
        _t = inputShape[0]; _f = inputShape[1];
        if (Washout >= _t) throw ShapeError(inputShape, $"more than washout={Washout} steps");
        _inShape = inputShape;
        _outShape = [_t, OutputFeatures];
        _w = DeclareBuffer("weight_hh", Units, Units);
        _wIn = DeclareBuffer("weight_ih", Units, _f);
        _b = DeclareBuffer("bias_ih", Units);
        _h = new float[Units];
        _pre = new float[Units];
        return _outShape;
    }

    public override void ResetParameters(Random rng)
    {
        var w = _w.Value.Span;
        for (int i = 0; i < w.Length; i++)
        {
            double keep = rng.NextDouble(), v = rng.NextDouble() * 2 - 1;
            w[i] = keep < Density ? (float)v : 0f;
        }
        double r = EstimateSpectralRadius(w, Units);
        if (r > 0)
            for (int i = 0; i < w.Length; i++) w[i] = (float)(w[i] * (SpectralRadius / r));
        foreach (var p in new[] { _wIn, _b })
        {
            var s = p.Value.Span;
            for (int i = 0; i < s.Length; i++) s[i] = (float)((rng.NextDouble() * 2 - 1) * InputScale);
        }
    }

    /// <summary>
    /// max |λ| of a square matrix (N,N) by the growth rate of repeated products, in double: the mean of log ‖W v‖ over
    /// 1,000 normalised iterations after 200 of burn-in (Gelfand: ‖Wᵏ‖^{1/k} → ρ). Unlike the plain power method this
    /// also holds when the dominant eigenvalues are a complex pair, as they are for most random matrices.
    /// </summary>
    public static double EstimateSpectralRadius(ReadOnlySpan<float> w, int n, int burnIn = 200, int iterations = 1000)
    {
        var v = new double[n];
        var next = new double[n];
        for (int i = 0; i < n; i++) v[i] = 1.0 / Math.Sqrt(n) * (1 + 0.01 * (i % 7));
        double logSum = 0;
        for (int k = 0; k < burnIn + iterations; k++)
        {
            double norm = 0;
            for (int i = 0; i < n; i++)
            {
                double s = 0;
                for (int j = 0; j < n; j++) s += w[i * n + j] * v[j];
                next[i] = s;
                norm += s * s;
            }
            norm = Math.Sqrt(norm);
            if (norm == 0) return 0;
            for (int i = 0; i < n; i++) v[i] = next[i] / norm;
            if (k >= burnIn) logSum += Math.Log(norm);
        }
        return Math.Exp(logSum / iterations);
    }

    /// <summary>One step of the reservoir: h ← (1 − a)·h + a·tanh(W_in·u + b + W·h) for the input u (F), h (N) in place.
    /// What Forward does per step; a free-running forecast calls it with its own predictions as u.</summary>
    public void Step(ReadOnlySpan<float> u, Span<float> h)
    {
        var w = _w.Value.Span; var wIn = _wIn.Value.Span; var b = _b.Value.Span;
        int n = Units;
        for (int i = 0; i < n; i++)
            _pre[i] = b[i] + Reductions.DotFixed(wIn.Slice(i * _f, _f), u) + Reductions.DotFixed(w.Slice(i * n, n), h);
        for (int i = 0; i < n; i++) h[i] = (1f - Leak) * h[i] + Leak * MathF.Tanh(_pre[i]);
    }

    // u (B,T,F) -> y (B,T,F+N) = [u_t | h_t] per step (or (B,T,N) without the input)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0), n = Units, o = OutputFeatures;
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        var u = x.Span; var ys = y.Span;
        for (int s = 0; s < batch; s++)
        {
            Array.Clear(_h);
            for (int t = 0; t < _t; t++)
            {
                var ut = u.Slice((s * _t + t) * _f, _f);
                Step(ut, _h);
                var row = ys.Slice((s * _t + t) * o, o);
                if (IncludeInput) { ut.CopyTo(row); _h.CopyTo(row.Slice(_f)); }
                else _h.CopyTo(row);
            }
        }
        return y;
    }

    // The reservoir is fixed and comes first, so nothing upstream needs a gradient; back-propagating through time
    // into a learned input layer is not what an echo state network does.
    public override Tensor Backward(Tensor dy)
    {
        if (ComputeInputGrad)
            throw new InvalidOperationException($"Layer {Name} {this}: an echo state reservoir passes no gradient to its input; " +
                                                "put it first, before any layer with parameters.");
        return Workspace.Ensure(ref _dx, dy.Dim(0), _inShape);
    }

    public override string ToString() => FormattableString.Invariant(
        $"EchoStateReservoir(units={Units}, spectral_radius={SpectralRadius}, leak={Leak}, input_scale={InputScale}, density={Density}{(IncludeInput ? "" : ", include_input=false")}{(Washout == 0 ? "" : $", washout={Washout}")})");
}

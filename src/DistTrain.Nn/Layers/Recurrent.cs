// Shared machinery of RNN, LSTM and GRU (one layer, batch_first, zero initial state), with PyTorch's
// parameters weight_ih_l0 (G·H,F), weight_hh_l0 (G·H,H), bias_ih_l0, bias_hh_l0 (G·H) and BPTT.
// Letters: B batch, T steps, F input size, H hidden size, G gates (1, 4, 3), GH = G·H.
// All caches are time-major, row (t·B + b), so each step's block is contiguous: the input projection
// of all steps is one GEMM (T·B,F)·W_ihᵀ, each step adds h·W_hhᵀ, and backward computes dW_ih, dW_hh
// and dx as one GEMM each over all steps. Caches only grow, so steady-state steps allocate nothing.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public abstract class RecurrentLayer : Layer
{
    protected float[] Xt = [];     // (T·B, F) input, time-major; becomes dx (time-major) in Backward
    protected float[] Gt = [];     // (T·B, GH) gate pre-activations -> activations -> input-side gate gradients
    protected float[] Hs = [];     // (T+1, B, H) hidden states; slot 0 is h₋₁ = 0, slot t+1 is h_t
    protected float[] Dh = [];     // (B, H) gradient flowing back into h_t
    private float[] _bias = [];    // (GH) bias folded into the input projection; column-sum scratch in Backward
    private Tensor? _y, _dx;       // y (B,T,H) or (B,H); dx (B,T,F)
    private int _batch, _steps;

    protected RecurrentLayer(int hiddenSize, bool returnSequences, int gates, int? inputSize)
    {
        if (hiddenSize <= 0) throw new ArgumentException($"{GetType().Name}: hiddenSize must be positive, got {hiddenSize}.", nameof(hiddenSize));
        if (inputSize is <= 0) throw new ArgumentException($"{GetType().Name}: inputSize must be positive, got {inputSize}.", nameof(inputSize));
        HiddenSize = hiddenSize;
        ReturnSequences = returnSequences;
        Gates = gates;
        InputSize = inputSize ?? 0;
    }

    /// <summary>F; inferred from the input shape in Build when not given.</summary>
    public int InputSize { get; private set; }
    public int HiddenSize { get; }
    /// <summary>True: many-to-many output (B,T,H); false: many-to-one, the last hidden state (B,H).</summary>
    public bool ReturnSequences { get; }
    public int Gates { get; }
    public Param WeightIh { get; private set; } = null!;
    public Param WeightHh { get; private set; } = null!;
    public Param BiasIh { get; private set; } = null!;
    public Param BiasHh { get; private set; } = null!;

    protected int H => HiddenSize;
    protected int GH => Gates * HiddenSize;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2 || inputShape[0] <= 0 || inputShape[1] <= 0 || (InputSize != 0 && inputShape[1] != InputSize))
            throw ShapeError(inputShape, $"(T,F) per sample (batch_first){(InputSize != 0 ? $" with F={InputSize}" : "")}");
        InputSize = inputShape[1];
        WeightIh = DeclareParam("weight_ih_l0", GH, InputSize);
        WeightHh = DeclareParam("weight_hh_l0", GH, H);
        BiasIh = DeclareParam("bias_ih_l0", GH);
        BiasHh = DeclareParam("bias_hh_l0", GH);
        _bias = new float[GH];
        return ReturnSequences ? [inputShape[0], H] : [H];
    }

    /// <summary>PyTorch's init: every weight and bias from U(−1/√H, 1/√H).</summary>
    public override void ResetParameters(Random rng)
    {
        float k = 1f / MathF.Sqrt(H);
        foreach (var p in new[] { WeightIh, WeightHh, BiasIh, BiasHh })
        {
            var s = p.Value.Span;
            for (int i = 0; i < s.Length; i++) s[i] = (rng.NextSingle() * 2f - 1f) * k;
        }
    }

    /// <summary>Writes the bias that is added to the input projection of every step (GH).</summary>
    protected abstract void FoldBias(Span<float> bias);
    /// <summary>Grows cell-specific caches for T steps of batch B.</summary>
    protected abstract void EnsureCellCaches(int steps, int batch);
    /// <summary>Gt block t holds x·W_ihᵀ + bias; adds the hidden projection of Hs[t], activates, writes Hs[t+1].</summary>
    protected abstract void StepForward(int t, int batch);
    /// <summary>Called once before the backward loop (clear cell-state gradients).</summary>
    protected virtual void BeginBackward(int batch) { }
    /// <summary>Dh holds ∂L/∂h_t. Turns Gt block t into gradients of the input-side pre-activations, fills
    /// <see cref="HiddenGrads"/> block t, and leaves in Dh the part of ∂L/∂h₍t−1₎ that bypasses W_hh.</summary>
    protected abstract void StepBackward(int t, int batch);
    /// <summary>Gradients of the hidden-side pre-activations (T·B, GH), multiplied by W_hh; Gt by default.</summary>
    protected virtual float[] HiddenGrads => Gt;
    /// <summary>Whether h₍t−1₎ also reaches h_t outside W_hh (GRU), so Dh accumulates the W_hh path.</summary>
    protected virtual bool DirectHiddenPath => false;

    // x (B,T,F) -> y (B,T,H) or (B,H)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        if (x.Rank != 3 || x.Dim(0) < 1 || x.Dim(1) < 1 || x.Dim(2) != InputSize)
            throw new ArgumentException($"Layer {Name} {this}: input {x} does not fit; expected (B,T,{InputSize}) with B, T ≥ 1.", nameof(x));
        int b = x.Dim(0), steps = x.Dim(1), f = InputSize, rows = steps * b;
        Grow(ref Xt, rows * f); Grow(ref Gt, rows * GH); Grow(ref Hs, (steps + 1) * b * H); Grow(ref Dh, b * H);
        EnsureCellCaches(steps, b);
        _batch = b; _steps = steps;

        var xs = x.Span;
        for (int i = 0; i < b; i++)
            for (int t = 0; t < steps; t++)
                xs.Slice((i * steps + t) * f, f).CopyTo(Xt.AsSpan((t * b + i) * f, f));

        // Bias prefill, then accumulate the projection of every step in one GEMM.
        FoldBias(_bias);
        var g = Gt.AsSpan(0, rows * GH);
        for (int r = 0; r < rows; r++) _bias.CopyTo(g.Slice(r * GH, GH));
        Gemm.Sgemm(false, true, rows, GH, f, Xt.AsSpan(0, rows * f), f, WeightIh.Value.Span, f, g, GH, accumulate: true);

        Hs.AsSpan(0, b * H).Clear();
        for (int t = 0; t < steps; t++) StepForward(t, b);

        if (!ReturnSequences)
        {
            var y1 = Workspace.Ensure(ref _y, b, H);
            Hs.AsSpan(steps * b * H, b * H).CopyTo(y1.Span);
            return y1;
        }
        var y = Ensure3(ref _y, b, steps, H);
        var ys = y.Span;
        for (int t = 0; t < steps; t++)
            for (int i = 0; i < b; i++)
                Hs.AsSpan(((t + 1) * b + i) * H, H).CopyTo(ys.Slice((i * steps + t) * H, H));
        return y;
    }

    // dy (B,T,H) or (B,H) -> dx (B,T,F); adds into all four parameter gradients.
    public override Tensor Backward(Tensor dy)
    {
        if (_y is null || !dy.SameShape(_y))
            throw new ArgumentException($"Layer {Name} {this}: dy {dy} does not match the last Forward's output {_y?.ToString() ?? "(none)"}.", nameof(dy));
        int b = _batch, steps = _steps, f = InputSize, rows = steps * b;
        var ds = dy.Span;
        var dh = Dh.AsSpan(0, b * H);
        if (ReturnSequences) dh.Clear(); else ds.CopyTo(dh);
        BeginBackward(b);
        var whh = WeightHh.Value.Span;
        for (int t = steps - 1; t >= 0; t--)
        {
            if (ReturnSequences)
                for (int i = 0; i < b; i++)
                    TensorPrimitives.Add(dh.Slice(i * H, H), ds.Slice((i * steps + t) * H, H), dh.Slice(i * H, H));
            StepBackward(t, b);
            if (t > 0)
                Gemm.Sgemm(false, false, b, H, GH, HiddenGrads.AsSpan(t * b * GH, b * GH), GH, whh, H, dh, H, accumulate: DirectHiddenPath);
        }

        var gi = Gt.AsSpan(0, rows * GH);
        var gh = HiddenGrads.AsSpan(0, rows * GH);
        Gemm.Sgemm(true, false, GH, f, rows, gi, GH, Xt.AsSpan(0, rows * f), f, WeightIh.Grad.Span, f, accumulate: true);
        if (steps > 1)  // h₋₁ = 0 contributes nothing to dW_hh
            Gemm.Sgemm(true, false, GH, H, rows - b, gh[(b * GH)..], GH, Hs.AsSpan(b * H, (rows - b) * H), H, WeightHh.Grad.Span, H, accumulate: true);
        // Bias gradients: column sums in row order (fixed, so deterministic); one pass when the
        // input-side and hidden-side gradients are the same array (RNN, LSTM).
        var colSum = _bias.AsSpan(0, GH);
        ColumnSums(gi, GH, colSum);
        TensorPrimitives.Add(BiasIh.Grad.Span, colSum, BiasIh.Grad.Span);
        if (!ReferenceEquals(HiddenGrads, Gt)) ColumnSums(gh, GH, colSum);
        TensorPrimitives.Add(BiasHh.Grad.Span, colSum, BiasHh.Grad.Span);

        var dx = Ensure3(ref _dx, b, steps, f);
        if (!ComputeInputGrad) return dx;  // first layer: nothing consumes dx

        // dx (time-major) = dG·W_ih, written over Xt, which is no longer needed.
        var dxt = Xt.AsSpan(0, rows * f);
        Gemm.Sgemm(false, false, rows, f, GH, gi, GH, WeightIh.Value.Span, f, dxt, f);
        var dxs = dx.Span;
        for (int i = 0; i < b; i++)
            for (int t = 0; t < steps; t++)
                dxt.Slice((t * b + i) * f, f).CopyTo(dxs.Slice((i * steps + t) * f, f));
        return dx;
    }

    public override string ToString() =>
        $"{KindName}({(InputSize == 0 ? "?" : InputSize.ToString())}, {H}, batch_first=True, return_sequences={(ReturnSequences ? "True" : "False")})";

    /// <summary>PyTorch's class name: RNN, LSTM, GRU.</summary>
    protected abstract string KindName { get; }

    /// <summary>Sample i's hidden state in Hs slot <paramref name="slot"/>: slot t is h₍t−1₎, the input of step t.</summary>
    protected Span<float> HiddenRow(int slot, int batch, int i) => Hs.AsSpan((slot * batch + i) * H, H);

    protected static void Grow(ref float[] a, int n)
    {
        if (a.Length < n) a = new float[n];
    }

    /// <summary>sums = Σ_r m[r, :] (the bias scratch is free in Backward).</summary>
    private static void ColumnSums(ReadOnlySpan<float> m, int cols, Span<float> sums)
    {
        m[..cols].CopyTo(sums);
        for (int r = 1; r < m.Length / cols; r++) TensorPrimitives.Add(sums, m.Slice(r * cols, cols), sums);
    }

    private static Tensor Ensure3(ref Tensor? t, int d0, int d1, int d2)
    {
        if (t is not null && t.Rank == 3 && t.Dim(0) == d0 && t.Dim(1) == d1 && t.Dim(2) == d2) return t;
        return t = new Tensor(d0, d1, d2);
    }
}

// Shared machinery of RNN, LSTM and GRU (one layer, batch_first, zero initial state), with PyTorch's
// parameters weight_ih_l0 (G·H,F), weight_hh_l0 (G·H,H), bias_ih_l0, bias_hh_l0 (G·H) and BPTT.
// Letters: B batch, T steps, F input size, H hidden size, G gates (1, 4, 3), GH = G·H, P = F + 1 rounded up
// to a multiple of 16 (zero padding), K = P + H.
// All caches are time-major, row (t·B + b), so each step's block is contiguous. Row (t, b) of XH is
// [x_t | 1 | 0… | h₍t−1₎], and Wt (K, GH) = [W_ihᵀ; folded bias; W_hhᵀ] is rebuilt each Forward, so
// - RNN and LSTM compute a step's pre-activations as ONE GEMM XH_t·Wt (input projection, bias and
//   hidden projection together, K-deep, written rather than accumulated): no (T·B, GH) input-projection
//   pass through memory, and B = Wt is read in place in the fast nn shape (no per-step packing of W_hh);
// - GRU, whose n gate needs W_hn h apart, projects x and the bias for all steps in one GEMM and h per step;
// - backward gets dW_ih, the bias sums (the 1 column) and dW_hh from one GEMM dGᵀ·XH over all steps.
// Caches only grow, so steady-state steps allocate nothing.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public abstract class RecurrentLayer : Layer
{
    private float[] _xh = [];      // ((T+1)·B, K) rows [x_t | 1 | 0… | h₍t−1₎] (h at column P); block T holds h_T; x part becomes dx in Backward
    protected float[] Gt = [];     // (T·B, GH) gate pre-activations -> activations -> input-side gate gradients
    protected float[] Dh = [];     // (B, H) gradient flowing back into h_t
    private float[] _wt = [];      // (K, GH) [W_ihᵀ; folded bias; 0…; W_hhᵀ] of the current Forward
    private float[] _bias = [];    // (GH) the folded bias
    private float[] _dhT = [];     // (H, B) the W_hh part of ∂L/∂h₍t−1₎, transposed
    private float[] _dw = [];      // backward scratch: input side (GH, F+1) = [dW_ih | db_ih], hidden side (GH, K−F) = [db_hh | 0… | dW_hh]
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
    // The padding makes K a whole number of 16-wide GEMM column panels when H is (the backward dW GEMM
    // has N = K; an edge panel there cost ~15% of it); the zero columns add exact zeros.
    private int P => (InputSize + 1 + 15) & ~15;
    private int K => P + HiddenSize;

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
    /// <summary>True: StepForward computes its whole pre-activation with <see cref="ProjectStep"/> (RNN, LSTM).
    /// False: Forward fills Gt with x·W_ihᵀ + bias for all steps, and StepForward adds
    /// <see cref="ProjectHidden"/> as it needs (GRU).</summary>
    protected virtual bool FusedStep => true;
    /// <summary>Grows cell-specific caches for T steps of batch B.</summary>
    protected abstract void EnsureCellCaches(int steps, int batch);
    /// <summary>Fills or completes Gt block t's pre-activations, activates, writes h_t with <see cref="HiddenRow"/>(t+1).</summary>
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
        int b = x.Dim(0), steps = x.Dim(1), f = InputSize, k = K, rows = steps * b;
        Grow(ref _xh, (rows + b) * k); Grow(ref Gt, rows * GH); Grow(ref Dh, b * H);
        EnsureCellCaches(steps, b);
        _batch = b; _steps = steps;

        var xs = x.Span;
        for (int i = 0; i < b; i++)
            for (int t = 0; t < steps; t++)
            {
                var row = _xh.AsSpan((t * b + i) * k, k);
                xs.Slice((i * steps + t) * f, f).CopyTo(row);
                row[f] = 1f;
                row[(f + 1)..P].Clear();
            }
        for (int i = 0; i < b; i++) _xh.AsSpan(i * k + P, H).Clear();   // h₋₁ = 0
        BuildWt();

        if (!FusedStep)  // x·W_ihᵀ + bias for every step at once: the 1 column carries the bias
            Gemm.Sgemm(false, false, rows, GH, f + 1, _xh, k, _wt, GH, Gt.AsSpan(0, rows * GH), GH);
        for (int t = 0; t < steps; t++) StepForward(t, b);

        if (!ReturnSequences)
        {
            var y1 = Workspace.Ensure(ref _y, b, H);
            for (int i = 0; i < b; i++) HiddenRow(steps, b, i).CopyTo(y1.Span.Slice(i * H, H));
            return y1;
        }
        var y = Ensure3(ref _y, b, steps, H);
        var ys = y.Span;
        for (int t = 0; t < steps; t++)
            for (int i = 0; i < b; i++)
                HiddenRow(t + 1, b, i).CopyTo(ys.Slice((i * steps + t) * H, H));
        return y;
    }

    // dy (B,T,H) or (B,H) -> dx (B,T,F); adds into all four parameter gradients.
    public override Tensor Backward(Tensor dy)
    {
        if (_y is null || !dy.SameShape(_y))
            throw new ArgumentException($"Layer {Name} {this}: dy {dy} does not match the last Forward's output {_y?.ToString() ?? "(none)"}.", nameof(dy));
        int b = _batch, steps = _steps, f = InputSize, k = K, rows = steps * b;
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
            if (t > 0) BackThroughWhh(t, b, whh, dh);
        }

        // Parameter gradients over all steps at once: [dW_ih | db_ih] = dGᵀ·[x | 1] and [db_hh | dW_hh] =
        // dG_hᵀ·[1 | 0… | h₍t−1₎] (the rows of t = 0 add exact zeros to dW_hh). Each element is one FMA chain over
        // the rows in order (the bias sums too: multiplying by 1 is exact), so the bits are fixed.
        var gi = Gt.AsSpan(0, rows * GH);
        var xh = _xh.AsSpan(0, rows * k);
        // _dw rows: input side [dW_ih | db_ih] at inAt + g·inStride, hidden side [db_hh | dW_hh] at hidAt + g·hidStride.
        int inAt = 0, inStride, hidAt, hidStride;
        if (ReferenceEquals(HiddenGrads, Gt))  // RNN, LSTM: both sides in one GEMM, sharing the 1 column
        {
            Grow(ref _dw, GH * k);
            Gemm.Sgemm(true, false, GH, k, rows, gi, GH, xh, k, _dw, k);
            inStride = hidStride = k; hidAt = f;
        }
        else
        {
            inStride = f + 1; hidStride = k - f; hidAt = GH * inStride;
            Grow(ref _dw, hidAt + GH * hidStride);
            Gemm.Sgemm(true, false, GH, f + 1, rows, gi, GH, xh, k, _dw, inStride);
            Gemm.Sgemm(true, false, GH, hidStride, rows, HiddenGrads.AsSpan(0, rows * GH), GH, xh[f..], k, _dw.AsSpan(hidAt), hidStride);
        }
        var dwih = WeightIh.Grad.Span; var dwhh = WeightHh.Grad.Span;
        var dbih = BiasIh.Grad.Span; var dbhh = BiasHh.Grad.Span;
        for (int g = 0; g < GH; g++)
        {
            var inRow = _dw.AsSpan(inAt + g * inStride, f + 1);
            var hidRow = _dw.AsSpan(hidAt + g * hidStride, k - f);
            TensorPrimitives.Add(dwih.Slice(g * f, f), inRow[..f], dwih.Slice(g * f, f));
            dbih[g] += inRow[f];
            dbhh[g] += hidRow[0];
            TensorPrimitives.Add(dwhh.Slice(g * H, H), hidRow[(P - f)..], dwhh.Slice(g * H, H));
        }

        var dx = Ensure3(ref _dx, b, steps, f);
        if (!ComputeInputGrad) return dx;  // first layer: nothing consumes dx

        // dx (time-major) = dG·W_ih, written over the x part of XH, which is no longer needed.
        Gemm.Sgemm(false, false, rows, f, GH, gi, GH, WeightIh.Value.Span, f, xh, k);
        var dxs = dx.Span;
        for (int i = 0; i < b; i++)
            for (int t = 0; t < steps; t++)
                xh.Slice((t * b + i) * k, f).CopyTo(dxs.Slice((i * steps + t) * f, f));
        return dx;
    }

    public override string ToString() =>
        $"{KindName}({(InputSize == 0 ? "?" : InputSize.ToString())}, {H}, batch_first=True, return_sequences={(ReturnSequences ? "True" : "False")})";

    /// <summary>PyTorch's class name: RNN, LSTM, GRU.</summary>
    protected abstract string KindName { get; }

    // dh (B,H) = (or += with a direct path) dG_h,t·W_hh, computed as (W_hhᵀ·dG_h,tᵀ)ᵀ: that shape reads W_hh
    // in place and packs only the small dG block, ~1.3× the rate of dG·W_hh here (AVX2, B = 64); the
    // transpose back is B·H copies. Each element is the same FMA chain over GH in order either way.
    private void BackThroughWhh(int t, int b, ReadOnlySpan<float> whh, Span<float> dh)
    {
        int h = H;
        Grow(ref _dhT, h * b);
        var dhT = _dhT.AsSpan(0, h * b);
        Gemm.Sgemm(true, true, h, b, GH, whh, h, HiddenGrads.AsSpan(t * b * GH, b * GH), GH, dhT, b);
        if (DirectHiddenPath)
            for (int j = 0; j < h; j++)
                for (int i = 0; i < b; i++) dh[i * h + j] += dhT[j * b + i];
        else
            for (int j = 0; j < h; j++)
                for (int i = 0; i < b; i++) dh[i * h + j] = dhT[j * b + i];
    }

    /// <summary>Sample i's hidden state in slot <paramref name="slot"/>: slot t is h₍t−1₎, the input of step t.</summary>
    protected Span<float> HiddenRow(int slot, int batch, int i) => _xh.AsSpan((slot * batch + i) * K + P, H);

    /// <summary>block (B, GH) = x_t·W_ihᵀ + bias + h₍t−1₎·W_hhᵀ, one GEMM; step 0 skips h₋₁ = 0.</summary>
    protected void ProjectStep(int t, int batch, Span<float> block)
    {
        int k = K;
        Gemm.Sgemm(false, false, batch, GH, t == 0 ? InputSize + 1 : k, _xh.AsSpan(t * batch * k, batch * k), k, _wt, GH, block, GH);
    }

    /// <summary>dst (B, GH) = h₍t−1₎·W_hhᵀ (no bias); t ≥ 1.</summary>
    protected void ProjectHidden(int t, int batch, Span<float> dst)
    {
        int k = K, p = P;
        Gemm.Sgemm(false, false, batch, GH, H, _xh.AsSpan(t * batch * k + p, (batch - 1) * k + H), k, _wt.AsSpan(p * GH), GH, dst, GH);
    }

    // Wt = [W_ihᵀ; bias; 0…; W_hhᵀ] (K, GH): the transposes cost ~(F+H)·GH copies per Forward, once, where
    // the nt shape would re-pack W_hh at every step.
    private void BuildWt()
    {
        int f = InputSize, gh = GH, h = H;
        Grow(ref _wt, K * gh);
        var wih = WeightIh.Value.Span; var whh = WeightHh.Value.Span;
        for (int g = 0; g < gh; g++)
        {
            var src = wih.Slice(g * f, f);
            for (int p = 0; p < f; p++) _wt[p * gh + g] = src[p];
        }
        FoldBias(_bias);
        _bias.AsSpan(0, gh).CopyTo(_wt.AsSpan(f * gh, gh));
        int h0 = P * gh;
        _wt.AsSpan((f + 1) * gh, h0 - (f + 1) * gh).Clear();
        for (int g = 0; g < gh; g++)
        {
            var src = whh.Slice(g * h, h);
            for (int q = 0; q < h; q++) _wt[h0 + q * gh + g] = src[q];
        }
    }

    protected static void Grow(ref float[] a, int n)
    {
        if (a.Length < n) a = new float[n];
    }

    private static Tensor Ensure3(ref Tensor? t, int d0, int d1, int d2)
    {
        if (t is not null && t.Rank == 3 && t.Dim(0) == d0 && t.Dim(1) == d1 && t.Dim(2) == d2) return t;
        return t = new Tensor(d0, d1, d2);
    }
}

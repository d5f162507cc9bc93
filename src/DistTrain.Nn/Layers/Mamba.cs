// Mamba mixer (Gu & Dao 2023; mamba_ssm.modules.mamba_simple.Mamba without the fused kernels), with its
// parameter names: in_proj (2Di,Dm) → x, z; causal depthwise conv1d (Di,1,K) + bias, SiLU → u; x_proj (R+2N,Di)
// → δ, B, C; dt_proj (Di,R) + bias, softplus → Δ; the selective scan (SelectiveScan) with A = −exp(A_log) (Di,N)
// and D (Di); the gate y ⊙ SiLU(z); out_proj (Dm,Di). in_proj, x_proj and out_proj are Dense children; dt_proj
// and the conv are held here because their init (dt bias = softplus⁻¹ of a log-uniform Δ) follows the children's.
// Letters: B batch, T steps, Dm model dim, Di = expand·Dm, N state size, R dt rank, K conv width.
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tensors.Kernels.Operators;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class Mamba : Layer
{
    private readonly Dense _inProj, _xProj, _outProj;
    private int _t;
    private int[] _diShape = [], _rShape = [], _hShape = [], _xzShape = [], _xwShape = [];
    private Tensor? _x, _xz, _xdbl, _xc, _sxc, _sz, _u, _delta0, _dtr, _delta, _yScan, _gated, _h, _abar;   // (B,T,Di) unless noted; h, abar (B,T,N,Di); delta0 (B,T,R)
    private Tensor? _dxz, _du, _dDelta, _dxdbl, _dDtr, _dyScan;
    private float[] _at = [], _dat = [], _wt = [], _dwt = [], _scanScratch = [];
    private double[] _scanSums = [];

    public Mamba(int dModel, int dState = 16, int expand = 2, int dConv = 4, int? dtRank = null)
    {
        if (dModel <= 0 || dState <= 0 || expand <= 0 || dConv <= 0 || dtRank is <= 0)
            throw new ArgumentException($"Mamba(d_model={dModel}, d_state={dState}, expand={expand}, d_conv={dConv}, dt_rank={dtRank}): sizes must be positive.");
        DModel = dModel; DState = dState; DInner = expand * dModel; DConv = dConv;
        DtRank = dtRank ?? (dModel + 15) / 16;
        _inProj = new Dense(DModel, 2 * DInner, bias: false);
        _xProj = new Dense(DInner, DtRank + 2 * DState, bias: false);
        _outProj = new Dense(DInner, DModel, bias: false);
    }

    public int DModel { get; }
    public int DState { get; }
    public int DInner { get; }
    public int DConv { get; }
    public int DtRank { get; }
    private int Xw => DtRank + 2 * DState;   // x_proj's row: [δ (R) | B (N) | C (N)]
    public Param ConvWeight { get; private set; } = null!;
    public Param ConvBias { get; private set; } = null!;
    public Param DtWeight { get; private set; } = null!;
    public Param DtBias { get; private set; } = null!;
    public Param ALog { get; private set; } = null!;
    public Param D { get; private set; } = null!;

    public override IEnumerable<(string Name, Layer Layer)> Children => [("in_proj", _inProj), ("x_proj", _xProj), ("out_proj", _outProj)];

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2 || inputShape[1] != DModel) throw ShapeError(inputShape, $"(T,{DModel}) steps x d_model");
        _t = inputShape[0];
        int di = DInner, n = DState;
        ConvWeight = DeclareParam("conv1d.weight", di, 1, DConv);
        ConvBias = DeclareParam("conv1d.bias", di);
        DtWeight = DeclareParam("dt_proj.weight", di, DtRank);
        DtBias = DeclareParam("dt_proj.bias", di);
        ALog = DeclareParam("A_log", di, n);
        D = DeclareParam("D", di);
        _inProj.Build(inputShape);
        _xProj.Build([_t, di]);
        _outProj.Build([_t, di]);
        _diShape = [_t, di]; _rShape = [_t, DtRank]; _hShape = [_t, n, di]; _xzShape = [_t, 2 * di]; _xwShape = [_t, Xw];
        _at = new float[n * di]; _dat = new float[n * di]; _wt = new float[DConv * di]; _dwt = new float[DConv * di];
        _scanScratch = new float[SelectiveScan.ScratchLength(_t, di, n)]; _scanSums = new double[2 * _t * n];
        return inputShape;
    }

    /// <summary>mamba_ssm's init: conv as nn.Conv1d (U(±1/√K)); dt_proj.weight U(±R^−½); Δ = exp(U(ln 0.001, ln 0.1))
    /// with dt_proj.bias = softplus⁻¹(Δ); A_log[d,n] = ln(n+1); D = 1. The Dense children keep nn.Linear's init.</summary>
    public override void ResetParameters(Random rng)
    {
        DefaultInit.Uniform(ConvWeight.Value.Span, 1f / MathF.Sqrt(DConv), rng);
        DefaultInit.Uniform(ConvBias.Value.Span, 1f / MathF.Sqrt(DConv), rng);
        DefaultInit.Uniform(DtWeight.Value.Span, 1f / MathF.Sqrt(DtRank), rng);
        var b = DtBias.Value.Span;
        for (int i = 0; i < b.Length; i++)
        {
            double dt = Math.Max(Math.Exp(Math.Log(0.001) + rng.NextDouble() * (Math.Log(0.1) - Math.Log(0.001))), 1e-4);
            b[i] = (float)(dt + Math.Log(1 - Math.Exp(-dt)));   // softplus⁻¹(dt) = dt + log(1 − e^−dt)
        }
        var a = ALog.Value.Span;
        for (int i = 0; i < a.Length; i++) a[i] = MathF.Log(i % DState + 1);
        D.Value.Span.Fill(1f);
    }

    // x (B,T,Dm) -> y (B,T,Dm)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int b = x.Dim(0), t = _t, di = DInner, n = DState, r = DtRank, k = DConv, xw = Xw;
        _x = x;
        _xz = _inProj.Forward(x, ctx);                         // (B,T,2Di) rows [x | z]
        var xz = _xz.Span;
        var xc = Workspace.Ensure(ref _xc, b, _diShape).Span;  // conv output, before SiLU
        var u = Workspace.Ensure(ref _u, b, _diShape);
        var us = u.Span; var w = ConvWeight.Value.Span; var cb = ConvBias.Value.Span;
        for (int c = 0; c < di; c++)
            for (int j = 0; j < k; j++) _wt[j * di + c] = w[c * k + j];
        // Channels are the vector dimension: each output row is the bias plus K scaled input rows (taps in order).
        for (int s = 0; s < b; s++)
            for (int i = 0; i < t; i++)
            {
                int row = s * t + i;
                var xcr = xc.Slice(row * di, di);
                cb.CopyTo(xcr);
                for (int j = Math.Max(0, k - 1 - i); j < k; j++)
                    TensorPrimitives.MultiplyAdd(xz.Slice((row - (k - 1) + j) * 2 * di, di), _wt.AsSpan(j * di, di), xcr, xcr);
            }
        var sxc = Workspace.Ensure(ref _sxc, b, _diShape).Span;   // σ(xc), kept for SiLU'
        TensorPrimitives.Sigmoid(xc, sxc);
        TensorPrimitives.Multiply(xc, sxc, us);
        _xdbl = _xProj.Forward(u, ctx);                        // (B,T,R+2N) rows [δ | B | C]
        var xdbl = _xdbl.Span;
        var d0 = Workspace.Ensure(ref _delta0, b, _rShape).Span;
        for (int row = 0; row < b * t; row++) xdbl.Slice(row * xw, r).CopyTo(d0.Slice(row * r, r));
        var dtr = Workspace.Ensure(ref _dtr, b, _diShape).Span;
        var bias = DtBias.Value.Span;
        for (int row = 0; row < b * t; row++) bias.CopyTo(dtr.Slice(row * di, di));
        Gemm.Sgemm(false, true, b * t, di, r, d0, r, DtWeight.Value.Span, r, dtr, di, accumulate: true);
        var delta = Workspace.Ensure(ref _delta, b, _diShape).Span;
        // softplus log(1 + eˣ), the input itself above PyTorch's threshold 20
        TensorPrimitives.Min(dtr, 20f, delta);
        TensorPrimitives.Exp(delta, delta);
        TensorPrimitives.Add(delta, 1f, delta);
        TensorPrimitives.Log(delta, delta);
        for (int i = 0; i < delta.Length; i++) if (dtr[i] > 20f) delta[i] = dtr[i];

        var al = ALog.Value.Span;
        for (int c = 0; c < di; c++)
            for (int j = 0; j < n; j++) _at[j * di + c] = -FastExp.Exp(al[c * n + j]);
        var y = Workspace.Ensure(ref _yScan, b, _diShape).Span;
        var h = Workspace.Ensure(ref _h, b, _hShape).Span;
        var abar = Workspace.Ensure(ref _abar, b, _hShape).Span;
        int sd = t * di, sh = t * n * di;
        for (int s = 0; s < b; s++)
            SelectiveScan.Forward(t, di, n, us.Slice(s * sd, sd), delta.Slice(s * sd, sd), _at, xdbl[(s * t * xw + r)..], xdbl[(s * t * xw + r + n)..],
                xw, D.Value.Span, y.Slice(s * sd, sd), h.Slice(s * sh, sh), abar.Slice(s * sh, sh));

        var gated = Workspace.Ensure(ref _gated, b, _diShape);
        var gs = gated.Span;
        var sz = Workspace.Ensure(ref _sz, b, _diShape).Span;      // σ(z), kept for the gate's backward
        for (int row = 0; row < b * t; row++)
        {
            var z = xz.Slice(row * 2 * di + di, di); var szr = sz.Slice(row * di, di); var gr = gs.Slice(row * di, di);
            TensorPrimitives.Sigmoid(z, szr);
            TensorPrimitives.Multiply(y.Slice(row * di, di), z, gr);
            TensorPrimitives.Multiply(gr, szr, gr);
        }
        return _outProj.Forward(gated, ctx);
    }

    // dy (B,T,Dm) -> dx (B,T,Dm): the chain above in reverse
    public override Tensor Backward(Tensor dyOut)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int b = x.Dim(0), t = _t, di = DInner, n = DState, r = DtRank, k = DConv, xw = Xw, rows = b * t;
        var dGated = _outProj.Backward(dyOut).Span;
        var xz = _xz!.Span; var y = _yScan!.Span;
        var dxzT = Workspace.Ensure(ref _dxz, b, _xzShape);
        var dxz = dxzT.Span;
        var dy = Workspace.Ensure(ref _dyScan, b, _diShape).Span;
        // gate: out = y ⊙ z σ(z): ∂y = ∂out ⊙ z σ(z), ∂z = ∂out ⊙ y ⊙ σ(z)(1 + z(1 − σ(z)))
        var sz = _sz!.Span;
        for (int row = 0; row < rows; row++)
        {
            var z = xz.Slice(row * 2 * di + di, di); var szr = sz.Slice(row * di, di); var go = dGated.Slice(row * di, di);
            var dyr = dy.Slice(row * di, di); var dz = dxz.Slice(row * 2 * di + di, di);
            TensorPrimitives.Multiply(go, z, dyr);
            TensorPrimitives.Multiply(dyr, szr, dyr);
            TensorPrimitives.Subtract(1f, szr, dz);
            TensorPrimitives.MultiplyAdd(z, dz, 1f, dz);
            TensorPrimitives.Multiply(dz, szr, dz);
            TensorPrimitives.Multiply(dz, go, dz);
            TensorPrimitives.Multiply(dz, y.Slice(row * di, di), dz);
        }

        // selective scan
        var us = _u!.Span; var delta = _delta!.Span; var xdbl = _xdbl!.Span;
        var du = Workspace.Ensure(ref _du, b, _diShape).Span; du.Clear();
        var dDelta = Workspace.Ensure(ref _dDelta, b, _diShape).Span; dDelta.Clear();
        var dxdblT = Workspace.Ensure(ref _dxdbl, b, _xwShape);
        var dxdbl = dxdblT.Span; dxdbl.Clear();
        Array.Clear(_dat);
        int sd = t * di, sh = t * n * di;
        var h = _h!.Span; var abar = _abar!.Span;
        for (int s = 0; s < b; s++)
            SelectiveScan.Backward(t, di, n, us.Slice(s * sd, sd), delta.Slice(s * sd, sd), _at, xdbl[(s * t * xw + r)..], xdbl[(s * t * xw + r + n)..], xw,
                D.Value.Span, h.Slice(s * sh, sh), abar.Slice(s * sh, sh), dy.Slice(s * sd, sd),
                du.Slice(s * sd, sd), dDelta.Slice(s * sd, sd), _dat, dxdbl[(s * t * xw + r)..], dxdbl[(s * t * xw + r + n)..], D.Grad.Span,
                _scanScratch, _scanSums);
        // A = −exp(A_log): ∂A_log = ∂A ⊙ A
        var dal = ALog.Grad.Span;
        for (int c = 0; c < di; c++)
            for (int j = 0; j < n; j++) dal[c * n + j] += _dat[j * di + c] * _at[j * di + c];

        // Δ = softplus(dtr): ∂dtr = ∂Δ ⊙ σ(dtr); dt_proj: ∂W += ∂dtrᵀ δ, ∂b += Σ ∂dtr, ∂δ = ∂dtr W
        var dtr = _dtr!.Span;
        var dDtr = Workspace.Ensure(ref _dDtr, b, _diShape).Span;
        TensorPrimitives.Sigmoid(dtr, dDtr);
        TensorPrimitives.Multiply(dDtr, dDelta, dDtr);
        for (int i = 0; i < dDtr.Length; i++) if (dtr[i] > 20f) dDtr[i] = dDelta[i];
        Gemm.Sgemm(true, false, di, r, rows, dDtr, di, _delta0!.Span, r, DtWeight.Grad.Span, r, accumulate: true);
        var dbias = DtBias.Grad.Span;
        for (int row = 0; row < rows; row++) TensorPrimitives.Add(dbias, dDtr.Slice(row * di, di), dbias);
        // ∂δ written into the δ columns of each x_proj row (ldc = xw); the B and C columns keep the scan's gradients
        Gemm.Sgemm(false, false, rows, r, di, dDtr, di, DtWeight.Value.Span, r, dxdbl, xw);
        var duX = _xProj.Backward(dxdblT).Span;
        TensorPrimitives.Add(du, duX, du);

        // u = SiLU(xc): ∂xc = ∂u ⊙ σ(1 + xc(1 − σ)); xc = causal depthwise conv of x, channels as the vector dimension
        var xc = _xc!.Span; var sxc = _sxc!.Span; var dw = ConvWeight.Grad.Span; var dcb = ConvBias.Grad.Span;
        var tmp = dDtr;   // its last use was above
        TensorPrimitives.Subtract(1f, sxc, tmp);
        TensorPrimitives.MultiplyAdd(xc, tmp, 1f, tmp);
        TensorPrimitives.Multiply(tmp, sxc, tmp);
        TensorPrimitives.Multiply(du, tmp, du);
        Array.Clear(_dwt);
        for (int s = 0; s < b; s++)
            for (int i = 0; i < t; i++)
            {
                int row = s * t + i;
                var g = du.Slice(row * di, di);
                TensorPrimitives.Add(dcb, g, dcb);
                dxz.Slice(row * 2 * di, di).Clear();
                for (int j = Math.Max(0, k - 1 - i); j < k; j++)
                {
                    int src = (row - (k - 1) + j) * 2 * di;
                    var dwj = _dwt.AsSpan(j * di, di);
                    TensorPrimitives.MultiplyAdd(g, xz.Slice(src, di), dwj, dwj);
                    var dxs = dxz.Slice(src, di);
                    TensorPrimitives.MultiplyAdd(g, _wt.AsSpan(j * di, di), dxs, dxs);
                }
            }
        for (int c = 0; c < di; c++)
            for (int j = 0; j < k; j++) dw[c * k + j] += _dwt[j * di + c];
        _inProj.ComputeInputGrad = ComputeInputGrad;
        return _inProj.Backward(dxzT);
    }

    public override string ToString() => $"Mamba(d_model={DModel}, d_state={DState}, d_conv={DConv}, expand={DInner / DModel}, dt_rank={DtRank})";
}

// Multi-head scaled dot-product self-attention with PyTorch nn.MultiheadAttention's parameters
// (batch_first=True, query = key = value = x, no mask, no dropout): in_proj_weight (3E,E),
// in_proj_bias (3E), out_proj.weight (E,E), out_proj.bias (E). out_proj is held here rather than as a
// Dense child so that its bias is zeroed after its weight's init, as PyTorch does. Per (sample, head) the
// scores, the softmax and the weighted sum are small GEMMs (Gemm.SgemmSmall: no packing, which would cost
// more than a 17×17×16 product) and row softmaxes of the SIMD core on strided views of the packed QKV
// buffer, so no head is copied out. Naive double-precision oracle: AttentionTests.NaiveAttention.
// Letters: B batch, T tokens, E embed dim, H heads, D = E/H head dim.
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using SoftmaxKernel = DistTrain.Tensors.Kernels.Softmax;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class MultiheadAttention : Layer
{
    private int _t;
    private int[] _qkvShape = [], _pShape = [], _oShape = [];
    private float _scale;
    private Tensor? _x, _qkv, _p, _o, _y, _do, _dqkv, _dx;   // qkv (B,T,3E) rows [q | k | v]; p (B,H,T,T) softmax; o (B,T,E) heads side by side
    private float[] _dp = [];                        // (T,T) scratch: dP, then dS in place

    public MultiheadAttention(int embedDim, int numHeads)
    {
        if (embedDim <= 0 || numHeads <= 0 || embedDim % numHeads != 0)
            throw new ArgumentException($"MultiheadAttention(embed_dim={embedDim}, num_heads={numHeads}): both must be positive and embed_dim divisible by num_heads.");
        E = embedDim; Heads = numHeads;
    }

    public int E { get; }
    public int Heads { get; }
    private int D => E / Heads;
    public Param InProjWeight { get; private set; } = null!;
    public Param InProjBias { get; private set; } = null!;
    public Param OutProjWeight { get; private set; } = null!;
    public Param OutProjBias { get; private set; } = null!;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2 || inputShape[1] != E)
            throw ShapeError(inputShape, $"(T,{E}) tokens x embed_dim");
        _t = inputShape[0];
        _scale = 1f / MathF.Sqrt(D);
        InProjWeight = DeclareParam("in_proj_weight", 3 * E, E);
        InProjBias = DeclareParam("in_proj_bias", 3 * E);
        OutProjWeight = DeclareParam("out_proj.weight", E, E);
        OutProjBias = DeclareParam("out_proj.bias", E);
        _dp = new float[_t * _t];
        _qkvShape = [_t, 3 * E]; _pShape = [Heads, _t, _t]; _oShape = [_t, E];
        return inputShape;
    }

    /// <summary>PyTorch's: in_proj_weight Xavier-uniform, out_proj.weight Linear's U(−1/√E, 1/√E), both biases 0.</summary>
    public override void ResetParameters(Random rng)
    {
        Initializers.XavierUniform(InProjWeight.Value.Span, InProjWeight.Shape, rng);
        InProjBias.Value.Clear();
        DefaultInit.Uniform(OutProjWeight.Value.Span, 1f / MathF.Sqrt(E), rng);
        OutProjBias.Value.Clear();
    }

    /// <summary>The attention probabilities of the last Forward, (B,H,T,T).</summary>
    public Tensor? Probabilities => _p;

    // x (B,T,E) -> y (B,T,E) = out_proj(concat_h softmax(Q_h K_hᵀ/√D) V_h)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int b = x.Dim(0), t = _t, e = E, e3 = 3 * E, rows = b * t;
        var qkv = Workspace.Ensure(ref _qkv, b, _qkvShape);
        var p = Workspace.Ensure(ref _p, b, _pShape);
        var o = Workspace.Ensure(ref _o, b, _oShape);
        var qs = qkv.Span;
        var bias = InProjBias.Value.Span;
        for (int r = 0; r < rows; r++) bias.CopyTo(qs.Slice(r * e3, e3));
        Gemm.Sgemm(false, true, rows, e3, e, x.Span, e, InProjWeight.Value.Span, e, qs, e3, accumulate: true);
        var ps = p.Span; var os = o.Span;
        for (int s = 0; s < b; s++)
            for (int h = 0; h < Heads; h++)
            {
                int q0 = s * t * e3 + h * D;
                var ph = ps.Slice((s * Heads + h) * t * t, t * t);
                Gemm.SgemmSmall(false, true, t, t, D, qs[q0..], e3, qs[(q0 + e)..], e3, ph, t);
                TensorPrimitives.Multiply(ph, _scale, ph);
                SoftmaxKernel.Forward(ph, ph, t, t);
                Gemm.SgemmSmall(false, false, t, D, t, ph, t, qs[(q0 + 2 * e)..], e3, os[(s * t * e + h * D)..], e);
            }
        _x = x;
        var y = Workspace.Ensure(ref _y, b, _oShape);
        var ys = y.Span; var ob = OutProjBias.Value.Span;
        for (int r = 0; r < rows; r++) ob.CopyTo(ys.Slice(r * e, e));
        Gemm.Sgemm(false, true, rows, e, e, os, e, OutProjWeight.Value.Span, e, ys, e, accumulate: true);
        return y;
    }

    // dy (B,T,E) -> dO = dy W_out, dW_out += dyᵀ O, db_out += Σ dy; per head dP = dO Vᵀ, dV = Pᵀ dO, dS = softmax'(dP)/√D, dQ = dS K, dK = dSᵀ Q;
    // then dW_in += dQKVᵀ x, db_in += Σ dQKV, dx = dQKV W_in.
    public override Tensor Backward(Tensor dy)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int b = x.Dim(0), t = _t, e = E, e3 = 3 * E, rows = b * t;
        var dyo = dy.Span;
        var dO = Workspace.Ensure(ref _do, b, _oShape);
        var dos = dO.Span;
        Gemm.Sgemm(true, false, e, e, rows, dyo, e, _o!.Span, e, OutProjWeight.Grad.Span, e, accumulate: true);
        var dob = OutProjBias.Grad.Span;
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(dob, dyo.Slice(r * e, e), dob);
        Gemm.Sgemm(false, false, rows, e, e, dyo, e, OutProjWeight.Value.Span, e, dos, e);
        var dqkv = Workspace.Ensure(ref _dqkv, b, _qkvShape);
        var qs = _qkv!.Span; var ps = _p!.Span; var ds = dqkv.Span; var dp = _dp.AsSpan();
        for (int s = 0; s < b; s++)
            for (int h = 0; h < Heads; h++)
            {
                int q0 = s * t * e3 + h * D, o0 = s * t * e + h * D;
                var ph = ps.Slice((s * Heads + h) * t * t, t * t);
                Gemm.SgemmSmall(false, true, t, t, D, dos[o0..], e, qs[(q0 + 2 * e)..], e3, dp, t);
                Gemm.SgemmSmall(true, false, t, D, t, ph, t, dos[o0..], e, ds[(q0 + 2 * e)..], e3);
                SoftmaxKernel.Backward(ph, dp, dp, t, t);
                TensorPrimitives.Multiply(dp, _scale, dp);
                Gemm.SgemmSmall(false, false, t, D, t, dp, t, qs[(q0 + e)..], e3, ds[q0..], e3);
                Gemm.SgemmSmall(true, false, t, D, t, dp, t, qs[q0..], e3, ds[(q0 + e)..], e3);
            }
        Gemm.Sgemm(true, false, e3, e, rows, ds, e3, x.Span, e, InProjWeight.Grad.Span, e, accumulate: true);
        var db = InProjBias.Grad.Span;
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(db, ds.Slice(r * e3, e3), db);  // rows in order: fixed sums
        var dx = Workspace.Ensure(ref _dx, b, _oShape);
        if (ComputeInputGrad)
            Gemm.Sgemm(false, false, rows, e, e3, ds, e3, InProjWeight.Value.Span, e, dx.Span, e);
        return dx;
    }

    public override string ToString() => $"MultiheadAttention(embed_dim={E}, num_heads={Heads})";
}

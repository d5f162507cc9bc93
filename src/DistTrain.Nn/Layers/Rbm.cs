// A binary restricted Boltzmann machine trained by contrastive divergence (CD-k; Hinton 2002, "A practical guide to
// training RBMs"). Energy E(v,h) = −bᵀv − cᵀh − hᵀWv; p(h_j=1|v) = σ(c_j + W_j·v), p(v_i=1|h) = σ(b_i + W_:iᵀ·h).
// In training, Forward runs a Gibbs chain from the data v0: h ~ p(h|v), v ~ p(v|h), k times, to v_k — every draw keyed
// by (seed, step, micro-batch, layer, sample), so a cluster draws what one process draws. Its objective enters through
// Layer.AddedLoss: Σ_i F(v0_i) − F(v_k,i), F the free energy −bᵀv − Σ_j softplus(c_j + W_j·v), whose gradient with v_k
// held fixed is the CD-k update: ∂/∂W = −(σ(c+Wv0) v0ᵀ − σ(c+Wv_k) v_kᵀ) — the positive minus negative phase
// statistics, which is what a cluster's shards sum. The chain runs in evaluation too (so a test loss is the same
// objective). The output is the mean-field reconstruction
// σ(b + Wᵀσ(c + W·v0)), which the `none` loss leaves alone. No gradient flows to the input (an RBM is trained layer
// by layer). Letters: B samples, V visible units, H hidden units.
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class Rbm : Layer
{
    private Param _w = null!, _c = null!, _b = null!;
    private Tensor? _y, _dx, _ph0, _vk, _phk;
    private Tensor? _x;
    private float[] _h = [];
    private int[] _vShape = [], _hShape = [];
    private float _scale;

    public Rbm(int visible, int hidden, int k = 1)
    {
        if (visible <= 0 || hidden <= 0 || k <= 0)
            throw new ArgumentException($"Rbm(visible={visible}, hidden={hidden}, k={k}): sizes and the number of Gibbs steps must be positive.");
        Visible = visible; Hidden = hidden; K = k;
    }

    public int Visible { get; }
    public int Hidden { get; }
    /// <summary>Gibbs steps of CD-k.</summary>
    public int K { get; }
    /// <summary>W (H,V), named `weight` as a Linear(V,H)'s so the trained weights can start an MLP.</summary>
    public Param Weight => _w;
    /// <summary>Hidden bias c (H), named `bias`.</summary>
    public Param HiddenBias => _c;
    /// <summary>Visible bias b (V), named `v_bias`.</summary>
    public Param VisibleBias => _b;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 1 || inputShape[0] != Visible)
            throw ShapeError(inputShape, $"(V={Visible}): visible units in [0,1]; put {{\"type\":\"flatten\"}} before it");
        _w = DeclareParam("weight", Hidden, Visible);
        _c = DeclareParam("bias", Hidden);
        _b = DeclareParam("v_bias", Visible);
        _h = new float[Hidden];
        _vShape = [Visible];
        _hShape = [Hidden];
        return _vShape;
    }

    // Hinton's guide: W ~ N(0, 0.01²), biases 0.
    public override void ResetParameters(Random rng)
    {
        DefaultInit.Normal(_w.Value.Span, 0.01f, rng);
        _c.Value.Clear();
        _b.Value.Clear();
    }

    private static float Sigmoid(float z) => z >= 0 ? 1f / (1f + MathF.Exp(-z)) : MathF.Exp(z) / (1f + MathF.Exp(z));

    /// <summary>ph = σ(c + W·v) for one sample.</summary>
    public void HiddenProbabilities(ReadOnlySpan<float> v, Span<float> ph)
    {
        var w = _w.Value.Span; var c = _c.Value.Span;
        for (int j = 0; j < Hidden; j++) ph[j] = Sigmoid(c[j] + Tensors.Kernels.Reductions.DotFixed(w.Slice(j * Visible, Visible), v));
    }

    /// <summary>pv = σ(b + Wᵀ·h) for one sample.</summary>
    public void VisibleProbabilities(ReadOnlySpan<float> h, Span<float> pv)
    {
        var w = _w.Value.Span; var b = _b.Value.Span;
        for (int i = 0; i < Visible; i++) pv[i] = b[i];
        for (int j = 0; j < Hidden; j++)
        {
            float hj = h[j];
            if (hj == 0f) continue;
            TensorPrimitives.FusedMultiplyAdd(w.Slice(j * Visible, Visible), hj, pv[..Visible], pv[..Visible]);
        }
        for (int i = 0; i < Visible; i++) pv[i] = Sigmoid(pv[i]);
    }

    /// <summary>Bernoulli draws x_i = [u_i &lt; p_i] in place, u uniform on a 2⁻²⁴ grid from SplitMix64(state).</summary>
    private static void Sample(Span<float> p, ref ulong state)
    {
        for (int i = 0; i < p.Length; i++)
        {
            state += 0x9E3779B97F4A7C15UL;
            float u = (SplitMix.Mix(state) >> 40) * (1f / (1 << 24));
            p[i] = u < p[i] ? 1f : 0f;
        }
    }

    // v0 (B,V) -> mean-field reconstruction (B,V); in training also the chain's v_k and the statistics' probabilities.
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0);
        var y = Workspace.Ensure(ref _y, batch, _vShape);
        var ph0 = Workspace.Ensure(ref _ph0, batch, _hShape);
        var xs = x.Span; var ys = y.Span; var p0 = ph0.Span;
        for (int s = 0; s < batch; s++)
        {
            HiddenProbabilities(xs.Slice(s * Visible, Visible), p0.Slice(s * Hidden, Hidden));
            VisibleProbabilities(p0.Slice(s * Hidden, Hidden), ys.Slice(s * Visible, Visible));
        }
        _x = x;
        _scale = 0f;

        var vk = Workspace.Ensure(ref _vk, batch, _vShape);
        var phk = Workspace.Ensure(ref _phk, batch, _hShape);
        var v = vk.Span; var pk = phk.Span;
        ulong layerSeed = ctx.LayerSeed(Index);
        for (int s = 0; s < batch; s++)
        {
            ulong state = SplitMix.Mix(layerSeed ^ SplitMix.Mix((ulong)s + 0x52424DUL));
            var vs = v.Slice(s * Visible, Visible);
            p0.Slice(s * Hidden, Hidden).CopyTo(_h);
            for (int step = 0; step < K; step++)
            {
                Sample(_h, ref state);                 // h ~ p(h | v)
                VisibleProbabilities(_h, vs);
                Sample(vs, ref state);                 // v ~ p(v | h)
                if (step + 1 < K) HiddenProbabilities(vs, _h);
            }
            HiddenProbabilities(vs, pk.Slice(s * Hidden, Hidden));
        }
        return y;
    }

    /// <summary>Free energy F(v) = −bᵀv − Σ_j softplus(c_j + W_j·v), in double.</summary>
    public double FreeEnergy(ReadOnlySpan<float> v)
    {
        var w = _w.Value.Span; var c = _c.Value.Span; var b = _b.Value.Span;
        double f = 0;
        for (int i = 0; i < Visible; i++) f -= (double)b[i] * v[i];
        for (int j = 0; j < Hidden; j++)
        {
            double z = c[j];
            var row = w.Slice(j * Visible, Visible);
            for (int i = 0; i < Visible; i++) z += (double)row[i] * v[i];
            f -= z > 0 ? z + Math.Log(1 + Math.Exp(-z)) : Math.Log(1 + Math.Exp(z));
        }
        return f;
    }

    /// <summary>Σ_i F(v0_i) − F(v_k,i), the CD objective (in evaluation too, with its chain's draws); the next Backward
    /// adds scale × its gradient.</summary>
    public override double AddedLoss(float scale)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: AddedLoss called before Forward.");
        int batch = x.Dim(0);
        double total = 0;
        for (int s = 0; s < batch; s++)
            total += FreeEnergy(x.Span.Slice(s * Visible, Visible)) - FreeEnergy(_vk!.Span.Slice(s * Visible, Visible));
        _scale = scale;
        return total;
    }

    // dy is the `none` loss's zero; the gradient is the CD statistic, scaled: dW += scale·(phk v_kᵀ − ph0 v0ᵀ),
    // dc += scale·(phk − ph0), db += scale·(v_k − v0), samples added in order.
    public override Tensor Backward(Tensor dy)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int batch = x.Dim(0);
        var dx = Workspace.Ensure(ref _dx, batch, _vShape);
        dx.Clear();
        if (_scale == 0f) return dx;
        var dw = _w.Grad.Span; var dc = _c.Grad.Span; var db = _b.Grad.Span;
        var v0 = x.Span; var vk = _vk!.Span; var p0 = _ph0!.Span; var pk = _phk!.Span;
        float g = _scale;
        for (int s = 0; s < batch; s++)
        {
            var a = v0.Slice(s * Visible, Visible); var z = vk.Slice(s * Visible, Visible);
            for (int j = 0; j < Hidden; j++)
            {
                float hp = g * p0[s * Hidden + j], hn = g * pk[s * Hidden + j];
                // Two fused passes, the same on every SIMD path (each element is its own FMA chain).
                var row = dw.Slice(j * Visible, Visible);
                TensorPrimitives.FusedMultiplyAdd(z, hn, row, row);
                TensorPrimitives.FusedMultiplyAdd(a, -hp, row, row);
                dc[j] += hn - hp;
            }
            for (int i = 0; i < Visible; i++) db[i] += g * (z[i] - a[i]);
        }
        return dx;
    }

    public override string ToString() => $"Rbm(visible={Visible}, hidden={Hidden}, k={K})";
}

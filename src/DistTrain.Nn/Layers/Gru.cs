// GRU layer (PyTorch nn.GRU, one layer, batch_first, zero initial state), gates r, z, n:
// r,z = σ(W_i· x + b_i· + W_h· h + b_h·), n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn)),
// h_t = (1−z)⊙n + z⊙h₍t−1₎, computed as n + z⊙(h₍t−1₎ − n) like PyTorch's CPU kernel. See RecurrentLayer.
using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class Gru(int hiddenSize, bool returnSequences = false, int? inputSize = null)
    : RecurrentLayer(hiddenSize, returnSequences, gates: 3, inputSize)
{
    private float[] _hh = [];   // (B, GH) h·W_hhᵀ of the current step
    private float[] _hn = [];   // (T, B, H) W_hn h + b_hn, kept for backward
    private float[] _dgh = [];  // (T·B, GH) gradients of the hidden-side pre-activations [dr, dz, d(W_hn h + b_hn)]

    protected override string KindName => "GRU";
    protected override float[] HiddenGrads => _dgh;
    protected override bool DirectHiddenPath => true;
    protected override bool FusedStep => false;

    // b_ih + [b_hr, b_hz, 0]: b_hn sits inside r⊙(·) and cannot be folded.
    protected override void FoldBias(Span<float> bias)
    {
        TensorPrimitives.Add(BiasIh.Value.Span, BiasHh.Value.Span, bias);
        BiasIh.Value.Span.Slice(2 * H, H).CopyTo(bias.Slice(2 * H, H));
    }

    protected override void EnsureCellCaches(int steps, int batch)
    {
        Grow(ref _hh, batch * GH);
        Grow(ref _hn, steps * batch * H);
        Grow(ref _dgh, steps * batch * GH);
    }

    protected override void StepForward(int t, int batch)
    {
        int h = H, gh = GH;
        var hh = _hh.AsSpan(0, batch * gh);
        if (t > 0) ProjectHidden(t, batch, hh);
        else hh.Clear();
        var bhn = BiasHh.Value.Span.Slice(2 * h, h);
        for (int i = 0; i < batch; i++)
        {
            var g = Gt.AsSpan((t * batch + i) * gh, gh);
            var hr = hh.Slice(i * gh, gh);
            var hn = _hn.AsSpan((t * batch + i) * h, h);
            TensorPrimitives.Add(g[..(2 * h)], hr[..(2 * h)], g[..(2 * h)]);
            GateMath.Sigmoid(g[..(2 * h)], g[..(2 * h)]);                    // r, z
            TensorPrimitives.Add(hr.Slice(2 * h, h), bhn, hn);
            var n = g.Slice(2 * h, h);
            TensorPrimitives.FusedMultiplyAdd(g[..h], hn, n, n);
            GateMath.Tanh(n, n);                                              // n
            var hNew = HiddenRow(t + 1, batch, i);
            TensorPrimitives.Subtract(HiddenRow(t, batch, i), n, hNew);
            TensorPrimitives.FusedMultiplyAdd(g.Slice(h, h), hNew, n, hNew);
        }
    }

    // Per element, with d = ∂L/∂h_t: dn = d(1−z); dz = d(h₍t−1₎ − n); da_n = dn(1−n²);
    // da_r = da_n·hn·r(1−r); da_z = dz·z(1−z); d(hn) = da_n·r; direct ∂L/∂h₍t−1₎ = d·z.
    protected override void StepBackward(int t, int batch)
    {
        int h = H, gh = GH, w = Vector<float>.Count;
        var one = Vector<float>.One;
        for (int i = 0; i < batch; i++)
        {
            var g = Gt.AsSpan((t * batch + i) * gh, gh);
            var dg = _dgh.AsSpan((t * batch + i) * gh, gh);
            var hn = _hn.AsSpan((t * batch + i) * h, h);
            var hp = HiddenRow(t, batch, i);
            var dh = Dh.AsSpan(i * h, h);
            int j = 0;
            for (; j <= h - w; j += w)
            {
                var vr = new Vector<float>(g[j..]); var vz = new Vector<float>(g[(h + j)..]);
                var vn = new Vector<float>(g[(2 * h + j)..]); var vd = new Vector<float>(dh[j..]);
                var van = vd * (one - vz) * (one - vn * vn);
                var vAr = van * new Vector<float>(hn[j..]) * vr * (one - vr);
                var vaz = vd * (new Vector<float>(hp[j..]) - vn) * vz * (one - vz);
                vAr.CopyTo(g[j..]); vAr.CopyTo(dg[j..]);
                vaz.CopyTo(g[(h + j)..]); vaz.CopyTo(dg[(h + j)..]);
                van.CopyTo(g[(2 * h + j)..]); (van * vr).CopyTo(dg[(2 * h + j)..]);
                (vd * vz).CopyTo(dh[j..]);
            }
            for (; j < h; j++)
            {
                float r = g[j], z = g[h + j], n = g[2 * h + j], d = dh[j];
                float an = d * (1f - z) * (1f - n * n);
                float ar = an * hn[j] * r * (1f - r);
                float az = d * (hp[j] - n) * z * (1f - z);
                g[j] = dg[j] = ar;
                g[h + j] = dg[h + j] = az;
                g[2 * h + j] = an; dg[2 * h + j] = an * r;
                dh[j] = d * z;
            }
        }
    }
}

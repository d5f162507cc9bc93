// LSTM layer (PyTorch nn.LSTM, one layer, batch_first, zero initial h and c), gates in PyTorch's order
// i, f, g, o: i,f,o = σ(·), g = tanh(·), c_t = f⊙c₍t−1₎ + i⊙g, h_t = o⊙tanh(c_t). See RecurrentLayer.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class Lstm(int hiddenSize, bool returnSequences = false, int? inputSize = null)
    : RecurrentLayer(hiddenSize, returnSequences, gates: 4, inputSize)
{
    private float[] _c = [];    // (T+1, B, H) cell states; slot 0 is c₋₁ = 0
    private float[] _tc = [];   // (T, B, H) tanh(c_t)
    private float[] _dc = [];   // (B, H) gradient flowing back into c_t

    protected override string KindName => "LSTM";

    protected override void FoldBias(Span<float> bias) =>
        TensorPrimitives.Add(BiasIh.Value.Span, BiasHh.Value.Span, bias);

    protected override void EnsureCellCaches(int steps, int batch)
    {
        Grow(ref _c, (steps + 1) * batch * H);
        Grow(ref _tc, steps * batch * H);
        Grow(ref _dc, batch * H);
        _c.AsSpan(0, batch * H).Clear();
    }

    protected override void StepForward(int t, int batch)
    {
        int h = H, gh = GH;
        var block = Gt.AsSpan(t * batch * gh, batch * gh);
        ProjectStep(t, batch, block);
        for (int i = 0; i < batch; i++)
            Cell(block.Slice(i * gh, gh), _c.AsSpan((t * batch + i) * h, h), _c.AsSpan(((t + 1) * batch + i) * h, h),
                _tc.AsSpan((t * batch + i) * h, h), HiddenRow(t + 1, batch, i));
    }

    // One sample's cell in one pass over its H lanes (gates, c, tanh c and h stay in registers):
    // g (4H) pre-activations -> activations i, f, g, o; c = f⊙c₍t−1₎ + i⊙g (one FMA); tc = tanh(c); h = o⊙tc.
    // The scalar tail repeats the vector body's operations (FMA included), so an element's bits do not
    // depend on H or the vector width.
    private static void Cell(Span<float> g, ReadOnlySpan<float> cPrev, Span<float> c, Span<float> tc, Span<float> hOut)
    {
        int h = c.Length, j = 0;
        ref float gr = ref MemoryMarshal.GetReference(g);
        ref float cp = ref MemoryMarshal.GetReference(cPrev);
        ref float cr = ref MemoryMarshal.GetReference(c);
        ref float tr = ref MemoryMarshal.GetReference(tc);
        ref float hr = ref MemoryMarshal.GetReference(hOut);
        nuint f = (nuint)h, gg = 2 * (nuint)h, o = 3 * (nuint)h;
        for (; j <= h - 8; j += 8)
        {
            nuint u = (nuint)j;
            var vi = GateMath.Sigmoid(Vector256.LoadUnsafe(ref gr, u));
            var vf = GateMath.Sigmoid(Vector256.LoadUnsafe(ref gr, f + u));
            var vg = GateMath.Tanh(Vector256.LoadUnsafe(ref gr, gg + u));
            var vo = GateMath.Sigmoid(Vector256.LoadUnsafe(ref gr, o + u));
            vi.StoreUnsafe(ref gr, u); vf.StoreUnsafe(ref gr, f + u); vg.StoreUnsafe(ref gr, gg + u); vo.StoreUnsafe(ref gr, o + u);
            var vc = Vector256.FusedMultiplyAdd(vi, vg, vf * Vector256.LoadUnsafe(ref cp, u));
            var vt = GateMath.Tanh(vc);
            vc.StoreUnsafe(ref cr, u); vt.StoreUnsafe(ref tr, u);
            (vo * vt).StoreUnsafe(ref hr, u);
        }
        for (; j < h; j++)
        {
            nuint u = (nuint)j;
            float si = GateMath.Sigmoid(Unsafe.Add(ref gr, u)), sf = GateMath.Sigmoid(Unsafe.Add(ref gr, f + u));
            float sg = GateMath.Tanh(Unsafe.Add(ref gr, gg + u)), so = GateMath.Sigmoid(Unsafe.Add(ref gr, o + u));
            Unsafe.Add(ref gr, u) = si; Unsafe.Add(ref gr, f + u) = sf; Unsafe.Add(ref gr, gg + u) = sg; Unsafe.Add(ref gr, o + u) = so;
            float sc = MathF.FusedMultiplyAdd(si, sg, sf * Unsafe.Add(ref cp, u));
            float st = GateMath.Tanh(sc);
            Unsafe.Add(ref cr, u) = sc; Unsafe.Add(ref tr, u) = st;
            Unsafe.Add(ref hr, u) = so * st;
        }
    }

    protected override void BeginBackward(int batch) => _dc.AsSpan(0, batch * H).Clear();

    // Per element: do = dh·tanh(c)·o(1−o); dc += dh·o·(1−tanh²c); di = dc·g·i(1−i); dg = dc·i·(1−g²);
    // df = dc·c₍t−1₎·f(1−f); dc₍t−1₎ = dc·f. Vector body and scalar tail do the same multiplies and adds
    // (no FMA), so the bits do not depend on the vector width.
    protected override void StepBackward(int t, int batch)
    {
        int h = H, gh = GH, w = Vector<float>.Count;
        var one = Vector<float>.One;
        for (int i = 0; i < batch; i++)
        {
            var g = Gt.AsSpan((t * batch + i) * gh, gh);
            var tc = _tc.AsSpan((t * batch + i) * h, h);
            var cPrev = _c.AsSpan((t * batch + i) * h, h);
            var dh = Dh.AsSpan(i * h, h);
            var dc = _dc.AsSpan(i * h, h);
            int j = 0;
            for (; j <= h - w; j += w)
            {
                var vi = new Vector<float>(g[j..]); var vf = new Vector<float>(g[(h + j)..]);
                var vg = new Vector<float>(g[(2 * h + j)..]); var vo = new Vector<float>(g[(3 * h + j)..]);
                var vtc = new Vector<float>(tc[j..]); var vdh = new Vector<float>(dh[j..]);
                var vdc = new Vector<float>(dc[j..]) + vdh * vo * (one - vtc * vtc);
                (vdh * vtc * vo * (one - vo)).CopyTo(g[(3 * h + j)..]);
                (vdc * vg * vi * (one - vi)).CopyTo(g[j..]);
                (vdc * vi * (one - vg * vg)).CopyTo(g[(2 * h + j)..]);
                (vdc * new Vector<float>(cPrev[j..]) * vf * (one - vf)).CopyTo(g[(h + j)..]);
                (vdc * vf).CopyTo(dc[j..]);
            }
            for (; j < h; j++)
            {
                float si = g[j], sf = g[h + j], sg = g[2 * h + j], so = g[3 * h + j], stc = tc[j], sdh = dh[j];
                float sdc = dc[j] + sdh * so * (1f - stc * stc);
                g[3 * h + j] = sdh * stc * so * (1f - so);
                g[j] = sdc * sg * si * (1f - si);
                g[2 * h + j] = sdc * si * (1f - sg * sg);
                g[h + j] = sdc * cPrev[j] * sf * (1f - sf);
                dc[j] = sdc * sf;
            }
        }
    }
}

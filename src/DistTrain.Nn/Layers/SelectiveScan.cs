// Mamba's selective scan for one sample, forward and backward (mamba_ssm selective_scan_ref, real A):
//   Ā_t = exp(Δ_t ⊙ A)   (zero-order hold of dh/dt = A h),   B̄_t u_t = Δ_t ⊙ B_t ⊙ u_t   (Mamba's simplified B̄),
//   h_t = Ā_t ⊙ h₍t−1₎ + B̄_t u_t,   y_t = Σ_n C_t[n] h_t[n] + D ⊙ u_t,   h₋₁ = 0.
// The scan is sequential over t; channels are independent, so it runs on 8 channels at a time in Vector256
// registers (16 in Vector512 on the AVX-512 path, the same bits; a scalar loop with the same operations takes the
// Di mod 8 rest): one pass per channel block, no
// per-step library calls. Multiplies and adds are never fused and exp is FastExp, so every machine gives the
// same bits; ∂B and ∂C (sums over channels) are 8 fixed lanes, blocks in order, lanes then rest added in double,
// as LaneSums.Dot. Naive double-precision oracle: MambaTests.NaiveScan.
// Letters: T steps, Di channels, N state size; Bm, Cm are read with a row stride (they sit inside x_proj's output).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels.Operators;

namespace DistTrain.Nn.Layers;

internal static class SelectiveScan
{
    private const int W = 8;

    /// <summary>
    /// u, delta (T,Di); at (N,Di) = Aᵀ; bm, cm: row t at t·stride, N values; d (Di) -> y (T,Di).
    /// Saves h (T,N,Di) and abar (T,N,Di) = exp(Δ ⊙ A) for <see cref="Backward"/>.
    /// </summary>
    public static void Forward(int t, int di, int n, ReadOnlySpan<float> u, ReadOnlySpan<float> delta, ReadOnlySpan<float> at,
        ReadOnlySpan<float> bm, ReadOnlySpan<float> cm, int stride, ReadOnlySpan<float> d,
        Span<float> y, Span<float> h, Span<float> abar)
    {
        int full = di / W * W;
        ref float ur = ref MemoryMarshal.GetReference(u); ref float dr = ref MemoryMarshal.GetReference(delta);
        ref float ar = ref MemoryMarshal.GetReference(at); ref float Dr = ref MemoryMarshal.GetReference(d);
        ref float yr = ref MemoryMarshal.GetReference(y); ref float hr = ref MemoryMarshal.GetReference(h);
        ref float abr = ref MemoryMarshal.GetReference(abar);
        int c0 = 0;
        if (Simd.Path == SimdPath.Avx512)
            for (; c0 + 2 * W <= di; c0 += 2 * W)
            {
                int c = c0;
                var dv = Vector512.LoadUnsafe(ref Dr, (nuint)c);
                for (int s = 0; s < t; s++)
                {
                    var del = Vector512.LoadUnsafe(ref dr, (nuint)(s * di + c));
                    var uv = Vector512.LoadUnsafe(ref ur, (nuint)(s * di + c));
                    var du = del * uv;
                    var acc = dv * uv;
                    for (int k = 0; k < n; k++)
                    {
                        nuint o = (nuint)((s * n + k) * di + c);
                        var a = FastExp.Exp(del * Vector512.LoadUnsafe(ref ar, (nuint)(k * di + c)));
                        a.StoreUnsafe(ref abr, o);
                        var hn = du * Vector512.Create(bm[s * stride + k]);
                        if (s > 0) hn = a * Vector512.LoadUnsafe(ref hr, o - (nuint)(n * di)) + hn;
                        hn.StoreUnsafe(ref hr, o);
                        acc = hn * Vector512.Create(cm[s * stride + k]) + acc;
                    }
                    acc.StoreUnsafe(ref yr, (nuint)(s * di + c));
                }
            }
        for (int c = c0; c < full; c += W)
        {
            var dv = Vector256.LoadUnsafe(ref Dr, (nuint)c);
            for (int s = 0; s < t; s++)
            {
                var del = Vector256.LoadUnsafe(ref dr, (nuint)(s * di + c));
                var uv = Vector256.LoadUnsafe(ref ur, (nuint)(s * di + c));
                var du = del * uv;
                var acc = dv * uv;
                for (int k = 0; k < n; k++)
                {
                    nuint o = (nuint)((s * n + k) * di + c);
                    var a = FastExp.Exp(del * Vector256.LoadUnsafe(ref ar, (nuint)(k * di + c)));
                    a.StoreUnsafe(ref abr, o);
                    var hn = du * Vector256.Create(bm[s * stride + k]);
                    if (s > 0) hn = a * Vector256.LoadUnsafe(ref hr, o - (nuint)(n * di)) + hn;
                    hn.StoreUnsafe(ref hr, o);
                    acc = hn * Vector256.Create(cm[s * stride + k]) + acc;
                }
                acc.StoreUnsafe(ref yr, (nuint)(s * di + c));
            }
        }
        for (int c = full; c < di; c++)
            for (int s = 0; s < t; s++)
            {
                float del = delta[s * di + c], uv = u[s * di + c], du = del * uv, acc = d[c] * uv;
                for (int k = 0; k < n; k++)
                {
                    int o = (s * n + k) * di + c;
                    float a = abar[o] = FastExp.Exp(del * at[k * di + c]);
                    float hn = du * bm[s * stride + k];
                    if (s > 0) hn = a * h[o - n * di] + hn;
                    h[o] = hn;
                    acc = hn * cm[s * stride + k] + acc;
                }
                y[s * di + c] = acc;
            }
    }

    /// <summary>Floats of scratch <see cref="Backward"/> needs: ∂h (N·Di) and two lane accumulators per (t, n).</summary>
    public static int ScratchLength(int t, int di, int n) => n * di + 2 * t * n * W;

    /// <summary>
    /// dy (T,Di) -> ADDS into du (T,Di), ddelta (T,Di), dat (N,Di), dbm/dcm (row stride), dd (Di).
    /// scratch: <see cref="ScratchLength"/> floats; sums: 2·T·N doubles.
    /// </summary>
    public static void Backward(int t, int di, int n, ReadOnlySpan<float> u, ReadOnlySpan<float> delta, ReadOnlySpan<float> at,
        ReadOnlySpan<float> bm, ReadOnlySpan<float> cm, int stride, ReadOnlySpan<float> d, ReadOnlySpan<float> h, ReadOnlySpan<float> abar,
        ReadOnlySpan<float> dy, Span<float> du, Span<float> ddelta, Span<float> dat, Span<float> dbm, Span<float> dcm, Span<float> dd,
        Span<float> scratch, Span<double> sums)
    {
        int full = di / W * W, tn = t * n;
        var dh = scratch[..(n * di)];
        var lanes = scratch.Slice(n * di, 2 * tn * W);   // (T·N) lanes for ∂C, then (T·N) for ∂B
        dh.Clear(); lanes.Clear();
        ref float ur = ref MemoryMarshal.GetReference(u); ref float dr = ref MemoryMarshal.GetReference(delta);
        ref float ar = ref MemoryMarshal.GetReference(at); ref float Dr = ref MemoryMarshal.GetReference(d);
        ref float hr = ref MemoryMarshal.GetReference(h); ref float abr = ref MemoryMarshal.GetReference(abar);
        ref float dyr = ref MemoryMarshal.GetReference(dy); ref float dur = ref MemoryMarshal.GetReference(du);
        ref float ddr = ref MemoryMarshal.GetReference(ddelta); ref float dar = ref MemoryMarshal.GetReference(dat);
        ref float dDr = ref MemoryMarshal.GetReference(dd); ref float dhr = ref MemoryMarshal.GetReference(dh);
        ref float lr = ref MemoryMarshal.GetReference(lanes);
        int c0 = 0;
        if (Simd.Path == SimdPath.Avx512)
            for (; c0 + 2 * W <= di; c0 += 2 * W)
                Backward16(c0, t, di, n, stride, bm, cm, ref ur, ref dr, ref ar, ref Dr, ref hr, ref abr, ref dyr, ref dur, ref ddr, ref dar, ref dDr, ref dhr, ref lr);
        for (int c = c0; c < full; c += W)
        {
            var dv = Vector256.LoadUnsafe(ref Dr, (nuint)c);
            var dD = Vector256.LoadUnsafe(ref dDr, (nuint)c);
            for (int s = t - 1; s >= 0; s--)
            {
                nuint sc = (nuint)(s * di + c);
                var del = Vector256.LoadUnsafe(ref dr, sc); var uv = Vector256.LoadUnsafe(ref ur, sc); var g0 = Vector256.LoadUnsafe(ref dyr, sc);
                var xu = del * uv;
                var dxu = Vector256<float>.Zero;
                var dDel = Vector256.LoadUnsafe(ref ddr, sc);
                for (int k = 0; k < n; k++)
                {
                    nuint o = (nuint)((s * n + k) * di + c), kc = (nuint)(k * di + c);
                    var hs = Vector256.LoadUnsafe(ref hr, o); var a = Vector256.LoadUnsafe(ref abr, o);
                    var g = g0 * Vector256.Create(cm[s * stride + k]) + Vector256.LoadUnsafe(ref dhr, kc);   // ∂L/∂h_t[k]
                    nuint li = (nuint)((s * n + k) * W);
                    (g0 * hs + Vector256.LoadUnsafe(ref lr, li)).StoreUnsafe(ref lr, li);                             // ∂C lanes
                    (g * xu + Vector256.LoadUnsafe(ref lr, li + (nuint)(tn * W))).StoreUnsafe(ref lr, li + (nuint)(tn * W)); // ∂B lanes
                    dxu = g * Vector256.Create(bm[s * stride + k]) + dxu;
                    if (s > 0)
                    {
                        // ∂L/∂Ā = g ⊙ h₍t−1₎; Ā = exp(Δ A): ∂Δ += ∂Ā ⊙ Ā ⊙ A, ∂A += ∂Ā ⊙ Ā ⊙ Δ
                        var e = g * Vector256.LoadUnsafe(ref hr, o - (nuint)(n * di)) * a;
                        dDel = e * Vector256.LoadUnsafe(ref ar, kc) + dDel;
                        (e * del + Vector256.LoadUnsafe(ref dar, kc)).StoreUnsafe(ref dar, kc);
                    }
                    (g * a).StoreUnsafe(ref dhr, kc);                                                               // to h₍t−1₎
                }
                // y = … + D ⊙ u; Δ ⊙ u feeds every state
                (dv * g0 + del * dxu + Vector256.LoadUnsafe(ref dur, sc)).StoreUnsafe(ref dur, sc);
                (uv * dxu + dDel).StoreUnsafe(ref ddr, sc);
                dD = uv * g0 + dD;
            }
            dD.StoreUnsafe(ref dDr, (nuint)c);
        }
        for (int i = 0; i < 2 * tn; i++)
        {
            double sum = 0;
            for (int l = 0; l < W; l++) sum += lanes[i * W + l];
            sums[i] = sum;
        }
        for (int c = full; c < di; c++)
        {
            for (int k = 0; k < n; k++) dh[k * di + c] = 0f;
            for (int s = t - 1; s >= 0; s--)
            {
                int sc = s * di + c;
                float del = delta[sc], uv = u[sc], g0 = dy[sc], xu = del * uv, dxu = 0f, dDel = ddelta[sc];
                for (int k = 0; k < n; k++)
                {
                    int o = (s * n + k) * di + c, kc = k * di + c;
                    float a = abar[o], g = g0 * cm[s * stride + k] + dh[kc];
                    sums[s * n + k] += g0 * h[o];
                    sums[tn + s * n + k] += g * xu;
                    dxu = g * bm[s * stride + k] + dxu;
                    if (s > 0)
                    {
                        float e = g * h[o - n * di] * a;
                        dDel = e * at[kc] + dDel;
                        dat[kc] = e * del + dat[kc];
                    }
                    dh[kc] = g * a;
                }
                du[sc] = d[c] * g0 + del * dxu + du[sc];
                ddelta[sc] = uv * dxu + dDel;
                dd[c] = uv * g0 + dd[c];
            }
        }
        for (int s = 0; s < t; s++)
            for (int k = 0; k < n; k++)
            {
                dcm[s * stride + k] += (float)sums[s * n + k];
                dbm[s * stride + k] += (float)sums[tn + s * n + k];
            }
    }

    // 16 channels in Vector512 registers: the same operations lane for lane as two 8-channel blocks, and each
    // (t, n) lane accumulator gets the lower 8 channels' products before the upper 8's, as the 8-wide loop adds
    // block c before block c+8: the same bits on both paths.
    private static void Backward16(int c, int t, int di, int n, int stride, ReadOnlySpan<float> bm, ReadOnlySpan<float> cm,
        ref float ur, ref float dr, ref float ar, ref float Dr, ref float hr, ref float abr, ref float dyr,
        ref float dur, ref float ddr, ref float dar, ref float dDr, ref float dhr, ref float lr)
    {
        int tn = t * n;
        var dv = Vector512.LoadUnsafe(ref Dr, (nuint)c);
        var dD = Vector512.LoadUnsafe(ref dDr, (nuint)c);
        for (int s = t - 1; s >= 0; s--)
        {
            nuint sc = (nuint)(s * di + c);
            var del = Vector512.LoadUnsafe(ref dr, sc); var uv = Vector512.LoadUnsafe(ref ur, sc); var g0 = Vector512.LoadUnsafe(ref dyr, sc);
            var xu = del * uv;
            var dxu = Vector512<float>.Zero;
            var dDel = Vector512.LoadUnsafe(ref ddr, sc);
            for (int k = 0; k < n; k++)
            {
                nuint o = (nuint)((s * n + k) * di + c), kc = (nuint)(k * di + c);
                var hs = Vector512.LoadUnsafe(ref hr, o); var a = Vector512.LoadUnsafe(ref abr, o);
                var g = g0 * Vector512.Create(cm[s * stride + k]) + Vector512.LoadUnsafe(ref dhr, kc);
                nuint li = (nuint)((s * n + k) * W), lb = li + (nuint)(tn * W);
                var pc = g0 * hs; var pb = g * xu;
                var lc = Vector256.LoadUnsafe(ref lr, li) + pc.GetLower();
                (lc + pc.GetUpper()).StoreUnsafe(ref lr, li);
                var lbv = Vector256.LoadUnsafe(ref lr, lb) + pb.GetLower();
                (lbv + pb.GetUpper()).StoreUnsafe(ref lr, lb);
                dxu = g * Vector512.Create(bm[s * stride + k]) + dxu;
                if (s > 0)
                {
                    var e = g * Vector512.LoadUnsafe(ref hr, o - (nuint)(n * di)) * a;
                    dDel = e * Vector512.LoadUnsafe(ref ar, kc) + dDel;
                    (e * del + Vector512.LoadUnsafe(ref dar, kc)).StoreUnsafe(ref dar, kc);
                }
                (g * a).StoreUnsafe(ref dhr, kc);
            }
            (dv * g0 + del * dxu + Vector512.LoadUnsafe(ref dur, sc)).StoreUnsafe(ref dur, sc);
            (uv * dxu + dDel).StoreUnsafe(ref ddr, sc);
            dD = uv * g0 + dD;
        }
        dD.StoreUnsafe(ref dDr, (nuint)c);
    }
}

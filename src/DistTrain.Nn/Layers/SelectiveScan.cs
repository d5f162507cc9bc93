// Mamba's selective scan for one sample, forward and backward (mamba_ssm selective_scan_ref, real A):
//   Ā_t = exp(Δ_t ⊙ A)   (zero-order hold of dh/dt = A h),   B̄_t u_t = Δ_t ⊙ B_t ⊙ u_t   (Mamba's simplified B̄),
//   h_t = Ā_t ⊙ h₍t−1₎ + B̄_t u_t,   y_t = Σ_n C_t[n] h_t[n] + D ⊙ u_t,   h₋₁ = 0.
// The scan runs sequentially over t; the channels d are the vector dimension (A is held transposed, (N,Di)),
// so every step is a few span ops of length Di. exp is FastExp and the reductions over d are LaneSums, so
// the bits do not depend on the SIMD path. Naive double-precision oracle: MambaTests.NaiveScan.
// Letters: T steps, Di channels, N state size; Bm, Cm are read with a row stride (they sit inside x_proj's output).

using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

internal static class SelectiveScan
{
    /// <summary>
    /// u, delta (T,Di); at (N,Di) = Aᵀ; bm, cm: row t at t·stride, N values; d (Di) -> y (T,Di).
    /// Saves h (T,N,Di) and abar (T,N,Di) = exp(Δ ⊙ A) for <see cref="Backward"/>; du (Di) is scratch.
    /// </summary>
    public static void Forward(int t, int di, int n, ReadOnlySpan<float> u, ReadOnlySpan<float> delta, ReadOnlySpan<float> at,
        ReadOnlySpan<float> bm, ReadOnlySpan<float> cm, int stride, ReadOnlySpan<float> d,
        Span<float> y, Span<float> h, Span<float> abar, Span<float> du)
    {
        for (int s = 0; s < t; s++)
        {
            var us = u.Slice(s * di, di); var ds = delta.Slice(s * di, di); var ys = y.Slice(s * di, di);
            TensorPrimitives.Multiply(ds, us, du);
            TensorPrimitives.Multiply(d, us, ys);
            for (int k = 0; k < n; k++)
            {
                int o = (s * n + k) * di;
                var a = abar.Slice(o, di); var hs = h.Slice(o, di);
                TensorPrimitives.Multiply(ds, at.Slice(k * di, di), a);
                DistTrain.Tensors.Kernels.Elementwise.Exp(a, a);
                if (s == 0) TensorPrimitives.Multiply(du, bm[s * stride + k], hs);
                else
                {
                    TensorPrimitives.Multiply(a, h.Slice(o - n * di, di), hs);
                    TensorPrimitives.MultiplyAdd(du, bm[s * stride + k], hs, hs);
                }
                TensorPrimitives.MultiplyAdd(hs, cm[s * stride + k], ys, ys);
            }
        }
    }

    /// <summary>
    /// dy (T,Di) -> ADDS into du (T,Di), ddelta (T,Di), dat (N,Di), dbm/dcm (row stride), dd (Di). dh (N,Di), g, dxu, tmp (Di) are scratch.
    /// </summary>
    public static void Backward(int t, int di, int n, ReadOnlySpan<float> u, ReadOnlySpan<float> delta, ReadOnlySpan<float> at,
        ReadOnlySpan<float> bm, ReadOnlySpan<float> cm, int stride, ReadOnlySpan<float> d, ReadOnlySpan<float> h, ReadOnlySpan<float> abar,
        ReadOnlySpan<float> dy, Span<float> du, Span<float> ddelta, Span<float> dat, Span<float> dbm, Span<float> dcm, Span<float> dd,
        Span<float> dh, Span<float> g, Span<float> dxu, Span<float> xu, Span<float> tmp)
    {
        dh.Clear();   // ∂L/∂h_t carried from step t+1
        for (int s = t - 1; s >= 0; s--)
        {
            var us = u.Slice(s * di, di); var ds = delta.Slice(s * di, di); var dys = dy.Slice(s * di, di);
            var dus = du.Slice(s * di, di); var dds = ddelta.Slice(s * di, di);
            TensorPrimitives.Multiply(ds, us, xu);   // Δ ⊙ u
            dxu.Clear();                              // ∂L/∂(Δ ⊙ u)
            for (int k = 0; k < n; k++)
            {
                int o = (s * n + k) * di;
                var hs = h.Slice(o, di); var a = abar.Slice(o, di); var dhk = dh.Slice(k * di, di);
                dcm[s * stride + k] += (float)LaneSums.Dot(dys, hs);
                TensorPrimitives.MultiplyAdd(dys, cm[s * stride + k], dhk, g);        // g = ∂L/∂h_t[k]
                dbm[s * stride + k] += (float)LaneSums.Dot(g, xu);
                TensorPrimitives.MultiplyAdd(g, bm[s * stride + k], dxu, dxu);
                if (s > 0)
                {
                    // ∂L/∂Ā = g ⊙ h₍t−1₎; Ā = exp(Δ A): ∂Δ += ∂Ā ⊙ Ā ⊙ A, ∂A += ∂Ā ⊙ Ā ⊙ Δ
                    TensorPrimitives.Multiply(g, h.Slice(o - n * di, di), tmp);
                    TensorPrimitives.Multiply(tmp, a, tmp);
                    TensorPrimitives.MultiplyAdd(tmp, at.Slice(k * di, di), dds, dds);
                    var dak = dat.Slice(k * di, di);
                    TensorPrimitives.MultiplyAdd(tmp, ds, dak, dak);
                }
                TensorPrimitives.Multiply(g, a, dhk);                                   // to h₍t−1₎
            }
            // y = … + D ⊙ u;  Δ ⊙ u feeds every state
            TensorPrimitives.MultiplyAdd(d, dys, dus, dus);
            TensorPrimitives.MultiplyAdd(ds, dxu, dus, dus);
            TensorPrimitives.MultiplyAdd(us, dxu, dds, dds);
            TensorPrimitives.MultiplyAdd(us, dys, dd, dd);
        }
    }
}

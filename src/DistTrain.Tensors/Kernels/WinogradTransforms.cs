// The tile transforms of Winograd F(2×2, 3×3) (Lavin & Gray 2015) for ConvWinograd, with
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], Aᵀ = [1 1 1 0; 0 1 -1 -1].
// A tile (ti, tj) of a plane covers outputs (2ti..2ti+1, 2tj..2tj+1) and, padded by one, inputs
// (2ti-1..2ti+2, 2tj-1..2tj+2). Transformed tiles live as 16 matrices, one per ξ = 4·j + k (j vertical,
// k horizontal), each (channels, ld) with the chunk's tiles p = local tile row · TW + tj contiguous.
// Vectors run across 8 tiles of a tile row; every step is a plain add, subtract or exact halving, written
// out in one order with Vector256 on every SIMD path, so the bits never depend on the machine.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class WinogradTransforms
{
    /// <summary>Floats per half-row of the de-interleaved scratch: TW + 1 values, plus the overhang of 8-lane loads at tj + 1.</summary>
    public static int HalfRow(int tw) => tw + 9;

    /// <summary>
    /// u[(ξ·rows + r)·cols + col] = (G g Gᵀ)[ξ] for each (r, col) filter g (3×3): with rotate false
    /// g = w[r, col] (u per ξ is (OC, C), the forward's); with rotate true g = w[col, r] turned by 180°
    /// (u per ξ is (C, OC): the input gradient is a pad-1 convolution of dy with those filters).
    /// </summary>
    public static void Weights(float* w, int oc, int c, bool rotate, float* u)
    {
        int rows = rotate ? c : oc, cols = rotate ? oc : c;
        float* g = stackalloc float[9];
        float* t = stackalloc float[12];
        long plane = (long)rows * cols;
        for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++)
        {
            float* src = rotate ? w + ((long)q * c + r) * 9 : w + ((long)r * c + q) * 9;
            for (int i = 0; i < 9; i++) g[i] = rotate ? src[8 - i] : src[i];
            // t = G g (4×3), then u = t Gᵀ (4×4).
            for (int k = 0; k < 3; k++)
            {
                float g0 = g[k], g1 = g[3 + k], g2 = g[6 + k];
                t[k] = g0; t[3 + k] = (g0 + g1 + g2) * 0.5f; t[6 + k] = (g0 - g1 + g2) * 0.5f; t[9 + k] = g2;
            }
            float* dst = u + (long)r * cols + q;
            for (int j = 0; j < 4; j++)
            {
                float t0 = t[3 * j], t1 = t[3 * j + 1], t2 = t[3 * j + 2];
                dst[(4 * j) * plane] = t0;
                dst[(4 * j + 1) * plane] = (t0 + t1 + t2) * 0.5f;
                dst[(4 * j + 2) * plane] = (t0 - t1 + t2) * 0.5f;
                dst[(4 * j + 3) * plane] = t2;
            }
        }
    }

    /// <summary>
    /// dw[o, c, :, :] += Gᵀ m[·, o, c] G for each (o, c), m per ξ (OC, C): the weight gradient from its
    /// Winograd-domain sums (the transpose of <see cref="Weights"/>' G g Gᵀ).
    /// </summary>
    public static void WeightGradient(float* m, int oc, int c, float* dw)
    {
        long plane = (long)oc * c;
        float* t = stackalloc float[12];
        for (int o = 0; o < oc; o++)
        for (int q = 0; q < c; q++)
        {
            float* src = m + (long)o * c + q;
            // t = Gᵀ m (3×4), then r = t G (3×3).
            for (int k = 0; k < 4; k++)
            {
                float m0 = src[k * plane], m1 = src[(4 + k) * plane], m2 = src[(8 + k) * plane], m3 = src[(12 + k) * plane];
                t[k] = m0 + (m1 + m2) * 0.5f; t[4 + k] = (m1 - m2) * 0.5f; t[8 + k] = (m1 + m2) * 0.5f + m3;
            }
            float* dst = dw + ((long)o * c + q) * 9;
            for (int i = 0; i < 3; i++)
            {
                float t0 = t[4 * i], t1 = t[4 * i + 1], t2 = t[4 * i + 2], t3 = t[4 * i + 3];
                dst[3 * i] += t0 + (t1 + t2) * 0.5f;
                dst[3 * i + 1] += (t1 - t2) * 0.5f;
                dst[3 * i + 2] += (t1 + t2) * 0.5f + t3;
            }
        }
    }

    /// <summary>
    /// Copies rows [row0, row0 + count) of a (h, w) plane, zero outside it, de-interleaved into dst: row r
    /// at dst + r·2·half holds E[i] = x[2i + shift] then, at + half, O[i] = x[2i + 1 + shift], i in [0, n),
    /// zeros up to half. shift −1 lines up the pad-1 input patches, 0 the 2×2 output tiles.
    /// </summary>
    private static void Deinterleave(float* plane, int h, int w, int row0, int count, int shift, int n, int half, float* dst)
    {
        for (int r = 0; r < count; r++, dst += 2 * half)
        {
            int row = row0 + r;
            if ((uint)row >= (uint)h) { new Span<float>(dst, 2 * half).Clear(); continue; }
            float* src = plane + (long)row * w;
            float* odd = dst + half;
            for (int i = 0; i < n; i++)
            {
                int e = 2 * i + shift, o = e + 1;
                dst[i] = (uint)e < (uint)w ? src[e] : 0f;
                odd[i] = (uint)o < (uint)w ? src[o] : 0f;
            }
            for (int i = n; i < half; i++) { dst[i] = 0f; odd[i] = 0f; }
        }
    }

    /// <summary>
    /// v[(ξ·ci + c)·ld + p] = (Bᵀ d B)[ξ] for the pad-1 4×4 input patch d of each tile of the chunk's tile
    /// rows [row0, row1) (flat over (b, ti)); src (B, ci, h, w). <paramref name="scratch"/> holds
    /// 2·(rows + 1)·2·HalfRow(tw) floats. Each tile row's last vector spills up to 7 lanes past its tiles:
    /// the next tile row overwrites them, and ld leaves room after the last.
    /// </summary>
    public static void InputTiles(float* src, int ci, int h, int w, int row0, int row1, float* v, long ld, float* scratch)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2, half = HalfRow(tw);
        long xi = ci * ld;
        for (int r = row0; r < row1;)
        {
            int b = r / th, t0 = r % th, t1 = Math.Min(th, t0 + (row1 - r));
            float* vOut = v + (long)(r - row0) * tw;
            for (int c = 0; c < ci; c++)
            {
                Deinterleave(src + ((long)b * ci + c) * h * w, h, w, 2 * t0 - 1, 2 * (t1 - t0) + 2, -1, tw + 1, half, scratch);
                for (int t = t0; t < t1; t++)
                    InputRow(scratch + (long)(t - t0) * 4 * half, half, tw, vOut + c * ld + (long)(t - t0) * tw, xi);
            }
            r += t1 - t0;
        }
    }

    // One tile row: d rows at drow + r·2·half (r = 0..3), E then O. Bᵀ on each row, then down the columns.
    private static void InputRow(float* drow, int half, int tw, float* dst, long xi)
    {
        for (int tj = 0; tj < tw; tj += 8)
        {
            Vector256<float> t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33;
            Row(drow + tj, half, out t00, out t01, out t02, out t03);
            Row(drow + 2 * half + tj, half, out t10, out t11, out t12, out t13);
            Row(drow + 4 * half + tj, half, out t20, out t21, out t22, out t23);
            Row(drow + 6 * half + tj, half, out t30, out t31, out t32, out t33);
            float* d = dst + tj;
            Column(d, xi, 0, t00, t10, t20, t30);
            Column(d, xi, 1, t01, t11, t21, t31);
            Column(d, xi, 2, t02, t12, t22, t32);
            Column(d, xi, 3, t03, t13, t23, t33);
        }
    }

    // Bᵀ [d0 d1 d2 d3] = [d0 − d2, d1 + d2, d2 − d1, d1 − d3] with d0 = E[tj], d1 = O[tj], d2 = E[tj+1], d3 = O[tj+1].
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row(float* e, int half, out Vector256<float> k0, out Vector256<float> k1, out Vector256<float> k2, out Vector256<float> k3)
    {
        var e0 = Vector256.Load(e); var e1 = Vector256.Load(e + 1);
        var o0 = Vector256.Load(e + half); var o1 = Vector256.Load(e + half + 1);
        k0 = e0 - e1; k1 = o0 + e1; k2 = e1 - o0; k3 = o0 - o1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Column(float* d, long xi, int k, Vector256<float> t0, Vector256<float> t1, Vector256<float> t2, Vector256<float> t3)
    {
        (t0 - t2).Store(d + k * xi);
        (t1 + t2).Store(d + (4 + k) * xi);
        (t2 - t1).Store(d + (8 + k) * xi);
        (t1 - t3).Store(d + (12 + k) * xi);
    }

    /// <summary>
    /// g[(ξ·oc + o)·ld + p] = (A dy Aᵀ)[ξ] for the 2×2 output-gradient tile of each tile of rows [row0, row1)
    /// (zero past the plane), A = (Aᵀ)ᵀ: the weight gradient's transform of dy. dy (B, oc, h, w).
    /// </summary>
    public static void GradTiles(float* dy, int oc, int h, int w, int row0, int row1, float* g, long ld, float* scratch)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2, half = HalfRow(tw);
        long xi = oc * ld;
        for (int r = row0; r < row1;)
        {
            int b = r / th, t0 = r % th, t1 = Math.Min(th, t0 + (row1 - r));
            float* gOut = g + (long)(r - row0) * tw;
            for (int o = 0; o < oc; o++)
            {
                Deinterleave(dy + ((long)b * oc + o) * h * w, h, w, 2 * t0, 2 * (t1 - t0), 0, tw, half, scratch);
                for (int t = t0; t < t1; t++)
                {
                    float* drow = scratch + (long)(t - t0) * 4 * half;
                    float* dst = gOut + o * ld + (long)(t - t0) * tw;
                    for (int tj = 0; tj < tw; tj += 8)
                    {
                        // A [a0 a1] = [a0, a0 + a1, a0 − a1, −a1] along each row, then down the columns.
                        var e0 = Vector256.Load(drow + tj); var o0 = Vector256.Load(drow + half + tj);
                        var e1 = Vector256.Load(drow + 2 * half + tj); var o1 = Vector256.Load(drow + 3 * half + tj);
                        float* d = dst + tj;
                        GradColumn(d, xi, 0, e0, e1);
                        GradColumn(d, xi, 1, e0 + o0, e1 + o1);
                        GradColumn(d, xi, 2, e0 - o0, e1 - o1);
                        GradColumn(d, xi, 3, -o0, -o1);
                    }
                }
            }
            r += t1 - t0;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GradColumn(float* d, long xi, int k, Vector256<float> t0, Vector256<float> t1)
    {
        t0.Store(d + k * xi);
        (t0 + t1).Store(d + (4 + k) * xi);
        (t0 - t1).Store(d + (8 + k) * xi);
        (-t1).Store(d + (12 + k) * xi);
    }

    /// <summary>
    /// y[b, o, 2ti + i, 2tj + l] = (Aᵀ m A)[i, l] (+ bias[o]) for the tiles of rows [row0, row1), clipped
    /// to the (h, w) plane; m[(ξ·oc + o)·ld + p]; y (B, oc, h, w).
    /// </summary>
    public static void OutputTiles(float* m, int oc, long ld, int h, int w, int row0, int row1, float* bias, float* y)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2;
        long xi = oc * ld;
        for (int r = row0; r < row1;)
        {
            int b = r / th, t0 = r % th, t1 = Math.Min(th, t0 + (row1 - r));
            float* mIn = m + (long)(r - row0) * tw;
            for (int o = 0; o < oc; o++)
            {
                float* plane = y + ((long)b * oc + o) * h * w;
                var bo = Vector256.Create(bias == null ? 0f : bias[o]);
                for (int t = t0; t < t1; t++)
                {
                    float* src = mIn + o * ld + (long)(t - t0) * tw;
                    for (int tj = 0; tj < tw; tj += 8)
                    {
                        float* s = src + tj;
                        // Aᵀ down the columns (s0 = m0 + m1 + m2, s1 = m1 − m2 − m3), then along the rows.
                        Vector256<float> s00, s01, s02, s03, s10, s11, s12, s13;
                        Collapse(s, xi, 0, out s00, out s10);
                        Collapse(s, xi, 1, out s01, out s11);
                        Collapse(s, xi, 2, out s02, out s12);
                        Collapse(s, xi, 3, out s03, out s13);
                        int cols = Math.Min(16, w - 2 * tj);
                        float* row = plane + (long)2 * t * w + 2 * tj;
                        Store(row, cols, s00 + s01 + s02 + bo, s01 - s02 - s03 + bo);
                        if (2 * t + 1 < h) Store(row + w, cols, s10 + s11 + s12 + bo, s11 - s12 - s13 + bo);
                    }
                }
            }
            r += t1 - t0;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Collapse(float* s, long xi, int k, out Vector256<float> s0, out Vector256<float> s1)
    {
        var m0 = Vector256.Load(s + k * xi); var m1 = Vector256.Load(s + (4 + k) * xi);
        var m2 = Vector256.Load(s + (8 + k) * xi); var m3 = Vector256.Load(s + (12 + k) * xi);
        s0 = m0 + m1 + m2; s1 = m1 - m2 - m3;
    }

    /// <summary>dst[2t] = even[t], dst[2t + 1] = odd[t] for the first <paramref name="n"/> (1..16) floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* dst, int n, Vector256<float> even, Vector256<float> odd)
    {
        if (Avx.IsSupported)
        {
            var lo = Avx.UnpackLow(even, odd); var hi = Avx.UnpackHigh(even, odd);
            var a = Avx.Permute2x128(lo, hi, 0x20); var c = Avx.Permute2x128(lo, hi, 0x31);
            if (n == 16) { a.Store(dst); c.Store(dst + 8); return; }
            float* tmp = stackalloc float[16];
            a.Store(tmp); c.Store(tmp + 8);
            for (int i = 0; i < n; i++) dst[i] = tmp[i];
            return;
        }
        for (int i = 0; i < n; i++) dst[i] = (i & 1) == 0 ? even.GetElement(i >> 1) : odd.GetElement(i >> 1);
    }
}

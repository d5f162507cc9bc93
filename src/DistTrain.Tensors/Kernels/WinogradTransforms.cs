// The tile transforms of Winograd F(2×2, 3×3) (Lavin & Gray 2015) for ConvWinograd, with
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], Aᵀ = [1 1 1 0; 0 1 -1 -1].
// A tile (ti, tj) of a plane covers outputs (2ti..2ti+1, 2tj..2tj+1) and, padded by one, inputs
// (2ti-1..2ti+2, 2tj-1..2tj+2). Tiles are numbered flat, p = (b·TH + ti)·TW + tj, and handled in chunks
// [p0, p1). Transformed tiles live as 16 matrices, one per ξ = 4·j + k (j vertical, k horizontal), each
// (channels, ld) with the chunk's tiles contiguous, ξ·xi apart. Vectors run across 8 tiles of a tile row; every step
// is a plain add, subtract or exact halving, written out in one order with Vector256 on every SIMD
// path, so the bits never depend on the machine.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class WinogradTransforms
{
    /// <summary>Floats per half-row of the de-interleaved scratch (a multiple of 8): TW + 1 values, the overhang of 8-lane
    /// loads at tj + 1, and one vector of slack for the de-interleave's last (shifted) store.</summary>
    public static int HalfRow(int tw) => (tw + 16 + 7) / 8 * 8;

    /// <summary>Scratch floats the tile transforms need for chunks of <paramref name="chunkTiles"/> tiles: the de-interleaved rows.</summary>
    public static long ScratchLength(int th, int tw, int chunkTiles)
    {
        int tileRows = Math.Min(th, chunkTiles / tw + 2);
        return (2L * tileRows + 4) * 2 * HalfRow(tw) + 16;
    }

    /// <summary>
    /// u[((m / mr · 16 + ξ)·K + k)·mr + m % mr] = (G g Gᵀ)[ξ] for each filter g (3×3), zero for m past the
    /// last (blocks of mr: the micro-kernel's A panel for one block and ξ is contiguous): with rotate
    /// false g = w[m, k] (k = C, m = OC: the forward's filters); with rotate true g = w[k, m] turned by
    /// 180° (k = OC, m = C: the input gradient is a pad-1 convolution of dy with those filters).
    /// </summary>
    public static void Weights(float* w, int oc, int c, bool rotate, float* u, int mr)
    {
        int kDim = rotate ? oc : c, mDim = rotate ? c : oc, blocks = (mDim + mr - 1) / mr;
        new Span<float>(u, blocks * 16 * kDim * mr).Clear();
        float* g = stackalloc float[9];
        float* t = stackalloc float[12];
        long plane = (long)kDim * mr;
        for (int k = 0; k < kDim; k++)
        for (int m = 0; m < mDim; m++)
        {
            float* src = rotate ? w + ((long)k * c + m) * 9 : w + ((long)m * c + k) * 9;
            for (int i = 0; i < 9; i++) g[i] = rotate ? src[8 - i] : src[i];
            // t = G g (4×3), then G t Gᵀ = t Gᵀ row by row (4×4).
            for (int q = 0; q < 3; q++)
            {
                float g0 = g[q], g1 = g[3 + q], g2 = g[6 + q];
                t[q] = g0; t[3 + q] = (g0 + g1 + g2) * 0.5f; t[6 + q] = (g0 - g1 + g2) * 0.5f; t[9 + q] = g2;
            }
            float* dst = u + (m / mr * 16L * kDim + k) * mr + m % mr;
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
    /// dw[o, c, :, :] += Gᵀ m[·, o, c] G for each (o, c), m[ξ·plane + o·ldm + c]: the weight gradient from its
    /// Winograd-domain sums (the transpose of <see cref="Weights"/>' G g Gᵀ).
    /// </summary>
    public static void WeightGradient(float* m, int oc, int c, long plane, int ldm, float* dw)
    {
        float* t = stackalloc float[12];
        for (int o = 0; o < oc; o++)
        for (int q = 0; q < c; q++)
        {
            float* src = m + (long)o * ldm + q;
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

    /// <summary>The part of a chunk [p, p1) inside one plane: sample b, tile rows ti0..tiL (inclusive), the first
    /// row from tj0, the last up to tjL (exclusive); returns the flat end of the part.</summary>
    internal static int Segment(int p, int p1, int th, int tw, out int b, out int ti0, out int tj0, out int tiL, out int tjL)
    {
        int perPlane = th * tw;
        b = p / perPlane;
        int rem = p - b * perPlane, end = Math.Min(p1, (b + 1) * perPlane), remEnd = end - b * perPlane;
        ti0 = rem / tw; tj0 = rem % tw;
        tiL = (remEnd - 1) / tw; tjL = (remEnd - 1) % tw + 1;
        return end;
    }

    /// <summary>
    /// Rows [row0, row0 + count) of a (h, w) plane, zero outside it, de-interleaved into dst: row r at
    /// dst + r·2·half holds E[i] = x[2i − off] then, at + half, O[i] = x[2i + 1 − off], for i in [0, half − 8)
    /// (beyond: junk, never used). off 1 lines up the pad-1 input patches, 0 the 2×2 output tiles.
    /// </summary>
    private static void Deinterleave(float* plane, int h, int w, int row0, int count, int off, int half, float* dst)
    {
        for (int r = 0; r < count; r++, dst += 2 * half)
        {
            int row = row0 + r;
            if ((uint)row >= (uint)h) { new Span<float>(dst, 2 * half).Clear(); continue; }
            float* src = plane + (long)row * w;
            // With off 1, x's even elements are O and its odd ones E shifted up by one (E[0] is the left padding).
            float* evens = off == 0 ? dst : dst + half, odds = off == 0 ? dst + half : dst + 1;
            if (off == 1) dst[0] = 0f;
            if (Avx2.IsSupported)
            {
                // 16 floats of x at a time, masked past the row (masked lanes read 0 and never fault): in-lane
                // shuffles pick the evens and the odds, then 64-bit lanes go into order 0 2 1 3. Loading x
                // itself (not a staged copy) avoids loads that straddle recent unaligned stores.
                for (int i = 0; i < half - 8; i += 8)
                {
                    var a = Avx.MaskLoad(src + 2 * i, FirstLanes(Math.Clamp(w - 2 * i, 0, 8)));
                    var c = Avx.MaskLoad(src + 2 * i + 8, FirstLanes(Math.Clamp(w - 2 * i - 8, 0, 8)));
                    Avx.Store(evens + i, Avx2.Permute4x64(Avx.Shuffle(a, c, 0x88).AsDouble(), 0xD8).AsSingle());
                    Avx.Store(odds + i, Avx2.Permute4x64(Avx.Shuffle(a, c, 0xDD).AsDouble(), 0xD8).AsSingle());
                }
            }
            else
                for (int i = 0; i < half - 8; i++)
                {
                    evens[i] = 2 * i < w ? src[2 * i] : 0f;
                    odds[i] = 2 * i + 1 < w ? src[2 * i + 1] : 0f;
                }
        }
    }

    /// <summary>
    /// v[ξ·xi + c·ld + p − p0] = (Bᵀ d B)[ξ] for the pad-1 4×4 input patch d of each tile p in [p0, p1);
    /// src (B, ci, h, w). A tile row's last vector spills up to 7 lanes past its tiles: the tiles after
    /// them are written later, and ld leaves room after the chunk's last.
    /// </summary>
    public static void InputTiles(float* src, int ci, int h, int w, int p0, int p1, float* v, long xi, long ld, float* scratch)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2, half = HalfRow(tw);
        float* rows = scratch;
        for (int p = p0; p < p1;)
        {
            int end = Segment(p, p1, th, tw, out int b, out int ti0, out int tj0, out int tiL, out int tjL);
            long first = (long)(b * th + ti0) * tw - p0;   // chunk column of tile (ti0, 0)
            for (int c = 0; c < ci; c++)
            {
                Deinterleave(src + ((long)b * ci + c) * h * w, h, w, 2 * ti0 - 1, 2 * (tiL - ti0) + 4, 1, half, rows);
                for (int t = ti0; t <= tiL; t++)
                {
                    float* drow = rows + (long)(t - ti0) * 4 * half;
                    float* dst = v + c * ld + first + (long)(t - ti0) * tw;
                    int s = t == ti0 ? tj0 : 0, e = t == tiL ? tjL : tw;
                    for (int tj = s; tj < e; tj += 8)
                    {
                        Vector256<float> t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33;
                        Row(drow + tj, half, out t00, out t01, out t02, out t03);
                        Row(drow + 2 * half + tj, half, out t10, out t11, out t12, out t13);
                        Row(drow + 4 * half + tj, half, out t20, out t21, out t22, out t23);
                        Row(drow + 6 * half + tj, half, out t30, out t31, out t32, out t33);
                        InputTile(dst + tj, xi, t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33);
                    }
                }
            }
            p = end;
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

    /// <summary>Bᵀ down the columns of 8 tiles whose rows went through Row (t_rk: row r, column k), stored to the 16 ξ
    /// rows at d + ξ·xi — shared by the input tiles and the weight gradient's packed panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void InputTile(float* d, long xi,
        Vector256<float> t00, Vector256<float> t01, Vector256<float> t02, Vector256<float> t03,
        Vector256<float> t10, Vector256<float> t11, Vector256<float> t12, Vector256<float> t13,
        Vector256<float> t20, Vector256<float> t21, Vector256<float> t22, Vector256<float> t23,
        Vector256<float> t30, Vector256<float> t31, Vector256<float> t32, Vector256<float> t33)
    {
        Column(d, xi, 0, t00, t10, t20, t30);
        Column(d, xi, 1, t01, t11, t21, t31);
        Column(d, xi, 2, t02, t12, t22, t32);
        Column(d, xi, 3, t03, t13, t23, t33);
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
    /// g[ξ·xi + o·ld + p − p0] = (A dy Aᵀ)[ξ] for the 2×2 output-gradient tile of each tile p in [p0, p1)
    /// (zero past the plane), A = (Aᵀ)ᵀ: the weight gradient's transform of dy. dy (B, oc, h, w).
    /// </summary>
    public static void GradTiles(float* dy, int oc, int h, int w, int p0, int p1, float* g, long xi, long ld, float* scratch)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2, half = HalfRow(tw);
        float* rows = scratch;
        for (int p = p0; p < p1;)
        {
            int end = Segment(p, p1, th, tw, out int b, out int ti0, out int tj0, out int tiL, out int tjL);
            long first = (long)(b * th + ti0) * tw - p0;
            for (int o = 0; o < oc; o++)
            {
                Deinterleave(dy + ((long)b * oc + o) * h * w, h, w, 2 * ti0, 2 * (tiL - ti0) + 2, 0, half, rows);
                for (int t = ti0; t <= tiL; t++)
                {
                    float* drow = rows + (long)(t - ti0) * 4 * half;
                    float* dst = g + o * ld + first + (long)(t - ti0) * tw;
                    int s = t == ti0 ? tj0 : 0, e = t == tiL ? tjL : tw;
                    for (int tj = s; tj < e; tj += 8)
                    {
                        // A [a0 a1] = [a0, a0 + a1, a0 − a1, −a1] along each row, then down the columns.
                        var e0 = Vector256.Load(drow + tj); var o0 = Vector256.Load(drow + half + tj);
                        var e1 = Vector256.Load(drow + 2 * half + tj); var o1 = Vector256.Load(drow + 3 * half + tj);
                        GradTile(dst + tj, xi, e0, o0, e1, o1);
                    }
                }
            }
            p = end;
        }
    }

    /// <summary>A dy Aᵀ of 8 tiles: rows (e0, o0) and (e1, o1) of the tiles' 2×2 blocks, even and odd columns, to the
    /// 16 ξ rows at d + ξ·xi — shared by the input-gradient tiles and the weight gradient's packed panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void GradTile(float* d, long xi, Vector256<float> e0, Vector256<float> o0, Vector256<float> e1, Vector256<float> o1)
    {
        GradColumn(d, xi, 0, e0, e1);
        GradColumn(d, xi, 1, e0 + o0, e1 + o1);
        GradColumn(d, xi, 2, e0 - o0, e1 - o1);
        GradColumn(d, xi, 3, -o0, -o1);
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
    /// y[b, o, 2ti + i, 2tj + l] = (Aᵀ m A)[i, l] (+ bias[o]) for channels o in [o0, o1) and tiles p in
    /// [p0, p1), clipped to the (h, w) plane; m[ξ·xi + (o − o0)·ld + p − p0]; y (B, oc, h, w).
    /// </summary>
    public static void OutputTiles(float* m, long xi, long ld, int o0, int o1, int oc, int h, int w, int p0, int p1, float* bias, float* y)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2;
        for (int p = p0; p < p1;)
        {
            int end = Segment(p, p1, th, tw, out int b, out int ti0, out int tj0, out int tiL, out int tjL);
            long first = (long)(b * th + ti0) * tw - p0;
            for (int o = o0; o < o1; o++)
            {
                float* plane = y + ((long)b * oc + o) * h * w;
                var bo = Vector256.Create(bias == null ? 0f : bias[o]);
                for (int t = ti0; t <= tiL; t++)
                {
                    float* src = m + (o - o0) * ld + first + (long)(t - ti0) * tw;
                    int s = t == ti0 ? tj0 : 0, e = t == tiL ? tjL : tw;
                    float* row0 = plane + (long)2 * t * w;
                    bool second = 2 * t + 1 < h;
                    // A whole tile row in one vector (8 ≤ w ≤ 16) may store whole vectors: what runs past a row
                    // (16 − w floats) lands in the next one, which this loop writes right after (masked stores are
                    // slow on some CPUs) — but only where this chunk owns those columns: a chunk that ends early in
                    // the next tile row leaves them to another chunk, maybe on another thread, maybe already written.
                    bool whole = tw <= 8 && w >= 8 && s == 0 && e == tw;
                    bool spill0 = whole && second, spill1 = whole && (t + 1 < tiL || (t + 1 == tiL && 2 * tjL >= 16 - w));
                    for (int tj = s; tj < e; tj += 8)
                    {
                        // Aᵀ down the columns (s0 = m0 + m1 + m2, s1 = m1 − m2 − m3), then along the rows.
                        Vector256<float> s00, s01, s02, s03, s10, s11, s12, s13;
                        float* q = src + tj;
                        Collapse(q, xi, 0, out s00, out s10);
                        Collapse(q, xi, 1, out s01, out s11);
                        Collapse(q, xi, 2, out s02, out s12);
                        Collapse(q, xi, 3, out s03, out s13);
                        int cols = Math.Min(16, Math.Min(2 * (e - tj), w - 2 * tj));
                        Store(row0 + 2 * tj, cols, s00 + s01 + s02 + bo, s01 - s02 - s03 + bo, spill0);
                        if (second) Store(row0 + w + 2 * tj, cols, s10 + s11 + s12 + bo, s11 - s12 - s13 + bo, spill1);
                    }
                }
            }
            p = end;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Collapse(float* s, long xi, int k, out Vector256<float> s0, out Vector256<float> s1)
    {
        var m0 = Vector256.Load(s + k * xi); var m1 = Vector256.Load(s + (4 + k) * xi);
        var m2 = Vector256.Load(s + (8 + k) * xi); var m3 = Vector256.Load(s + (12 + k) * xi);
        s0 = m0 + m1 + m2; s1 = m1 - m2 - m3;
    }

    // Lanes [8 − n, 16 − n) of this are the mask of the first n lanes.
    private static ReadOnlySpan<int> MaskTable => [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FirstLanes(int n) =>
        Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(MaskTable), (nuint)(8 - n)).AsSingle();

    /// <summary>dst[2t] = even[t], dst[2t + 1] = odd[t] for the first <paramref name="n"/> (1..16) floats; past them, junk
    /// up to 16 floats when <paramref name="spill"/>, else nothing is touched (the next floats may belong to another thread's chunk).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* dst, int n, Vector256<float> even, Vector256<float> odd, bool spill)
    {
        if (Avx.IsSupported)
        {
            var lo = Avx.UnpackLow(even, odd); var hi = Avx.UnpackHigh(even, odd);
            var a = Avx.Permute2x128(lo, hi, 0x20); var c = Avx.Permute2x128(lo, hi, 0x31);
            if (spill) { Avx.Store(dst, a); Avx.Store(dst + 8, c); return; }
            if (n >= 8)
            {
                Avx.Store(dst, a);
                if (n == 16) Avx.Store(dst + 8, c);
                else if (n > 8) Avx.MaskStore(dst + 8, FirstLanes(n - 8), c);
            }
            else Avx.MaskStore(dst, FirstLanes(n), a);
            return;
        }
        for (int i = 0; i < n; i++) dst[i] = (i & 1) == 0 ? even.GetElement(i >> 1) : odd.GetElement(i >> 1);
    }
}

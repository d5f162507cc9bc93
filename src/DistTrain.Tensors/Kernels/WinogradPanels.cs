// The weight gradient's operands for ConvWinograd, written straight into the SGEMM micro-kernel's packed
// panels (GemmPack's layouts): per ξ, dy's (A dy Aᵀ) as A panels (mr output channels per tile, one tile per
// k step) and x's (Bᵀ x B) as B panels (nr input channels per tile). The planes are first staged
// channel-inner (8×8 register transposes of 8 channels by 8 pixels), so the transforms run with vectors
// across channels and store whole panel rows: each pixel is transposed once, where packing the tile
// matrices moved all 16 transformed values of every tile and channel through L2 again. The transforms
// are WinogradTransforms' InputTiles and GradTiles, the same adds in the same order, with Vector256 on
// every SIMD path (the bits never depend on the machine).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class WinogradPanels
{
    private static int RoundUp(int x, int unit) => (x + unit - 1) / unit * unit;

    /// <summary>Floats from one A panel to the next: a tile's 8-lane store (mr ≤ 8) spills mr − 8 lanes into the next
    /// tile's slot, written after it, or, after a panel's last tile, into these 8 floats of slack.</summary>
    public static int APanel(int mr, int chunk) => mr * chunk + 8;

    /// <summary>Channel stride of dy's staged pixels: the last block's 8-lane loads stay inside (zeros past OC).</summary>
    public static int GradChannels(int padOC, int mr) => RoundUp(padOC - mr + 8, 8);

    /// <summary>Floats of staged pixels for chunks of <paramref name="chunk"/> tiles: x's rows (one pixel of padding
    /// around) with <paramref name="xChannels"/> per pixel, or dy's with <paramref name="gradChannels"/>.</summary>
    public static long StageLength(int th, int tw, int chunk, int xChannels, int gradChannels)
    {
        int tileRows = Math.Min(th, chunk / tw + 2);
        long x = (2L * tileRows + 2) * (2 * tw + 2) * xChannels, g = 2L * tileRows * 2 * tw * gradChannels;
        return Math.Max(x, g);
    }

    /// <summary>
    /// b[ξ·xi + (c / nr)·nr·chunk + (p − p0)·nr + c % nr] = (Bᵀ d B)[ξ] for the pad-1 4×4 input patch d of
    /// channel c of each tile p in [p0, p1), c &lt; cs (zeros past ci; cs a multiple of nr, nr of 8); x (B, ci, h, w).
    /// </summary>
    public static void InputPanels(float* x, int ci, int h, int w, int p0, int p1, float* b, long xi, int nr, int chunk, int cs, float* stage)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2, cols = 2 * tw + 2;
        long row = (long)cols * cs;
        for (int p = p0; p < p1;)
        {
            int end = WinogradTransforms.Segment(p, p1, th, tw, out int n, out int ti0, out int tj0, out int tiL, out int tjL);
            // Staged row r, column j hold x[2·ti0 − 1 + r, j − 1]: tile (ti, tj) reads rows 2(ti − ti0).., columns 2tj.. .
            Stage(x + (long)n * ci * h * w, ci, h, w, 2 * ti0 - 1, 2 * (tiL - ti0) + 4, cols, 1, cs, stage);
            for (int t = ti0; t <= tiL; t++)
            {
                int s = t == ti0 ? tj0 : 0, e = t == tiL ? tjL : tw;
                for (int tj = s; tj < e; tj++)
                {
                    long k = (long)(n * th + t) * tw + tj - p0;
                    float* q = stage + 2 * (t - ti0) * row + 2 * tj * cs;
                    for (int c0 = 0; c0 < cs; c0 += 8, q += 8)
                    {
                        Vector256<float> t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33;
                        Row(q, cs, out t00, out t01, out t02, out t03);
                        Row(q + row, cs, out t10, out t11, out t12, out t13);
                        Row(q + 2 * row, cs, out t20, out t21, out t22, out t23);
                        Row(q + 3 * row, cs, out t30, out t31, out t32, out t33);
                        WinogradTransforms.InputTile(b + (long)(c0 / nr) * nr * chunk + k * nr + c0 % nr, xi,
                            t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33);
                    }
                }
            }
            p = end;
        }
    }

    // Bᵀ [d0 d1 d2 d3] = [d0 − d2, d1 + d2, d2 − d1, d1 − d3] for four consecutive staged pixels.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row(float* q, int cs, out Vector256<float> k0, out Vector256<float> k1, out Vector256<float> k2, out Vector256<float> k3)
    {
        var d0 = Vector256.Load(q); var d1 = Vector256.Load(q + cs);
        var d2 = Vector256.Load(q + 2 * cs); var d3 = Vector256.Load(q + 3 * cs);
        k0 = d0 - d2; k1 = d1 + d2; k2 = d2 - d1; k3 = d1 - d3;
    }

    /// <summary>
    /// a[ξ·xi + (o / mr)·APanel + (p − p0)·mr + o % mr] = (A dy Aᵀ)[ξ] for the 2×2 output-gradient tile
    /// (zero past the plane) of channel o of each tile p in [p0, p1), o &lt; blocks·mr (zeros past oc); dy (B, oc, h, w).
    /// </summary>
    public static void GradPanels(float* dy, int oc, int h, int w, int p0, int p1, float* a, long xi, int mr, int blocks, int chunk, int cs, float* stage)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2, cols = 2 * tw, panel = APanel(mr, chunk);
        long row = (long)cols * cs;
        for (int p = p0; p < p1;)
        {
            int end = WinogradTransforms.Segment(p, p1, th, tw, out int n, out int ti0, out int tj0, out int tiL, out int tjL);
            Stage(dy + (long)n * oc * h * w, oc, h, w, 2 * ti0, 2 * (tiL - ti0) + 2, cols, 0, cs, stage);
            for (int t = ti0; t <= tiL; t++)
            {
                int s = t == ti0 ? tj0 : 0, e = t == tiL ? tjL : tw;
                for (int tj = s; tj < e; tj++)
                {
                    long k = (long)(n * th + t) * tw + tj - p0;
                    float* q = stage + 2 * (t - ti0) * row + 2 * tj * cs;
                    // Tiles in order, so each store's spill past mr lanes lands where the next tile writes later.
                    float* d = a + k * mr;
                    for (int o0 = 0; o0 < blocks * mr; o0 += mr, q += mr, d += panel)
                    {
                        // A [a0 a1] = [a0, a0 + a1, a0 − a1, −a1] along each row, then down the columns.
                        var e0 = Vector256.Load(q); var o0v = Vector256.Load(q + cs);
                        var e1 = Vector256.Load(q + row); var o1 = Vector256.Load(q + row + cs);
                        WinogradTransforms.GradTile(d, xi, e0, o0v, e1, o1);
                    }
                }
            }
            p = end;
        }
    }

    /// <summary>
    /// Rows [row0, row0 + rows) of the ci planes at src (each (h, w)), channel-inner: dst[(r·cols + off + j)·cs + c] =
    /// plane c [row0 + r, j] for j &lt; w, c &lt; ci; zero for channels [ci, cs), rows outside [0, h) and columns
    /// outside [off, off + w). cs is a multiple of 8.
    /// </summary>
    private static void Stage(float* src, int ci, int h, int w, int row0, int rows, int cols, int off, int cs, float* dst)
    {
        long plane = (long)h * w;
        for (int r = 0; r < rows; r++, dst += (long)cols * cs)
        {
            int row = row0 + r;
            if ((uint)row >= (uint)h) { new Span<float>(dst, cols * cs).Clear(); continue; }
            new Span<float>(dst, off * cs).Clear();
            new Span<float>(dst + (long)(off + w) * cs, (cols - off - w) * cs).Clear();
            float* s = src + (long)row * w, d = dst + (long)off * cs;
            for (int c0 = 0; c0 < cs; c0 += 8)
            {
                if (Avx.IsSupported)
                {
                    // 8 channels by 8 pixels through one register transpose; masked loads past the row (they read 0 and
                    // never fault), zeros past the channels, and only the row's pixels stored.
                    for (int j0 = 0; j0 < w; j0 += 8)
                    {
                        int m = Math.Min(8, w - j0);
                        var mask = WinogradTransforms.FirstLanes(m);
                        float* at = s + c0 * plane + j0;
                        var r0 = Load(at, 0, c0, ci, plane, mask); var r1 = Load(at, 1, c0, ci, plane, mask);
                        var r2 = Load(at, 2, c0, ci, plane, mask); var r3 = Load(at, 3, c0, ci, plane, mask);
                        var r4 = Load(at, 4, c0, ci, plane, mask); var r5 = Load(at, 5, c0, ci, plane, mask);
                        var r6 = Load(at, 6, c0, ci, plane, mask); var r7 = Load(at, 7, c0, ci, plane, mask);
                        GemmPack.Transpose(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
                        float* o = d + (long)j0 * cs + c0;
                        Avx.Store(o, r0);
                        if (m > 1) Avx.Store(o + cs, r1);
                        if (m > 2) Avx.Store(o + 2 * cs, r2);
                        if (m > 3) Avx.Store(o + 3 * cs, r3);
                        if (m > 4) Avx.Store(o + 4 * cs, r4);
                        if (m > 5) Avx.Store(o + 5 * cs, r5);
                        if (m > 6) Avx.Store(o + 6 * cs, r6);
                        if (m > 7) Avx.Store(o + 7 * cs, r7);
                    }
                }
                else
                    for (int j = 0; j < w; j++)
                    for (int c = c0; c < c0 + 8; c++)
                        d[(long)j * cs + c] = c < ci ? s[c * plane + j] : 0f;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load(float* at, int i, int c0, int ci, long plane, Vector256<float> mask) =>
        c0 + i >= ci ? Vector256<float>.Zero : Avx.MaskLoad(at + i * plane, mask);
}

// SGEMM packing: copies a KC-deep slice of op(A) into MR-row micro-panels and of op(B) into NR-column
// micro-panels, zero-padded at the edges, so the micro-kernel reads both with unit stride.
// Layouts: A panel r0 holds [p * MR + r] = op(A)[r0 + r, p]; B panel j0 holds [p * NR + j] = op(B)[p, j0 + j].
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class GemmPack
{
    /// <summary>Packs op(A)[ic..ic+mc, pc..pc+kc) into dst as ceil(mc/mr) panels of (kc, mr); op(A) has m rows.</summary>
    public static void PackA(bool transA, float* a, int lda, int m, int ic, int mc, int pc, int kc, float* dst, int mr, bool avx)
    {
        int start = 0;
        if (transA && avx && mr <= 8)
        {
            // Whole panels whose 8-float loads stay inside A's rows (ic + ir + 8 <= m, and m <= lda).
            int fit = m - 8 - ic, panels = fit < 0 ? 0 : Math.Min(mc / mr, fit / mr + 1);
            PackATransposedRows(a + (long)pc * lda + ic, lda, kc, panels, dst, mr);
            start = panels * mr;
            dst += (long)start * kc;
        }
        for (int ir = start; ir < mc; ir += mr, dst += (long)mr * kc)
        {
            int rows = Math.Min(mr, mc - ir);
            if (transA)
            {
                // op(A)[i, p] = a[p, i]: each k step is a contiguous run of rows.
                float* src = a + (long)pc * lda + ic + ir;
                for (int p = 0; p < kc; p++, src += lda)
                {
                    float* d = dst + p * mr;
                    int r = 0;
                    for (; r < rows; r++) d[r] = src[r];
                    for (; r < mr; r++) d[r] = 0f;
                }
            }
            else
            {
                // op(A)[i, p] = a[i, p]: a whole panel goes 8 k steps at a time through an 8x8 register
                // transpose (rows past mr repeat the last one); the rest reads each row, writing with stride mr.
                int p0 = 0;
                if (avx && rows == mr && mr <= 8)
                    for (; p0 + 8 <= kc; p0 += 8)
                        TransposeRowsA(a + (long)(ic + ir) * lda + pc + p0, lda, mr, dst + p0 * mr, last: p0 + 8 == kc);
                for (int r = 0; r < rows; r++)
                {
                    float* src = a + (long)(ic + ir + r) * lda + pc;
                    float* d = dst + r;
                    for (int p = p0; p < kc; p++) d[p * mr] = src[p];
                }
                for (int r = rows; r < mr; r++)
                    for (int p = 0; p < kc; p++) dst[p * mr + r] = 0f;
            }
        }
    }

    // Panels [0, panels) of A transposed: one k step (a contiguous run of A's row) at a time across all panels,
    // so A is read row by row, in order, rather than a few floats from each of kc rows per panel (4 KB apart
    // at m = 1024: a new page and the same L1 set for every load). Each panel's step moves 8 floats; the
    // 8 - mr extra lanes land where that panel's next step writes later, so the last step goes by element.
    private static void PackATransposedRows(float* a, int lda, int kc, int panels, float* dst, int mr)
    {
        if (panels <= 0) return;
        long panelSize = (long)mr * kc;
        for (int p = 0; p < kc - 1; p++)
        {
            float* src = a + (long)p * lda, d = dst + p * mr;
            for (int t = 0; t < panels; t++, src += mr, d += panelSize) Avx.Store(d, Avx.LoadVector256(src));
        }
        {
            int p = kc - 1;
            float* src = a + (long)p * lda, d = dst + p * mr;
            for (int t = 0; t < panels; t++, src += mr, d += panelSize)
                for (int r = 0; r < mr; r++) d[r] = src[r];
        }
    }

    /// <summary>Packs op(B)[pc..pc+kc, jc..jc+nc) into dst as ceil(nc/nr) panels of (kc, nr).</summary>
    public static void PackB(bool transB, float* b, int ldb, int pc, int kc, int jc, int nc, float* dst, int nr, bool avx)
    {
        int start = 0;
        if (!transB && avx && nr % 8 == 0)
        {
            // op(B)[p, j] = b[p, j]: whole panels one row of B at a time, in order (see PackATransposedRows),
            // as 256-bit moves (a Span copy of 16 floats is a Memmove call).
            int panels = nc / nr;
            long panelSize = (long)nr * kc;
            for (int p = 0; p < kc; p++)
            {
                float* src = b + (long)(pc + p) * ldb + jc, d = dst + p * nr;
                for (int t = 0; t < panels; t++, src += nr, d += panelSize)
                    for (int j = 0; j < nr; j += 8) Avx.Store(d + j, Avx.LoadVector256(src + j));
            }
            start = panels * nr;
            dst += (long)start * kc;
        }
        for (int jr = start; jr < nc; jr += nr, dst += (long)nr * kc)
        {
            int cols = Math.Min(nr, nc - jr);
            if (!transB)
            {
                // op(B)[p, j] = b[p, j]: each k step copies one contiguous run of columns.
                float* src = b + (long)pc * ldb + jc + jr;
                for (int p = 0; p < kc; p++, src += ldb)
                {
                    float* d = dst + p * nr;
                    if (cols == nr) new ReadOnlySpan<float>(src, nr).CopyTo(new Span<float>(d, nr));
                    else
                    {
                        new ReadOnlySpan<float>(src, cols).CopyTo(new Span<float>(d, cols));
                        new Span<float>(d + cols, nr - cols).Clear();
                    }
                }
            }
            else
            {
                // op(B)[p, j] = b[j, p]: 8x8 register transposes where they fit, then scalar with stride nr.
                float* panel = b + (long)(jc + jr) * ldb + pc;
                int p0 = 0;
                if (avx && cols == nr && nr % 8 == 0)
                {
                    for (; p0 + 8 <= kc; p0 += 8)
                        for (int j = 0; j < nr; j += 8)
                            Transpose8x8(panel + (long)j * ldb + p0, ldb, dst + p0 * nr + j, nr);
                }
                for (int j = 0; j < cols; j++)
                {
                    float* src = panel + (long)j * ldb;
                    float* d = dst + j;
                    for (int p = p0; p < kc; p++) d[p * nr] = src[p];
                }
                for (int j = cols; j < nr; j++)
                    for (int p = 0; p < kc; p++) dst[p * nr + j] = 0f;
            }
        }
    }

    // dst[q * mr + r] = src[r * lds + q] for r < mr ≤ 8, q < 8. Each transposed column is stored whole and
    // its lanes past mr are overwritten by the next one; the last column of a panel (last) goes lane by
    // lane, so nothing is written past the panel.
    private static void TransposeRowsA(float* src, int lds, int mr, float* dst, bool last)
    {
        long l = lds;
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + Math.Min(1, mr - 1) * l);
        var r2 = Avx.LoadVector256(src + Math.Min(2, mr - 1) * l); var r3 = Avx.LoadVector256(src + Math.Min(3, mr - 1) * l);
        var r4 = Avx.LoadVector256(src + Math.Min(4, mr - 1) * l); var r5 = Avx.LoadVector256(src + Math.Min(5, mr - 1) * l);
        var r6 = Avx.LoadVector256(src + Math.Min(6, mr - 1) * l); var r7 = Avx.LoadVector256(src + Math.Min(7, mr - 1) * l);
        Transpose(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
        Avx.Store(dst, r0); Avx.Store(dst + mr, r1); Avx.Store(dst + 2 * mr, r2); Avx.Store(dst + 3 * mr, r3);
        Avx.Store(dst + 4 * mr, r4); Avx.Store(dst + 5 * mr, r5); Avx.Store(dst + 6 * mr, r6);
        if (!last || mr == 8) Avx.Store(dst + 7 * mr, r7);
        else for (int r = 0; r < mr; r++) dst[7 * mr + r] = r7.GetElement(r);
    }

    // In-register 8x8 transpose: unpack pairs, shuffle quads, swap 128-bit halves.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static void Transpose(ref Vector256<float> r0, ref Vector256<float> r1, ref Vector256<float> r2, ref Vector256<float> r3,
        ref Vector256<float> r4, ref Vector256<float> r5, ref Vector256<float> r6, ref Vector256<float> r7)
    {
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var s0 = Avx.Shuffle(t0, t2, 0x44); var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44); var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44); var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44); var s7 = Avx.Shuffle(t5, t7, 0xEE);
        r0 = Avx.Permute2x128(s0, s4, 0x20); r1 = Avx.Permute2x128(s1, s5, 0x20);
        r2 = Avx.Permute2x128(s2, s6, 0x20); r3 = Avx.Permute2x128(s3, s7, 0x20);
        r4 = Avx.Permute2x128(s0, s4, 0x31); r5 = Avx.Permute2x128(s1, s5, 0x31);
        r6 = Avx.Permute2x128(s2, s6, 0x31); r7 = Avx.Permute2x128(s3, s7, 0x31);
    }

    // dst[q * ldd + r] = src[r * lds + q] for an 8x8 block, through the in-register Transpose.
    internal static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds); var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds); var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds); var r7 = Avx.LoadVector256(src + 7 * lds);
        Transpose(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
        Avx.Store(dst, r0); Avx.Store(dst + ldd, r1); Avx.Store(dst + 2 * ldd, r2); Avx.Store(dst + 3 * ldd, r3);
        Avx.Store(dst + 4 * ldd, r4); Avx.Store(dst + 5 * ldd, r5); Avx.Store(dst + 6 * ldd, r6); Avx.Store(dst + 7 * ldd, r7);
    }
}

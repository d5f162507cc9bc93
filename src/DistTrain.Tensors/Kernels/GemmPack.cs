// SGEMM packing: copies a KC-deep slice of op(A) into MR-row micro-panels and of op(B) into NR-column
// micro-panels, zero-padded at the edges, so the micro-kernel reads both with unit stride.
// Layouts: A panel r0 holds [p * MR + r] = op(A)[r0 + r, p]; B panel j0 holds [p * NR + j] = op(B)[p, j0 + j].
namespace DistTrain.Tensors.Kernels;

internal static unsafe class GemmPack
{
    /// <summary>Packs op(A)[ic..ic+mc, pc..pc+kc) into dst as ceil(mc/mr) panels of (kc, mr).</summary>
    public static void PackA(bool transA, float* a, int lda, int ic, int mc, int pc, int kc, float* dst, int mr)
    {
        for (int ir = 0; ir < mc; ir += mr, dst += (long)mr * kc)
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
                // op(A)[i, p] = a[i, p]: read each row contiguously, write with stride mr.
                for (int r = 0; r < rows; r++)
                {
                    float* src = a + (long)(ic + ir + r) * lda + pc;
                    float* d = dst + r;
                    for (int p = 0; p < kc; p++) d[p * mr] = src[p];
                }
                for (int r = rows; r < mr; r++)
                    for (int p = 0; p < kc; p++) dst[p * mr + r] = 0f;
            }
        }
    }

    /// <summary>Packs op(B)[pc..pc+kc, jc..jc+nc) into dst as ceil(nc/nr) panels of (kc, nr).</summary>
    public static void PackB(bool transB, float* b, int ldb, int pc, int kc, int jc, int nc, float* dst, int nr)
    {
        for (int jr = 0; jr < nc; jr += nr, dst += (long)nr * kc)
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
                // op(B)[p, j] = b[j, p]: read each row of b contiguously, write with stride nr.
                for (int j = 0; j < cols; j++)
                {
                    float* src = b + (long)(jc + jr + j) * ldb + pc;
                    float* d = dst + j;
                    for (int p = 0; p < kc; p++) d[p * nr] = src[p];
                }
                for (int j = cols; j < nr; j++)
                    for (int p = 0; p < kc; p++) dst[p * nr + j] = 0f;
            }
        }
    }
}

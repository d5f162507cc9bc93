// Naive SGEMM: the test oracle. One FMA chain per output over k in order, as the fast kernel does,
// so the two agree bit for bit.
namespace DistTrain.Tensors.Kernels;

public static class GemmReference
{
    public static void Sgemm(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate = false)
    {
        Gemm.Validate(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            float acc = accumulate ? c[i * ldc + j] : 0f;
            for (int p = 0; p < k; p++)
            {
                float av = transA ? a[p * lda + i] : a[i * lda + p];
                float bv = transB ? b[j * ldb + p] : b[p * ldb + j];
                acc = MathF.FusedMultiplyAdd(av, bv, acc);
            }
            c[i * ldc + j] = acc;
        }
    }
}

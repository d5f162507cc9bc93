// Placeholder fast path: replaced by the packed, register-blocked kernel (issue 2).
namespace DistTrain.Tensors.Kernels;

public static partial class Gemm
{
    private static void SgemmFast(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate, int threads)
        => GemmReference.Sgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

// SGEMM entry point: C(m,n) = op(A)(m,k) · op(B)(k,n), or C += that with accumulate.
// op(X) is X or Xᵀ. Row-major, leading dimensions in elements.
// Determinism contract: every C element is one FMA chain over k = 0..K-1 in order, started from 0
// (or from C when accumulating), computed by one thread: bits do not depend on threads or SIMD path.
namespace DistTrain.Tensors.Kernels;

public static partial class Gemm
{
    /// <summary>
    /// C = op(A)·op(B) (+ C when <paramref name="accumulate"/>). A is (m,k) row-major, or (k,m) when
    /// <paramref name="transA"/>; B is (k,n), or (n,k) when <paramref name="transB"/>.
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate = false, int threads = 0)
    {
        Validate(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        SgemmFast(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, threads <= 0 ? Compute.Threads : threads);
    }

    /// <summary>Tensor form: c (m,n) = op(a)·op(b) for rank-2 tensors.</summary>
    public static void MatMul(Tensor a, bool transA, Tensor b, bool transB, Tensor c, bool accumulate = false)
    {
        if (a.Rank != 2 || b.Rank != 2 || c.Rank != 2)
            throw new ArgumentException($"MatMul needs rank-2 tensors: a {a}, b {b}, c {c}.");
        int m = transA ? a.Dim(1) : a.Dim(0), ka = transA ? a.Dim(0) : a.Dim(1);
        int kb = transB ? b.Dim(1) : b.Dim(0), n = transB ? b.Dim(0) : b.Dim(1);
        if (ka != kb) throw new ArgumentException($"MatMul inner dimensions differ: a {a} (transA={transA}), b {b} (transB={transB}).", nameof(b));
        if (c.Dim(0) != m || c.Dim(1) != n) throw new ArgumentException($"MatMul output c {c} should be ({m},{n}) for a {a}, b {b}.", nameof(c));
        Sgemm(transA, transB, m, n, ka, a.Span, a.Dim(1), b.Span, b.Dim(1), c.Span, n, accumulate);
    }

    internal static void Validate(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentException($"GEMM dimensions must be non-negative: m={m}, n={n}, k={k}.", m < 0 ? "m" : n < 0 ? "n" : "k");
        int aRows = transA ? k : m, aCols = transA ? m : k;
        int bRows = transB ? n : k, bCols = transB ? k : n;
        Need("a", a.Length, aRows, aCols, lda);
        Need("b", b.Length, bRows, bCols, ldb);
        Need("c", c.Length, m, n, ldc);
        if (m > 0 && n > 0 && (Overlaps(a, c) || Overlaps(b, c)))
            throw new ArgumentException("GEMM output c overlaps input a or b; use a separate output buffer.", "c");
    }

    private static void Need(string name, int length, int rows, int cols, int ld)
    {
        if (rows == 0 || cols == 0) return;
        if (ld < cols)
            throw new ArgumentException($"GEMM operand {name} is ({rows},{cols}) but its leading dimension {ld} is smaller than {cols}.", name);
        long need = (long)(rows - 1) * ld + cols;
        if (length < need)
            throw new ArgumentException($"GEMM operand {name} is ({rows},{cols}) with leading dimension {ld}: needs {need} floats but has {length}.", name);
    }

    private static bool Overlaps(ReadOnlySpan<float> x, Span<float> y) => x.Overlaps(y);
}

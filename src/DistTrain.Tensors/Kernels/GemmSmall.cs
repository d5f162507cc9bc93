// SGEMM for small operands (attention heads: 17×17×16), where the fast driver's packing and blocking cost
// more than the arithmetic. No packing: B's rows are read in place (a transposed B is first copied into a
// per-thread scratch as (k,n)), and four rows of C are computed at once so each B vector load feeds four FMAs.
// Same contract as Gemm.Sgemm: every C element is one FMA chain over k in order from 0 (or C), on one thread,
// so the bits equal GemmReference on every SIMD path.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels;

public static partial class Gemm
{
    [ThreadStatic] private static float[]? _smallBt;

    /// <summary>As <see cref="Sgemm"/>, single-threaded and without packing: for operands of a few thousand
    /// elements, called many times per step (per attention head). Any size is correct; large ones are slow.</summary>
    public static void SgemmSmall(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate = false)
    {
        Validate(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        if (m == 0 || n == 0) return;
        if (transB)
        {
            // (n,k) -> (k,n) so that a row of B over j is contiguous; the values, hence the bits, are unchanged.
            var bt = _smallBt is { } buf && buf.Length >= k * n ? buf : _smallBt = new float[Math.Max(k * n, 1024)];
            for (int j = 0; j < n; j++)
                for (int p = 0; p < k; p++) bt[p * n + j] = b[j * ldb + p];
            Run(transA, m, n, k, a, lda, bt, n, c, ldc, accumulate);
        }
        else Run(transA, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    }

    private static void Run(bool transA, int m, int n, int k, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate)
    {
        // A(i,p) sits at i·sa + p·sp.
        int sa = transA ? 1 : lda, sp = transA ? lda : 1;
        ref float ar = ref MemoryMarshal.GetReference(a);
        ref float br = ref MemoryMarshal.GetReference(b);
        ref float cr = ref MemoryMarshal.GetReference(c);
        int j = 0;
        var path = Simd.Path;
        if (path == SimdPath.Avx512)
            for (; j + 16 <= n; j += 16)
            {
                int i = 0;
                for (; i + 4 <= m; i += 4)
                {
                    ref float c0 = ref Unsafe.Add(ref cr, i * ldc + j);
                    var z = Vector512<float>.Zero;
                    var acc0 = accumulate ? Vector512.LoadUnsafe(ref c0) : z;
                    var acc1 = accumulate ? Vector512.LoadUnsafe(ref c0, (nuint)ldc) : z;
                    var acc2 = accumulate ? Vector512.LoadUnsafe(ref c0, (nuint)(2 * ldc)) : z;
                    var acc3 = accumulate ? Vector512.LoadUnsafe(ref c0, (nuint)(3 * ldc)) : z;
                    for (int p = 0; p < k; p++)
                    {
                        var bv = Vector512.LoadUnsafe(ref br, (nuint)(p * ldb + j));
                        int ai = i * sa + p * sp;
                        acc0 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref ar, ai)), bv, acc0);
                        acc1 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref ar, ai + sa)), bv, acc1);
                        acc2 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref ar, ai + 2 * sa)), bv, acc2);
                        acc3 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref ar, ai + 3 * sa)), bv, acc3);
                    }
                    acc0.StoreUnsafe(ref c0); acc1.StoreUnsafe(ref c0, (nuint)ldc);
                    acc2.StoreUnsafe(ref c0, (nuint)(2 * ldc)); acc3.StoreUnsafe(ref c0, (nuint)(3 * ldc));
                }
                for (; i < m; i++)
                {
                    ref float c0 = ref Unsafe.Add(ref cr, i * ldc + j);
                    var acc = accumulate ? Vector512.LoadUnsafe(ref c0) : Vector512<float>.Zero;
                    for (int p = 0; p < k; p++)
                        acc = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref ar, i * sa + p * sp)), Vector512.LoadUnsafe(ref br, (nuint)(p * ldb + j)), acc);
                    acc.StoreUnsafe(ref c0);
                }
            }
        if (path >= SimdPath.Avx2)
            for (; j + 8 <= n; j += 8)
            {
                int i = 0;
                for (; i + 4 <= m; i += 4)
                {
                    ref float c0 = ref Unsafe.Add(ref cr, i * ldc + j);
                    var z = Vector256<float>.Zero;
                    var acc0 = accumulate ? Vector256.LoadUnsafe(ref c0) : z;
                    var acc1 = accumulate ? Vector256.LoadUnsafe(ref c0, (nuint)ldc) : z;
                    var acc2 = accumulate ? Vector256.LoadUnsafe(ref c0, (nuint)(2 * ldc)) : z;
                    var acc3 = accumulate ? Vector256.LoadUnsafe(ref c0, (nuint)(3 * ldc)) : z;
                    for (int p = 0; p < k; p++)
                    {
                        var bv = Vector256.LoadUnsafe(ref br, (nuint)(p * ldb + j));
                        int ai = i * sa + p * sp;
                        acc0 = Vector256.FusedMultiplyAdd(Vector256.Create(Unsafe.Add(ref ar, ai)), bv, acc0);
                        acc1 = Vector256.FusedMultiplyAdd(Vector256.Create(Unsafe.Add(ref ar, ai + sa)), bv, acc1);
                        acc2 = Vector256.FusedMultiplyAdd(Vector256.Create(Unsafe.Add(ref ar, ai + 2 * sa)), bv, acc2);
                        acc3 = Vector256.FusedMultiplyAdd(Vector256.Create(Unsafe.Add(ref ar, ai + 3 * sa)), bv, acc3);
                    }
                    acc0.StoreUnsafe(ref c0); acc1.StoreUnsafe(ref c0, (nuint)ldc);
                    acc2.StoreUnsafe(ref c0, (nuint)(2 * ldc)); acc3.StoreUnsafe(ref c0, (nuint)(3 * ldc));
                }
                for (; i < m; i++)
                {
                    ref float c0 = ref Unsafe.Add(ref cr, i * ldc + j);
                    var acc = accumulate ? Vector256.LoadUnsafe(ref c0) : Vector256<float>.Zero;
                    for (int p = 0; p < k; p++)
                        acc = Vector256.FusedMultiplyAdd(Vector256.Create(Unsafe.Add(ref ar, i * sa + p * sp)), Vector256.LoadUnsafe(ref br, (nuint)(p * ldb + j)), acc);
                    acc.StoreUnsafe(ref c0);
                }
            }
        // Columns left over (and the portable path): the same FMA chain in scalar form.
        for (; j < n; j++)
            for (int i = 0; i < m; i++)
            {
                ref float cij = ref Unsafe.Add(ref cr, i * ldc + j);
                float acc = accumulate ? cij : 0f;
                for (int p = 0; p < k; p++)
                    acc = MathF.FusedMultiplyAdd(Unsafe.Add(ref ar, i * sa + p * sp), Unsafe.Add(ref br, p * ldb + j), acc);
                cij = acc;
            }
    }
}

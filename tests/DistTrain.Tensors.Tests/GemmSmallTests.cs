// Gemm.SgemmSmall against GemmReference: bit-identical (the determinism contract) for sizes around its
// 4-row and 8/16-column steps, every transpose, accumulate, padded leading dimensions and every SIMD path (a row
// each; one this CPU lacks is skipped with the reason); no allocation once its transpose scratch is grown.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Tensors.Tests;

[Collection(nameof(GemmTests))]  // forces Simd.Path
public sealed class GemmSmallTests
{
    [SkippableTheory, MemberData(nameof(SimdRows.Paths), MemberType = typeof(SimdRows))]
    public void BitIdenticalToReference(SimdPath path)
    {
        using var _ = SimdRows.Force(path);
        int[] sizes = [1, 3, 4, 5, 8, 9, 16, 17, 33];
        int seed = 0;
        foreach (var m in sizes)
        foreach (var n in sizes)
        foreach (var k in new[] { 1, 7, 16, 17 })
        foreach (var (ta, tb) in new[] { (false, false), (false, true), (true, false), (true, true) })
        {
            bool acc = seed % 2 == 1;
            int pad = seed % 3;
            var rng = new Random(seed++);
            int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
            var a = Fill(rng, (ta ? k : m) * lda); var b = Fill(rng, (tb ? n : k) * ldb); var c0 = Fill(rng, m * ldc);
            var expected = (float[])c0.Clone(); var actual = (float[])c0.Clone();
            GemmReference.Sgemm(ta, tb, m, n, k, a, lda, b, ldb, expected, ldc, acc);
            Gemm.SgemmSmall(ta, tb, m, n, k, a, lda, b, ldb, actual, ldc, acc);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{path} m={m} n={n} k={k} transA={ta} transB={tb} acc={acc} pad={pad}");
        }
    }

    [Fact]
    public void AllocatesNothingOnceWarm()
    {
        var a = new float[17 * 16]; var b = new float[17 * 16]; var c = new float[17 * 17];
        Gemm.SgemmSmall(false, true, 17, 17, 16, a, 16, b, 16, c, 17);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) Gemm.SgemmSmall(false, true, 17, 17, 16, a, 16, b, 16, c, 17);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private static float[] Fill(Random rng, int count)
    {
        var x = new float[count];
        for (int i = 0; i < count; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}

// What the SGEMM A/B tools share: the signature of Gemm.Sgemm they bind to in a build loaded at run time, and a
// shape argument ("nn:256x256x784", m×n×k, "+acc" to accumulate into C) with its seeded random operands.
// gemm-ab (one build per process) and gemm-mix (several builds in one process) compile this same file.
internal delegate void SgemmFn(bool transA, bool transB, int m, int n, int k, ReadOnlySpan<float> a, int lda,
    ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, bool accumulate, int threads);

internal static class GemmCase
{
    public static (bool TransA, bool TransB, bool Accumulate, int M, int N, int K, float[] A, float[] B, float[] C, int Lda, int Ldb)
        Parse(string shape)
    {
        var parts = shape.Split(':');
        bool ta = parts[0][0] == 't', tb = parts[0][1] == 't', acc = parts[1].EndsWith("+acc");
        var d = parts[1].Replace("+acc", "").Split('x').Select(int.Parse).ToArray();
        int m = d[0], n = d[1], k = d[2];
        var rng = new Random(1);
        var a = new float[m * k]; var b = new float[k * n]; var c = new float[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble() - 0.5f;
        for (int i = 0; i < b.Length; i++) b[i] = (float)rng.NextDouble() - 0.5f;
        return (ta, tb, acc, m, n, k, a, b, c, ta ? m : k, tb ? k : n);
    }
}

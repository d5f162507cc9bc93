// Fast SGEMM against the naive GemmReference: bit-identical (tolerance 0, the determinism contract) on
// sizes 0..17 and around the tile/block edges, all transposes, accumulate, padded leading dimensions, every SIMD
// path (a row each; one this CPU lacks is skipped with the reason) and 1/2/3 threads; plus zero allocation and errors.
// Runs alone (it forces Simd.Path, a process-wide switch).
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Tensors.Tests;

[CollectionDefinition(nameof(GemmTests), DisableParallelization = true)]
public sealed class GemmTestsCollection;

[Collection(nameof(GemmTests))]
public sealed class GemmTests
{
    private static readonly (bool A, bool B)[] Transposes = [(false, false), (false, true), (true, false), (true, true)];

    private sealed class Case
    {
        public readonly bool TransA, TransB, Accumulate;
        public readonly int M, N, K, Lda, Ldb, Ldc;
        public readonly float[] A, B, C0;

        public Case(int seed, bool transA, bool transB, int m, int n, int k, bool accumulate = false, int pad = 0)
        {
            (TransA, TransB, M, N, K, Accumulate) = (transA, transB, m, n, k, accumulate);
            var rng = new Random(seed);
            Lda = (transA ? m : k) + pad; Ldb = (transB ? k : n) + pad; Ldc = n + pad;
            A = Fill(rng, (transA ? k : m) * Lda);
            B = Fill(rng, (transB ? n : k) * Ldb);
            C0 = Fill(rng, m * Ldc);
        }

        private static float[] Fill(Random rng, int count)
        {
            var x = new float[count];
            for (int i = 0; i < count; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            return x;
        }

        public float[] Fast(int threads)
        {
            var c = (float[])C0.Clone();
            Gemm.Sgemm(TransA, TransB, M, N, K, A, Lda, B, Ldb, c, Ldc, Accumulate, threads);
            return c;
        }

        public float[] Reference()
        {
            var c = (float[])C0.Clone();
            GemmReference.Sgemm(TransA, TransB, M, N, K, A, Lda, B, Ldb, c, Ldc, Accumulate);
            return c;
        }

        public void AssertSame(float[] expected, float[] actual, string what)
        {
            for (int i = 0; i < expected.Length; i++)
                if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                    Assert.Fail($"{what}: transA={TransA} transB={TransB} m={M} n={N} k={K} acc={Accumulate} ld=({Lda},{Ldb},{Ldc}) " +
                                $"differs at C[{i / Ldc},{i % Ldc}]: expected {expected[i]:R}, got {actual[i]:R}.");
        }
    }

    private static void Check(SimdPath path, Case t, params int[] threads)
    {
        using var forced = Simd.Force(path);
        var expected = t.Reference();
        foreach (int th in threads) t.AssertSame(expected, t.Fast(th), $"{path} threads={th}");
    }

    [SkippableTheory, MemberData(nameof(SimdRows.Paths), MemberType = typeof(SimdRows))]
    public void SmallShapesAllTransposesMatchReferenceBitForBit(SimdPath path)
    {
        SimdRows.Require(path);
        int[] ks = [0, 1, 2, 5, 16, 17];
        int seed = 0;
        for (int m = 0; m <= 17; m++)
            for (int n = 0; n <= 17; n++)
                foreach (int k in ks)
                    foreach (var (ta, tb) in Transposes)
                        Check(path, new Case(seed++, ta, tb, m, n, k, accumulate: seed % 3 == 0, pad: seed % 5 == 0 ? 3 : 0), 1);
    }

    [SkippableTheory, MemberData(nameof(SimdRows.Paths), MemberType = typeof(SimdRows))]
    public void EdgeSizesAroundTilesAndBlocksMatchReference(SimdPath path)
    {
        SimdRows.Require(path);
        // 31..321 straddle every tile width (6..32) and the M/K blocks (MC=192, KCMax=320).
        int[] sizes = [31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 319, 320, 321];
        int seed = 1000;
        foreach (int s in sizes)
        {
            var (ta, tb) = Transposes[seed % 4];
            Check(path, new Case(seed++, ta, tb, s, 7, 33), 1, 2);
            Check(path, new Case(seed++, tb, ta, 5, s, 17, accumulate: true), 1, 2);
            Check(path, new Case(seed++, ta, !tb, 9, 13, s, pad: 2), 1);
        }
        foreach (var (ta, tb) in Transposes)
        {
            Check(path, new Case(seed++, ta, tb, 257, 129, 257), 1, 3);
            Check(path, new Case(seed++, ta, tb, 65, 255, 300, accumulate: true, pad: 5), 1, 2);
        }
    }

    [Fact]
    public void WideOutputCrossesTheColumnBlock()
    {
        // n > NC (2048) runs two column blocks; k > KCMax (320) continues the chains across K blocks.
        foreach (var (ta, tb) in Transposes)
            Check(Simd.Best, new Case(7, ta, tb, 3, 2100, 340, accumulate: ta), 1, 2);
    }

    [SkippableTheory, MemberData(nameof(SimdRows.Paths), MemberType = typeof(SimdRows))]
    public void DeepReductionsSplitIntoEqualBlocksMatchReference(SimdPath path)
    {
        SimdRows.Require(path);
        // K cut into 2-4 blocks of equal depth (321 = 168 + 153, 784 = 264 + 264 + 256, 1000 = 256 x 3 + 232),
        // each continuing the chains the previous one stored, with the row tiles shared by 1 or 2 threads.
        int seed = 3000;
        foreach (int k in (int[])[321, 641, 784, 1000])
            foreach (var (ta, tb) in Transposes)
                Check(path, new Case(seed++, ta, tb, 37, 261, k, accumulate: seed % 2 == 0, pad: seed % 3), 1, 2);
    }

    [SkippableTheory, MemberData(nameof(SimdRows.Paths), MemberType = typeof(SimdRows))]
    public void ThreadCountNeverChangesTheBits(SimdPath path)
    {
        SimdRows.Require(path);
        // Row split (tall) and column split (wide), each big enough for 3 parts.
        Check(path, new Case(11, false, false, 129, 257, 65), 1, 2, 3);
        Check(path, new Case(12, true, true, 40, 300, 70, accumulate: true), 1, 2, 3);
        Check(path, new Case(13, false, true, 64, 784, 256), 1, 2, 3);
        Check(path, new Case(14, true, false, 784, 256, 64), 1, 2, 3);
    }

    [Fact]
    public void TeamsAcrossManyBlocksKeepTheBits()
    {
        // Several K blocks and two column blocks: the team's shared, double-buffered B panels and the
        // barrier between K blocks; rows claimed by tiles (tall) or columns by panels (few rows).
        foreach (var (ta, tb) in Transposes)
        {
            Check(Simd.Best, new Case(51, ta, tb, 97, 2100, 530, accumulate: true), 1, 2, 3);
            Check(Simd.Best, new Case(52, ta, tb, 11, 2300, 300), 1, 2, 3);
        }
        // 256 rows and more: each member packs its own B panels; K blocks still in order (3 of them here).
        foreach (var (ta, tb) in Transposes)
            Check(Simd.Best, new Case(54, ta, tb, 300, 200, 700, accumulate: tb), 1, 2, 3);
        // A short A (at most MC rows) beside a wider packed B: members claim column panels, pack those and A themselves;
        // several K blocks, one and two column blocks, an edge panel, and 193 rows (one past MC: rows again).
        foreach (var (ta, tb) in Transposes)
        {
            Check(Simd.Best, new Case(55, ta, tb, 64, 790, 700, accumulate: true), 1, 2, 3);
            Check(Simd.Best, new Case(56, ta, tb, 192, 2100, 330), 1, 2, 3);
            Check(Simd.Best, new Case(57, ta, tb, 193, 600, 650, accumulate: true), 1, 2);
        }
        // A column-block edge that is not a whole panel (B in place for the rest) with several K blocks.
        Check(Simd.Best, new Case(53, false, false, 100, 2053, 600, pad: 3), 1, 2);
    }

    [Fact]
    public void TeamCallsKeepTheBitsWhileTheCoresAreBusy()
    {
        // Busy threads on every core make the pool's members start late or never (then the caller calls them off and
        // claims their packing and tiles): every call must still give the reference bits. Several K blocks (double-
        // buffered B panels) and a row split; 2 and 3 threads, 60 calls each.
        var cases = new[] { new Case(61, false, false, 70, 300, 700, accumulate: true), new Case(62, true, true, 150, 96, 650),
            new Case(63, false, true, 260, 90, 400), // members pack their own B (a late one may skip it)
            new Case(64, false, true, 64, 790, 700, accumulate: true) }; // members pack the B panels they claim, and A
        var expected = cases.Select(c => c.Reference()).ToArray();
        using var stop = new CancellationTokenSource();
        var busy = Enumerable.Range(0, Environment.ProcessorCount).Select(_ => Task.Run(() =>
        {
            double x = 1;
            while (!stop.IsCancellationRequested) for (int i = 0; i < 100_000; i++) x = x * 1.0000001 + 1e-9;
            return x;
        })).ToArray();
        try
        {
            for (int rep = 0; rep < 60; rep++)
                for (int i = 0; i < cases.Length; i++)
                    cases[i].AssertSame(expected[i], cases[i].Fast(2 + rep % 2), $"rep {rep} case {i}");
        }
        finally { stop.Cancel(); Task.WaitAll(busy); }
    }

    [SkippableTheory, MemberData(nameof(SimdRows.Paths), MemberType = typeof(SimdRows))]
    public void PackedPanelsAcrossRowBlocksMatchReference(SimdPath path)
    {
        SimdRows.Require(path);
        // A transposed and packed (more than 256 columns) over several MC row blocks, its last panels too
        // close to the end of A's rows for 8-float loads; B packed row by row with an edge panel.
        foreach (int m in (int[])[197, 400, 403])
        {
            Check(path, new Case(4000 + m, true, false, m, 300, 41, accumulate: true, pad: m % 2), 1, 2);
            Check(path, new Case(5000 + m, false, false, m, 269, 37, pad: 1), 1, 2);
        }
    }

    [Fact]
    public void NextTileIsTheTileTheWalkComputesNextAndItsOwn()
    {
        // Compute walks a row block panel by panel, each top to bottom; the C prefetch must name exactly the tile
        // that comes next (edge rows and columns included) and nothing outside the member's columns [j0, j1).
        foreach (var (mr, nr) in (ReadOnlySpan<(int, int)>)[(6, 16), (8, 32), (6, 8)])
            foreach (int mc in (int[])[1, 5, 6, 7, 12, 13, 192])
                foreach (int nc in (int[])[1, 15, 16, 17, 48, 50])
                    for (int j0 = 0; j0 < nc; j0 += nr)
                        for (int j1 = j0 + nr; j1 < nc + nr; j1 += nr)
                        {
                            int end = Math.Min(j1, nc);
                            var walk = new List<(int Ir, int Jr, int Rows, int Cols)>();
                            for (int jr = j0; jr < end; jr += nr)
                                for (int ir = 0; ir < mc; ir += mr)
                                    walk.Add((ir, jr, Math.Min(mr, mc - ir), Math.Min(nr, nc - jr)));
                            for (int i = 0; i < walk.Count; i++)
                            {
                                bool has = GemmJob.NextTile(walk[i].Ir, walk[i].Jr, mr, nr, mc, nc, end, out int ir, out int jr, out int rows, out int cols);
                                string at = $"mr={mr} nr={nr} mc={mc} nc={nc} columns [{j0},{end}) after tile {walk[i]}";
                                Assert.True(has == (i + 1 < walk.Count), $"{at}: next tile {(has ? "named past the end" : "missing")}");
                                if (has) Assert.True(walk[i + 1] == (ir, jr, rows, cols), $"{at}: named {(ir, jr, rows, cols)}, walk goes to {walk[i + 1]}");
                            }
                        }
    }

    [Fact]
    public void SquareTeamOfTwoMatchesReference()
    {
        // 256^3, the two-thread benchmark shape (one K block, C written from zero or continued), every transpose.
        int seed = 6000;
        foreach (var (ta, tb) in Transposes)
        {
            Check(Simd.Best, new Case(seed++, ta, tb, 256, 256, 256), 1, 2);
            Check(Simd.Best, new Case(seed++, ta, tb, 256, 256, 256, accumulate: true), 2);
        }
    }

    [Fact]
    public void TrainingShapesMatchReference()
    {
        // Dense 784->256 at batch 64: forward, dX = dY·Wᵀ, dW = Xᵀ·dY (accumulated as a gradient is).
        Check(Simd.Best, new Case(21, false, false, 64, 256, 784), 1, 2);
        Check(Simd.Best, new Case(22, false, true, 64, 784, 256), 1, 2);
        Check(Simd.Best, new Case(23, true, false, 784, 256, 64, accumulate: true), 1, 2);
        Check(Simd.Best, new Case(24, false, false, 64, 512, 156), 1, 2);
        // Batch 256, 256->128: dW reads B (1 KB rows) packed, not in place (L1 sets); B in place at a friendly stride.
        Check(Simd.Best, new Case(25, true, false, 128, 256, 256, accumulate: true), 1, 2);
        Check(Simd.Best, new Case(26, false, false, 100, 200, 300, pad: 4), 1, 2);
    }

    [Fact]
    public void KZeroClearsOrKeepsC()
    {
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        Gemm.Sgemm(false, false, 2, 3, 0, [], 0, [], 3, c, 3, accumulate: true);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, c);
        Gemm.Sgemm(false, false, 2, 3, 0, [], 0, [], 3, c, 3);
        Assert.Equal(new float[6], c);
    }

    [Fact]
    public void MatMulOnTensorsMatchesReference()
    {
        var t = new Case(31, true, false, 20, 30, 40);
        var a = new Tensor(t.A, 0, 40, 20);
        var b = new Tensor(t.B, 0, 40, 30);
        var c = new Tensor(20, 30);
        Gemm.MatMul(a, true, b, false, c);
        t.AssertSame(t.Reference(), c.ToArray(), "MatMul");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void SteadyStateCallsAllocateNothing(int threads)
    {
        var t = new Case(41, false, true, 64, 300, 270);
        var c = new float[t.M * t.Ldc];
        for (int i = 0; i < 3; i++)
            Gemm.Sgemm(false, true, t.M, t.N, t.K, t.A, t.Lda, t.B, t.Ldb, c, t.Ldc, false, threads);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
            Gemm.Sgemm(false, true, t.M, t.N, t.K, t.A, t.Lda, t.B, t.Ldb, c, t.Ldc, false, threads);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void BadInputNamesTheOperand()
    {
        var a = new float[6]; var b = new float[12]; var c = new float[8];
        Assert.Equal("m", Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, -1, 4, 3, a, 3, b, 4, c, 4)).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 4, -3, a, 3, b, 4, c, 4)).ParamName);
        Assert.Equal("a", Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 4, 3, a.AsSpan(0, 5), 3, b, 4, c, 4)).ParamName);
        Assert.Equal("a", Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 4, 3, a, 2, b, 4, c, 4)).ParamName);
        Assert.Equal("b", Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, true, 2, 4, 3, a, 3, b, 4, c, 4)).ParamName);
        Assert.Equal("c", Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 4, 3, a, 3, b, 4, c.AsSpan(0, 7), 4)).ParamName);
        var shared = new float[32];
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 4, 3, shared.AsSpan(0, 6), 3, b, 4, shared.AsSpan(4, 8), 4));
        Assert.Equal("c", ex.ParamName);
        Assert.Contains("overlaps", ex.Message);
        var mm = Assert.Throws<ArgumentException>(() => Gemm.MatMul(new Tensor(2, 3), false, new Tensor(4, 5), false, new Tensor(2, 5)));
        Assert.Contains("(2,3)", mm.Message);
        Assert.Contains("(4,5)", mm.Message);
    }
}

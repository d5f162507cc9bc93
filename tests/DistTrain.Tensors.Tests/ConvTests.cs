// Fast Conv2d (direct 3x3 and im2col + GEMM paths) against ConvReference, bit-identity across thread
// counts and SIMD paths (a row per path), bad operands, and zero steady-state allocation. Winograd: ConvWinogradTests.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Tensors.Tests;

[Collection("Conv")]
public class ConvTests
{
    // (B, C, H, W, OC, K, stride, pad): direct-path shapes (C ≤ 2, 3x3, stride 1) and GEMM-path ones.
    public static TheoryData<int, int, int, int, int, int, int, int> Shapes => new()
    {
        { 2, 1, 28, 28, 4, 3, 1, 1 },   // direct, the cnn preset's first layer (fewer channels)
        { 3, 2, 11, 33, 3, 3, 1, 2 },   // direct, pad 2, non-square, width tail
        { 2, 1, 13, 10, 5, 3, 1, 0 },   // direct, pad 0, OW = 8
        { 1, 1, 9, 17, 2, 3, 1, 1 },    // direct, 17 = 2 chunks + tail
        { 2, 3, 7, 9, 5, 3, 2, 1 },     // gemm, stride 2
        { 2, 4, 5, 5, 3, 1, 1, 0 },     // gemm, 1x1
        { 1, 3, 8, 6, 2, 2, 2, 0 },     // gemm, 2x2 stride 2
        { 2, 2, 9, 9, 3, 5, 1, 2 },     // gemm, 5x5
        { 2, 8, 14, 14, 6, 3, 1, 1 },   // gemm, the preset's second layer (fewer channels)
        { 1, 1, 7, 7, 1, 3, 1, 1 },     // gemm (OW < 8 rules out the direct kernel)
        { 1, 2, 1, 33, 3, 1, 1, 0 },    // gemm, one row
        { 3, 1, 6, 5, 2, 3, 2, 2 },     // gemm, stride 2, pad 2
    };

    internal static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(r.NextDouble() * 2 - 1);
        return a;
    }

    internal static void Close(float[] expected, float[] actual, double tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= tol * (1 + Math.Abs(expected[i]))))
                Assert.Fail($"{what}[{i}]: expected {expected[i]}, got {actual[i]} (tolerance {tol})");
    }

    internal static (float[] y, float[] dx, float[] dw, float[] db) RunFast(ConvShape s, float[] x, float[] w, float[] b, float[] dy)
    {
        var y = new float[s.OutputLength];
        Conv2d.Forward(s, x, w, b, y);
        var dx = new float[s.InputLength];
        var dw = Random(s.WeightLength, 7);   // accumulated into
        var db = Random(s.OutChannels, 8);
        Conv2d.Backward(s, x, w, dy, dx, dw, db);
        return (y, dx, dw, db);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesReference(int batch, int c, int h, int w, int oc, int k, int stride, int pad)
    {
        var s = new ConvShape(batch, c, h, w, oc, k, k, stride, pad);
        var x = Random(s.InputLength, 1); var wt = Random(s.WeightLength, 2);
        var b = Random(oc, 3); var dy = Random(s.OutputLength, 4);
        var (y, dx, dw, db) = RunFast(s, x, wt, b, dy);

        var ry = new float[s.OutputLength];
        ConvReference.Forward(s, x, wt, b, ry);
        var rdx = new float[s.InputLength]; var rdw = Random(s.WeightLength, 7); var rdb = Random(oc, 8);
        ConvReference.Backward(s, x, wt, dy, rdx, rdw, rdb);

        // Reduction orders differ from the reference (padded zeros, lane chains, batch-then-pixel order):
        // relative error bound a few ulps per summed term.
        int sumTerms = s.Batch * s.OutH * s.OutW;
        Close(ry, y, 1e-6 * c * k * k + 1e-6, "y");
        Close(rdx, dx, 1e-6 * oc * k * k + 1e-6, "dx");
        Close(rdw, dw, 1e-6 * sumTerms + 1e-6, "dw");
        Close(rdb, db, 1e-6 * sumTerms + 1e-6, "db");
    }

    [Theory]
    [InlineData(3, 32, 14, 14, 64, 3, 1, 1)]   // the cnn preset's 32→64 layer
    [InlineData(2, 3, 7, 9, 5, 3, 2, 1)]
    [InlineData(2, 2, 9, 9, 13, 5, 1, 2)]
    public void GemmForwardIsTheReferenceChain(int batch, int c, int h, int w, int oc, int k, int stride, int pad)
    {
        // The forward contract is one FMA chain per output, bias then (c, kh, kw) in order, so the GEMM path
        // (however its GEMM is oriented) equals the naive reference exactly; the padded zeros the GEMM adds
        // leave the chain unchanged (== treats -0 and +0 alike). Winograd (which would take the first
        // shape) rounds differently by design: switched off here.
        var s = new ConvShape(batch, c, h, w, oc, k, k, stride, pad);
        var x = Random(s.InputLength, 21); var wt = Random(s.WeightLength, 22); var b = Random(oc, 23);
        var y = new float[s.OutputLength]; var ry = new float[s.OutputLength];
        Conv2d.Winograd = false;
        try
        {
            Assert.False(Conv2d.UsesDirectKernel(s) || Conv2d.UsesWinograd(s));
            Conv2d.Forward(s, x, wt, b, y);
        }
        finally { Conv2d.Winograd = true; }
        ConvReference.Forward(s, x, wt, b, ry);
        for (int i = 0; i < y.Length; i++)
            if (y[i] != ry[i]) Assert.Fail($"y[{i}]: reference {ry[i]:R}, fast {y[i]:R} (shape {s}).");
    }

    public static IEnumerable<object[]> ShapesOnEveryPath() => SimdRows.Cross(Shapes);

    [SkippableTheory, MemberData(nameof(ShapesOnEveryPath))]
    public void BitIdenticalAcrossThreadsAndSimdPaths(int batch, int c, int h, int w, int oc, int k, int stride, int pad, SimdPath path)
    {
        var s = new ConvShape(batch + 2, c, h, w, oc, k, k, stride, pad);   // more samples than threads
        AssertBitsIndependentOfPathAndThreads(s, path);
    }

    /// <summary>Forward and backward of <paramref name="s"/> on <paramref name="path"/> (skipped with the reason where the
    /// CPU lacks it) at 1, 2 and 3 threads give the bits of the portable path at 1 thread.</summary>
    internal static void AssertBitsIndependentOfPathAndThreads(ConvShape s, SimdPath path)
    {
        SimdRows.Require(path);
        var x = Random(s.InputLength, 11); var wt = Random(s.WeightLength, 12);
        var b = Random(s.OutChannels, 13); var dy = Random(s.OutputLength, 14);
        int saved = Compute.Threads;
        try
        {
            Compute.Threads = 1;
            (float[] y, float[] dx, float[] dw, float[] db) f;
            using (Simd.Force(SimdPath.Portable)) f = RunFast(s, x, wt, b, dy);
            using var _ = Simd.Force(path);
            foreach (int t in new[] { 1, 2, 3 })
            {
                if (path == SimdPath.Portable && t == 1) continue;   // that run is the reference
                Compute.Threads = t;
                var r = RunFast(s, x, wt, b, dy);
                Assert.Equal(f.y, r.y); Assert.Equal(f.dx, r.dx); Assert.Equal(f.dw, r.dw); Assert.Equal(f.db, r.db);
            }
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void EmptyGradientsAreSkipped()
    {
        var s = new ConvShape(2, 1, 10, 10, 3, 3, 3, 1, 1);
        var x = Random(s.InputLength, 1); var wt = Random(s.WeightLength, 2); var dy = Random(s.OutputLength, 4);
        var dw = new float[s.WeightLength]; var rdw = new float[s.WeightLength];
        Conv2d.Backward(s, x, wt, dy, default, dw, default);
        ConvReference.Backward(s, x, wt, dy, default, rdw, default);
        Close(rdw, dw, 1e-4, "dw");
        var dx = new float[s.InputLength]; var rdx = new float[s.InputLength];
        Conv2d.Backward(s, x, wt, dy, dx, default, default);
        ConvReference.Backward(s, x, wt, dy, rdx, default, default);
        Close(rdx, dx, 1e-4, "dx");
    }

    [Fact]
    public void BadOperandsNameTheOperandAndShape()
    {
        var s = new ConvShape(2, 3, 8, 8, 4, 3, 3, 1, 1);
        var x = new float[s.InputLength]; var w = new float[s.WeightLength]; var y = new float[s.OutputLength];
        var e = Assert.Throws<ArgumentException>(() => Conv2d.Forward(s, new float[5], w, default, y));
        Assert.Equal("x", e.ParamName); Assert.Contains("(2,3,8,8)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Conv2d.Forward(s, x, new float[10], default, y));
        Assert.Equal("w", e.ParamName); Assert.Contains("(4,3,3,3)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Conv2d.Forward(s, x, w, new float[3], y));
        Assert.Equal("bias", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => Conv2d.Forward(s, x, w, default, new float[3]));
        Assert.Equal("y", e.ParamName); Assert.Contains("(2,4,8,8)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Conv2d.Backward(s, x, w, y, new float[1], default, default));
        Assert.Equal("dx", e.ParamName);
        var shared = new float[s.OutputLength];
        e = Assert.Throws<ArgumentException>(() => Conv2d.Forward(s, shared.AsSpan(0, s.InputLength), w, default, shared));
        Assert.Equal("y", e.ParamName);
        Assert.Throws<ArgumentException>(() => Conv2d.Forward(new ConvShape(1, 1, 2, 2, 1, 5, 5), new float[4], new float[25], default, new float[1]));
        Assert.Throws<ArgumentException>(() => Conv2d.Forward(new ConvShape(-1, 1, 2, 2, 1, 1, 1), x, w, default, y));
    }

    [Theory]
    [InlineData(1, 32, 28)]   // direct path
    [InlineData(4, 16, 14)]   // gemm path (Winograd needs 16+ channels)
    public void SteadyStateAllocatesNothing(int c, int oc, int hw)
    {
        AssertSteadyStateAllocatesNothing(new ConvShape(4, c, hw, hw, oc, 3, 3, 1, 1));
    }

    /// <summary>After warm-up, forward + backward of <paramref name="s"/> allocate no managed bytes at 1 and 2 threads.</summary>
    internal static void AssertSteadyStateAllocatesNothing(ConvShape s)
    {
        int oc = s.OutChannels;
        var x = Random(s.InputLength, 1); var w = Random(s.WeightLength, 2); var b = new float[oc];
        var y = new float[s.OutputLength]; var dx = new float[s.InputLength]; var dw = new float[s.WeightLength]; var db = new float[oc];
        int saved = Compute.Threads;
        try
        {
            foreach (int t in new[] { 1, 2 })
            {
                Compute.Threads = t;
                for (int i = 0; i < 3; i++) { Conv2d.Forward(s, x, w, b, y); Conv2d.Backward(s, x, w, y, dx, dw, db); }
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 3; i++) { Conv2d.Forward(s, x, w, b, y); Conv2d.Backward(s, x, w, y, dx, dw, db); }
                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            }
        }
        finally { Compute.Threads = saved; }
    }
}

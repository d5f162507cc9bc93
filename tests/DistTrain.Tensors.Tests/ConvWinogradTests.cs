// Winograd F(2×2, 3×3) convolution (ConvWinograd) against a double-precision direct convolution, with
// an error bound scaled by each output's sum of |terms|; bit-identity across threads and SIMD paths (a row per path);
// the switch back to im2col; zero steady-state allocation.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Tensors.Tests;

/// <summary>Conv test classes share Compute.Threads and the Winograd switch, so they run one after another.</summary>
[CollectionDefinition("Conv")]
public sealed class ConvCollection;

[Collection("Conv")]
public class ConvWinogradTests
{
    // (B, C, H, W, OC): odd sizes (partial tiles at the bottom and right), 1×1 and 2×3 images, odd
    // channel counts, tile rows wider than one 8-tile vector (W = 20, 33, 41), chunks of 64 tiles that
    // end inside a tile row (14×14, 9×41), more samples than weight-gradient groups (9).
    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        { 1, 16, 1, 1, 16 },
        { 3, 17, 7, 7, 19 },
        { 1, 16, 5, 9, 21 },
        { 2, 16, 2, 3, 16 },
        { 3, 21, 14, 14, 16 },
        { 2, 16, 6, 20, 17 },
        { 1, 19, 3, 33, 18 },
        { 9, 16, 7, 7, 16 },
        { 3, 32, 14, 14, 64 },
        { 2, 16, 9, 41, 16 },
    };

    // (B, C, H, W, OC) for the weight gradient's packed panels (WinogradPanels): channel counts that are not whole
    // micro-kernel tiles (C past a multiple of NR = 16 or 32 and of 8 lanes: 17, 33, 18, 20; OC not a multiple of
    // MR = 6 or 8: 23, 31, 17, 40, 20), C a multiple of 8 but not of 16 (24); batches 1..9 (fewer samples than
    // groups, and one group of two); tile counts below one chunk (1×9, 7×9 = 63), exactly one chunk per sample
    // (16×16: 64), chunks that split a sample (17×17: 81) or end inside a tile row; odd heights and widths.
    public static TheoryData<int, int, int, int, int> PanelShapes => new()
    {
        { 1, 17, 5, 5, 23 },
        { 7, 33, 5, 5, 16 },
        { 9, 16, 9, 9, 31 },
        { 2, 24, 16, 16, 40 },
        { 5, 16, 3, 30, 17 },
        { 4, 20, 11, 13, 16 },
        { 8, 16, 17, 17, 16 },
        { 6, 18, 7, 7, 20 },
    };

    /// <summary>Direct convolution in double: values and, per output, the sum of |terms| it adds.</summary>
    private static (double[] y, double[] yAbs, double[] dx, double[] dxAbs, double[] dw, double[] dwAbs) Exact(
        ConvShape s, float[] x, float[] w, float[] b, float[] dy)
    {
        int oh = s.OutH, ow = s.OutW, c = s.InChannels, oc = s.OutChannels, h = s.Height, wd = s.Width;
        var y = new double[s.OutputLength]; var yAbs = new double[s.OutputLength];
        var dx = new double[s.InputLength]; var dxAbs = new double[s.InputLength];
        var dw = new double[s.WeightLength]; var dwAbs = new double[s.WeightLength];
        for (int n = 0; n < s.Batch; n++)
        for (int o = 0; o < oc; o++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        {
            int yi = ((n * oc + o) * oh + i) * ow + j;
            y[yi] = b[o]; yAbs[yi] = Math.Abs(b[o]);
            for (int ci = 0; ci < c; ci++)
            for (int p = 0; p < 3; p++)
            for (int q = 0; q < 3; q++)
            {
                int hi = i - 1 + p, wi = j - 1 + q;
                if ((uint)hi >= (uint)h || (uint)wi >= (uint)wd) continue;
                int xi = ((n * c + ci) * h + hi) * wd + wi, wk = ((o * c + ci) * 3 + p) * 3 + q;
                double xw = (double)x[xi] * w[wk], gw = (double)dy[yi] * w[wk], gx = (double)dy[yi] * x[xi];
                y[yi] += xw; yAbs[yi] += Math.Abs(xw);
                dx[xi] += gw; dxAbs[xi] += Math.Abs(gw);
                dw[wk] += gx; dwAbs[wk] += Math.Abs(gx);
            }
        }
        return (y, yAbs, dx, dxAbs, dw, dwAbs);
    }

    /// <summary>
    /// |actual − exact| ≤ (n + 32)·ε·Σ|terms| + (init): n·ε is the classic bound of a float chain of n terms,
    /// and 32 covers Winograd's transforms, whose constants (at most 4 adds a side, halvings) grow the
    /// error by a few ε relative to the terms' magnitude.
    /// </summary>
    private static void Within(double[] exact, double[] abs, float[] actual, int n, string what, ConvShape s, float[]? start = null)
    {
        double eps = Math.Pow(2, -24);
        for (int i = 0; i < exact.Length; i++)
        {
            double want = exact[i] + (start?[i] ?? 0), mag = abs[i] + Math.Abs(start?[i] ?? 0);
            double bound = (n + 32) * eps * mag + 1e-30;
            if (!(Math.Abs(actual[i] - want) <= bound))
                Assert.Fail($"{what}[{i}] of {s}: exact {want:R}, Winograd {actual[i]:R}, error {Math.Abs(actual[i] - want):E2} > bound {bound:E2}.");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesExactConvolutionWithinTheFloatBound(int batch, int c, int h, int w, int oc)
    {
        var s = new ConvShape(batch, c, h, w, oc, 3, 3, 1, 1);
        Assert.True(Conv2d.UsesWinograd(s));
        var x = ConvTests.Random(s.InputLength, 1); var wt = ConvTests.Random(s.WeightLength, 2);
        var b = ConvTests.Random(oc, 3); var dy = ConvTests.Random(s.OutputLength, 4);
        var (y, dx, dw, db) = ConvTests.RunFast(s, x, wt, b, dy);
        var e = Exact(s, x, wt, b, dy);
        Within(e.y, e.yAbs, y, c * 9 + 1, "y", s);
        Within(e.dx, e.dxAbs, dx, oc * 9, "dx", s);
        // dw chains run over a group's tiles, then over the (at most 8) groups.
        int tiles = (h + 1) / 2 * ((w + 1) / 2) * ((batch + 7) / 8) + 8;
        Within(e.dw, e.dwAbs, dw, tiles, "dw", s, ConvTests.Random(s.WeightLength, 7));
        // The bias gradient does not go through Winograd: the same fixed sums as every other path.
        var rdb = ConvTests.Random(oc, 8);
        ConvReference.Backward(s, x, wt, dy, default, default, rdb);
        ConvTests.Close(rdb, db, 1e-6 * batch * h * w + 1e-6, "db");
    }

    [Theory]
    [MemberData(nameof(PanelShapes))]
    public void PanelEdgeShapesMatchExactConvolutionWithinTheFloatBound(int batch, int c, int h, int w, int oc) =>
        MatchesExactConvolutionWithinTheFloatBound(batch, c, h, w, oc);

    [Theory]
    [InlineData(9, 17, 9, 9, 23)]
    [InlineData(3, 32, 14, 14, 64)]
    public void WeightGradientAloneGivesTheBitsOfTheFullBackward(int batch, int c, int h, int w, int oc)
    {
        // Without dx the job skips the input gradient's tiles but shares the scratch regions: the weight gradient
        // (accumulated onto what dw held) must not change.
        var s = new ConvShape(batch, c, h, w, oc, 3, 3, 1, 1);
        Assert.True(Conv2d.UsesWinograd(s));
        var x = ConvTests.Random(s.InputLength, 41); var wt = ConvTests.Random(s.WeightLength, 42); var dy = ConvTests.Random(s.OutputLength, 43);
        var dwFull = ConvTests.Random(s.WeightLength, 44); var dwAlone = (float[])dwFull.Clone();
        Conv2d.Backward(s, x, wt, dy, new float[s.InputLength], dwFull, default);
        Conv2d.Backward(s, x, wt, dy, default, dwAlone, default);
        Assert.Equal(dwFull, dwAlone);
    }

    [Fact]
    public void ATileFedByOneInputAloneGivesThatProductExactly()
    {
        // One input pixel of 1 and one filter tap of w: every output is 0 or w times a power of two, and
        // the transforms (adds and halvings of exact values) must return exactly w where the tap lands.
        var s = new ConvShape(1, 16, 5, 5, 16, 3, 3, 1, 1);
        var x = new float[s.InputLength]; x[(3 * 5 + 2) * 5 + 2] = 1f;     // channel 3, pixel (2, 2)
        var w = new float[s.WeightLength]; w[((6 * 16 + 3) * 3 + 0) * 3 + 2] = 0.375f; // o 6, c 3, tap (0, 2)
        var y = new float[s.OutputLength];
        Conv2d.Forward(s, x, w, default, y);
        for (int i = 0; i < y.Length; i++)
        {
            // y[6, i, j] = x[i − 1 + 0, j − 1 + 2] · w: the pixel (2, 2) reaches output (3, 1).
            float want = i == (6 * 5 + 3) * 5 + 1 ? 0.375f : 0f;
            Assert.True(y[i] == want, $"y[{i}] = {y[i]:R}, expected {want}");
        }
    }

    // (B, C, H, W, OC) of a 3x3 stride-1 pad-1 convolution that runs on Winograd
    public static TheoryData<int, int, int, int, int> BitShapes => new()
    {
        { 5, 17, 7, 7, 19 },
        { 4, 16, 14, 14, 24 },
        { 3, 16, 6, 20, 16 },
        // the weight gradient's panel edges: channels not whole MR / NR tiles, 9 tiles per sample, batch 1 and 9
        { 7, 33, 5, 5, 16 },
        { 9, 16, 9, 9, 31 },
        { 1, 17, 5, 5, 23 },
    };

    public static IEnumerable<object[]> BitShapesOnEveryPath() => SimdRows.Cross(BitShapes);

    [SkippableTheory, MemberData(nameof(BitShapesOnEveryPath))]
    public void BitIdenticalAcrossThreadsAndSimdPaths(int batch, int c, int h, int w, int oc, SimdPath path)
    {
        var s = new ConvShape(batch, c, h, w, oc, 3, 3, 1, 1);
        Assert.True(Conv2d.UsesWinograd(s));
        ConvTests.AssertBitsIndependentOfPathAndThreads(s, path);
    }

    [Fact]
    public void SwitchedOffTheShapeRunsOnIm2ColBitForBitLikeTheReference()
    {
        var s = new ConvShape(2, 16, 7, 7, 16, 3, 3, 1, 1);
        var x = ConvTests.Random(s.InputLength, 31); var wt = ConvTests.Random(s.WeightLength, 32); var b = ConvTests.Random(16, 33);
        var y = new float[s.OutputLength]; var ry = new float[s.OutputLength];
        ConvReference.Forward(s, x, wt, b, ry);
        Conv2d.Winograd = false;
        try
        {
            Assert.False(Conv2d.UsesWinograd(s));
            Conv2d.Forward(s, x, wt, b, y);
            Assert.Equal(ry, y);
        }
        finally { Conv2d.Winograd = true; }
        Assert.True(Conv2d.UsesWinograd(s));
        Conv2d.Forward(s, x, wt, b, y);
        Assert.NotEqual(ry, y);   // a different (bounded, see above) rounding: the switch really changes path
    }

    [Theory]
    [InlineData(32, 64, 14)]
    [InlineData(17, 16, 7)]
    public void SteadyStateAllocatesNothing(int c, int oc, int hw)
    {
        var s = new ConvShape(4, c, hw, hw, oc, 3, 3, 1, 1);
        Assert.True(Conv2d.UsesWinograd(s));
        ConvTests.AssertSteadyStateAllocatesNothing(s);
    }
}

// Max and average pooling against ConvReference (bit-identical: same visiting order), ties and NaN,
// thread counts and SIMD paths (a row per path), and bad operands.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Tensors.Tests;

public class PoolTests
{
    public static TheoryData<int, int, int, int, int, int> Shapes => new()
    {
        { 2, 3, 28, 28, 2, 2 }, { 1, 1, 7, 7, 2, 2 }, { 3, 2, 9, 33, 3, 2 }, { 1, 4, 8, 5, 3, 3 },
        { 2, 1, 6, 6, 3, 1 }, { 1, 1, 1, 1, 1, 1 }, { 1, 2, 14, 14, 2, 2 }, { 0, 2, 4, 4, 2, 2 },
        // 2x2 rows: whole blocks of 8 plus masked tails (ow 15, 2, 9, 1), odd sizes leave a row / column uncovered
        { 2, 3, 6, 30, 2, 2 }, { 1, 2, 15, 17, 2, 2 }, { 3, 1, 3, 5, 2, 2 }, { 1, 1, 5, 19, 2, 2 }, { 2, 2, 2, 2, 2, 2 },
    };

    public static IEnumerable<object[]> ShapesOnEveryPath() => SimdRows.Cross(Shapes);

    [SkippableTheory, MemberData(nameof(ShapesOnEveryPath))]
    public void BitIdenticalToReferenceForAnyThreadCountAndSimdPath(int b, int c, int h, int w, int k, int stride, SimdPath path)
    {
        SimdRows.Require(path);
        var s = new PoolShape(b, c, h, w, k, stride);
        var x = ConvTests.Random(s.InputLength, 1);
        for (int i = 0; i < x.Length; i += 5) x[i] = x[Math.Max(0, i - 1)];   // ties: first index must win
        var dy = ConvTests.Random(s.OutputLength, 2);
        var ry = new float[s.OutputLength]; var ra = new int[s.OutputLength]; var rdx = new float[s.InputLength];
        var ray = new float[s.OutputLength]; var radx = new float[s.InputLength];
        if (b > 0)
        {
            ConvReference.MaxPoolForward(s, x, ry, ra); ConvReference.MaxPoolBackward(s, dy, ra, rdx);
            ConvReference.AvgPoolForward(s, x, ray); ConvReference.AvgPoolBackward(s, dy, radx);
        }
        int saved = Compute.Threads;
        try
        {
            using var _ = Simd.Force(path);   // AVX2 and wider: the 2x2 vector rows; portable: the scalar loop
            foreach (int t in new[] { 1, 2, 3 })
            {
                Compute.Threads = t;
                var y = new float[s.OutputLength]; var a = new int[s.OutputLength]; var dx = new float[s.InputLength];
                Pool2d.MaxForward(s, x, y, a); Pool2d.MaxBackward(s, dy, a, dx);
                Assert.Equal(ry, y); Assert.Equal(ra, a); Assert.Equal(rdx, dx);
                var ay = new float[s.OutputLength]; var adx = new float[s.InputLength];
                Pool2d.AvgForward(s, x, ay); Pool2d.AvgBackward(s, dy, adx);
                Assert.Equal(ray, ay); Assert.Equal(radx, adx);
            }
        }
        finally { Compute.Threads = saved; }
    }

    /// <summary>
    /// The fused ReLU (pool, then ReLU on the output) against the unfused chain of references: ReLU (as
    /// TensorPrimitives.Max(x, 0)), max pool, pool backward, then ReLU backward from ReLU's output. Outputs and
    /// input gradients must match bit for bit (argmax may differ where the window holds no positive value: the
    /// gradient there is 0 either way). Inputs are mostly negative, with −0, +0, ties and a NaN.
    /// </summary>
    [SkippableTheory, MemberData(nameof(ShapesOnEveryPath))]
    public void FusedReluMatchesReluThenPoolBitForBit(int b, int c, int h, int w, int k, int stride, SimdPath path)
    {
        SimdRows.Require(path);
        var s = new PoolShape(b, c, h, w, k, stride);
        var x = ConvTests.Random(s.InputLength, 3);
        for (int i = 0; i < x.Length; i++) x[i] -= 0.3f;
        for (int i = 0; i < x.Length; i += 7) x[i] = -0f;
        for (int i = 3; i < x.Length; i += 11) x[i] = 0f;
        for (int i = 0; i < x.Length; i += 5) x[i] = x[Math.Max(0, i - 1)];
        if (x.Length > 40) x[37] = float.NaN;
        var dy = ConvTests.Random(s.OutputLength, 4);
        for (int i = 0; i < dy.Length; i += 9) dy[i] = -0f;

        var relu = new float[x.Length];
        System.Numerics.Tensors.TensorPrimitives.Max(x, 0f, relu);
        var ry = new float[s.OutputLength]; var ra = new int[s.OutputLength]; var poolDx = new float[s.InputLength];
        var rdx = new float[s.InputLength];
        if (b > 0)
        {
            ConvReference.MaxPoolForward(s, relu, ry, ra); ConvReference.MaxPoolBackward(s, dy, ra, poolDx);
            for (int i = 0; i < rdx.Length; i++) rdx[i] = relu[i] > 0f ? poolDx[i] : 0f;
        }
        int saved = Compute.Threads;
        try
        {
            using var _ = Simd.Force(path);
            foreach (int t in new[] { 1, 2 })
            {
                Compute.Threads = t;
                var y = new float[s.OutputLength]; var a = new int[s.OutputLength]; var dx = new float[s.InputLength];
                Pool2d.MaxForward(s, x, y, a, relu: true); Pool2d.MaxBackward(s, dy, a, dx, y);
                Assert.Equal(ry.Select(BitConverter.SingleToInt32Bits), y.Select(BitConverter.SingleToInt32Bits));
                Assert.Equal(rdx.Select(BitConverter.SingleToInt32Bits), dx.Select(BitConverter.SingleToInt32Bits));
            }
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void MaxTakesFirstIndexOnTiesAndKeepsLeadingNaN()
    {
        var s = new PoolShape(1, 1, 2, 4, 2, 2);
        var x = new[] { 1f, 1f, float.NaN, 5f, 1f, 0f, 9f, 9f };
        var y = new float[2]; var a = new int[2];
        Pool2d.MaxForward(s, x, y, a);
        Assert.Equal(1f, y[0]); Assert.Equal(0, a[0]);
        Assert.True(float.IsNaN(y[1])); Assert.Equal(2, a[1]);
    }

    [Fact]
    public void BadOperands()
    {
        var s = new PoolShape(1, 2, 4, 4, 2, 2);
        var e = Assert.Throws<ArgumentException>(() => Pool2d.MaxForward(s, new float[31], new float[8], new int[8]));
        Assert.Equal("x", e.ParamName); Assert.Contains("(1,2,4,4)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Pool2d.AvgForward(s, new float[32], new float[7]));
        Assert.Equal("y", e.ParamName); Assert.Contains("(1,2,2,2)", e.Message);
        var bad = new int[8]; bad[3] = 99;
        e = Assert.Throws<ArgumentException>(() => Pool2d.MaxBackward(s, new float[8], bad, new float[32]));
        Assert.Equal("argmax", e.ParamName);
        Assert.Throws<ArgumentException>(() => Pool2d.MaxBackward(s, new float[8], new int[8], new float[32], new float[7]));
        Assert.Throws<ArgumentException>(() => Pool2d.AvgForward(new PoolShape(1, 1, 2, 2, 3, 1), new float[4], new float[1]));
    }

    [SkippableTheory, MemberData(nameof(SimdRows.Paths), MemberType = typeof(SimdRows))]
    public void ArgmaxInTheNeighbouringWindowIsRefused(SimdPath path)
    {
        using var _ = SimdRows.Force(path);
        var s = new PoolShape(1, 2, 4, 4, 2, 2);
        var own = new int[8]; for (int i = 0; i < 8; i++) own[i] = i / 4 * 16 + i % 4 / 2 * 8 + i % 2 * 2;   // each window's own first index
        Pool2d.MaxBackward(s, new float[8], own, new float[32]);
        var bad = (int[])own.Clone();
        bad[5] += 2;   // inside the plane but in the neighbouring window: every path must refuse it
        var e = Assert.Throws<ArgumentException>(() => Pool2d.MaxBackward(s, new float[8], bad, new float[32]));
        Assert.Equal("argmax", e.ParamName);
    }
}

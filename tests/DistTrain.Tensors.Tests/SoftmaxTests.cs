// Softmax, log-softmax, softmax backward and fused cross-entropy against a double-precision reference,
// bit-identity of each vector path with the portable one (a row per path), and bad operands.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Tensors.Tests;

public class SoftmaxTests
{
    public static TheoryData<int, int> Shapes => new() { { 1, 1 }, { 3, 7 }, { 2, 10 }, { 5, 33 }, { 1, 257 }, { 4, 129 }, { 0, 5 }, { 2, 16 } };

    private static float[] Logits(int n, int seed)
    {
        var a = ConvTests.Random(n, seed);
        for (int i = 0; i < n; i++) a[i] *= 20f;   // wide range: exercises the max shift and tiny probabilities
        return a;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardAndLogMatchReference(int rows, int cols)
    {
        var x = Logits(rows * cols, 1);
        var y = new float[x.Length]; var ry = new float[x.Length];
        Softmax.Forward(x, y, rows, cols);
        SoftmaxReference.Forward(x, ry, rows, cols);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(y[i] - ry[i]) <= 2e-6 * (1 + ry[i]) + 1e-30, $"softmax[{i}] {y[i]} vs {ry[i]}");
        Softmax.LogForward(x, y, rows, cols);
        SoftmaxReference.Forward(x, ry, rows, cols, log: true);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(y[i] - ry[i]) <= 2e-5 * (1 + Math.Abs(ry[i])), $"log-softmax[{i}] {y[i]} vs {ry[i]}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void CrossEntropyBackwardMatchesReference(int rows, int cols)
    {
        var x = Logits(rows * cols, 2);
        var labels = new int[rows];
        for (int r = 0; r < rows; r++) labels[r] = (r * 7 + 3) % cols;
        var d = new float[x.Length]; var rd = new float[x.Length];
        float loss = Softmax.CrossEntropyBackward(x, labels, d, rows, cols, 0.25f);
        float rloss = SoftmaxReference.CrossEntropyBackward(x, labels, rd, rows, cols, 0.25f);
        Assert.True(Math.Abs(loss - rloss) <= 1e-5 * (1 + Math.Abs(rloss)), $"loss {loss} vs {rloss}");
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(d[i] - rd[i]) <= 1e-6, $"dlogits[{i}] {d[i]} vs {rd[i]}");
        // in place gives the same bits
        var inPlace = (float[])x.Clone();
        Softmax.CrossEntropyBackward(inPlace, labels, inPlace, rows, cols, 0.25f);
        Assert.Equal(d, inPlace);
    }

    [Fact]
    public void BackwardMatchesFiniteDifferences()
    {
        const int rows = 2, cols = 9;
        var x = ConvTests.Random(rows * cols, 3); var dy = ConvTests.Random(rows * cols, 4);
        var y = new float[x.Length]; var dx = new float[x.Length];
        Softmax.Forward(x, y, rows, cols);
        Softmax.Backward(y, dy, dx, rows, cols);
        for (int i = 0; i < x.Length; i++)
        {
            double Loss(double delta)
            {
                var xs = x.Select(v => (double)v).ToArray(); xs[i] += delta;
                double total = 0;
                for (int r = 0; r < rows; r++)
                {
                    double max = xs.Skip(r * cols).Take(cols).Max(), sum = 0;
                    for (int j = 0; j < cols; j++) sum += Math.Exp(xs[r * cols + j] - max);
                    for (int j = 0; j < cols; j++) total += dy[r * cols + j] * Math.Exp(xs[r * cols + j] - max) / sum;
                }
                return total;
            }
            double fd = (Loss(1e-4) - Loss(-1e-4)) / 2e-4;
            Assert.True(Math.Abs(dx[i] - fd) <= 1e-5, $"dx[{i}] {dx[i]} vs finite difference {fd}");
        }
    }

    [SkippableTheory, MemberData(nameof(SimdRows.VectorPaths), MemberType = typeof(SimdRows))]
    public void SameBitsAsPortableOnEveryVectorPath(SimdPath path)
    {
        SimdRows.Require(path);
        const int rows = 6, cols = 37;
        var x = Logits(rows * cols, 5);
        var labels = new int[rows]; for (int r = 0; r < rows; r++) labels[r] = r;
        float[] Run(SimdPath p)
        {
            using var _ = Simd.Force(p);
            var y = new float[x.Length]; var l = new float[x.Length]; var d = new float[x.Length];
            Softmax.Forward(x, y, rows, cols); Softmax.LogForward(x, l, rows, cols);
            float loss = Softmax.CrossEntropyBackward(x, labels, d, rows, cols, 1f / rows);
            return y.Concat(l).Concat(d).Append(loss).ToArray();
        }
        Assert.Equal(Run(SimdPath.Portable), Run(path));
    }

    [Fact]
    public void BadOperands()
    {
        var e = Assert.Throws<ArgumentException>(() => Softmax.Forward(new float[6], new float[5], 2, 3));
        Assert.Equal("y", e.ParamName); Assert.Contains("(2,3)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Softmax.CrossEntropyBackward(new float[6], new[] { 0, 3 }, new float[6], 2, 3, 1f));
        Assert.Equal("labels", e.ParamName); Assert.Contains("labels[1] = 3", e.Message);
        e = Assert.Throws<ArgumentException>(() => Softmax.CrossEntropyBackward(new float[6], new[] { 0 }, new float[6], 2, 3, 1f));
        Assert.Equal("labels", e.ParamName);
        var buf = new float[6];
        Assert.Throws<ArgumentException>(() => Softmax.LogForward(buf, buf, 2, 3));
    }
}

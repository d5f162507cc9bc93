// Global-norm clipping: the norm against a double sum, the clip against PyTorch's coefficient, and the
// exact sum of squares that does not depend on order or on how the vector is split into shards.
using DistTrain.Nn.Optimizers;
using Xunit;

namespace DistTrain.Nn.Tests.Optimizers;

public class ClippingTests
{
    private static float[] Random(int n, int seed, double scale = 1)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)((r.NextDouble() * 2 - 1) * scale * Math.Pow(10, r.Next(-3, 3)))).ToArray();
    }

    [Fact]
    public void Sum_of_squares_matches_a_double_sum()
    {
        foreach (var n in new[] { 0, 1, 5, 1000, 70000 })
        {
            var g = Random(n, n);
            double expected = 0;
            foreach (var x in g) expected += (double)x * x;
            var actual = GradientClipping.SumOfSquares(g);
            Assert.True(Math.Abs(actual - expected) <= 1e-12 * expected, $"n={n}: {actual} vs {expected}");
        }
        Assert.Equal(25.0, GradientClipping.SumOfSquares([3f, -4f]));
        Assert.Equal(5.0, GradientClipping.GlobalNorm([3f, -4f]));
        // extremes are exact: the largest float squared, the smallest subnormal squared
        Assert.Equal((double)float.MaxValue * float.MaxValue, GradientClipping.SumOfSquares([float.MaxValue]));
        Assert.Equal(Math.ScaleB(1, -298), GradientClipping.SumOfSquares([float.Epsilon]));
    }

    [Fact]
    public void The_sum_is_exact_so_order_and_shard_splits_give_the_same_bits()
    {
        var g = Random(5000, 7, 1000);
        var whole = GradientClipping.SumOfSquares(g);
        var shuffled = g.OrderBy(x => BitConverter.SingleToInt32Bits(x) * 7919 % 1013).ToArray();
        Assert.Equal(BitConverter.DoubleToInt64Bits(whole), BitConverter.DoubleToInt64Bits(GradientClipping.SumOfSquares(shuffled)));
        foreach (var cuts in new[] { new[] { 1 }, [2500], [17, 33, 4096], [1, 2, 3, 4999] })
        {
            var total = new ExactSquareSum();
            int start = 0;
            foreach (var end in cuts.Append(g.Length))
            {
                var shard = new ExactSquareSum();
                shard.Add(g.AsSpan(start, end - start));
                // across the wire: digits out and back in
                var digits = new uint[ExactSquareSum.SerializedLength];
                shard.CopyTo(digits);
                total.Add(ExactSquareSum.FromDigits(digits));
                start = end;
            }
            Assert.Equal(BitConverter.DoubleToInt64Bits(whole), BitConverter.DoubleToInt64Bits(total.ToDouble()));
        }
        // a plain double sum is order-dependent on the same data, which is why the exact sum exists
        double Naive(float[] x) { double s = 0; foreach (var v in x) s += (double)v * v; return s; }
        Assert.NotEqual(Naive(g), Naive(g.Reverse().ToArray()));
    }

    [Fact]
    public void Clip_scales_to_max_norm_and_leaves_small_gradients_alone()
    {
        var g = new[] { 3f, -4f, 0f };
        Assert.Equal(5.0, GradientClipping.ClipByGlobalNorm(g, 1f));
        var coef = (float)(1.0 / (5.0 + 1e-6));
        Assert.Equal([3f * coef, -4f * coef, 0f], g);
        Assert.True(Math.Abs(GradientClipping.GlobalNorm(g) - 1) < 1e-6);

        var small = new[] { 0.3f, -0.4f };
        Assert.Equal(GradientClipping.GlobalNorm(small), GradientClipping.ClipByGlobalNorm(small, 1f));
        Assert.Equal([0.3f, -0.4f], small);

        var big = Random(1031, 3, 10);
        var copy = big.ToArray();
        var norm = GradientClipping.ClipByGlobalNorm(big, 2.5f);
        var c = GradientClipping.ClipCoefficient(norm, 2.5f);
        for (int i = 0; i < big.Length; i++) Assert.Equal(copy[i] * c, big[i]);
    }

    [Fact]
    public void Non_finite_gradients_are_reported_not_scaled()
    {
        var g = new[] { 1f, float.PositiveInfinity, 2f };
        Assert.Equal(double.PositiveInfinity, GradientClipping.ClipByGlobalNorm(g, 1f));
        Assert.Equal([1f, float.PositiveInfinity, 2f], g);
        Assert.True(double.IsNaN(GradientClipping.SumOfSquares([1f, float.NaN, float.NegativeInfinity])));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipByGlobalNorm(g, 0f));
    }
}

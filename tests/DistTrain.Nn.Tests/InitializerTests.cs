// Initializers: PyTorch fans, bounds and statistics on large tensors, determinism for a seed, parsing.
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class InitializerTests
{
    private static (double Mean, double Std, float Min, float Max) Stats(float[] x)
    {
        double m = x.Average(v => (double)v);
        double s = Math.Sqrt(x.Average(v => (v - m) * (v - m)));
        return (m, s, x.Min(), x.Max());
    }

    [Fact]
    public void Fans_follow_pytorch()
    {
        Assert.Equal((784, 128), Initializers.Fans([128, 784]));
        Assert.Equal((32 * 9, 64 * 9), Initializers.Fans([64, 32, 3, 3]));
        Assert.Contains("at least 2 dimensions", Assert.Throws<ArgumentException>(() => Initializers.Fans([10])).Message);
    }

    [Theory]
    [InlineData("xavier")] // uniform: std = a/√3, a = √(6/(fi+fo))
    [InlineData("xavier_normal")]
    [InlineData("he")]
    [InlineData("he_normal")]
    public void Fan_based_initializers_have_pytorch_std_and_bounds(string spec)
    {
        int[] shape = [256, 64, 3, 3]; // fan_in 576, fan_out 2304
        var x = new float[256 * 64 * 9];
        Initializer.Parse(spec).Fill(x, shape, new Random(1));
        var (mean, std, min, max) = Stats(x);
        double expectedStd = spec.StartsWith("xavier") ? Math.Sqrt(2.0 / (576 + 2304)) : Math.Sqrt(2.0 / 576);
        Assert.True(Math.Abs(mean) < 0.01 * expectedStd, $"{spec} mean {mean}");
        Assert.True(Math.Abs(std / expectedStd - 1) < 0.01, $"{spec} std {std} vs {expectedStd}");
        if (!spec.EndsWith("normal"))
        {
            var bound = expectedStd * Math.Sqrt(3);
            Assert.True(min >= -bound && max < bound, $"{spec} range [{min}, {max}] outside ±{bound}");
            Assert.True(max > 0.99 * bound && min < -0.99 * bound, "uniform fills its range");
        }
    }

    [Fact]
    public void Normal_and_uniform_with_given_scale()
    {
        var x = new float[200_001]; // odd: the last Box–Muller pair is half used
        Initializers.Normal(x, new Random(2), 0.5, 0.01);
        var (m, s, _, _) = Stats(x);
        Assert.True(Math.Abs(m - 0.5) < 1e-4 && Math.Abs(s / 0.01 - 1) < 0.01, $"normal mean {m} std {s}");
        // fraction within one std of the mean is the normal's 68.27%
        var within = x.Count(v => Math.Abs(v - 0.5) < 0.01) / (double)x.Length;
        Assert.InRange(within, 0.678, 0.688);

        Initializer.Parse("uniform:0.1").Fill(x, [x.Length], new Random(3));
        (m, s, var min, var max) = Stats(x);
        Assert.True(min >= -0.1f && max < 0.1f && Math.Abs(m) < 1e-3 && Math.Abs(s / (0.2 / Math.Sqrt(12)) - 1) < 0.01);
        Initializer.Parse("uniform:2:3").Fill(x, [x.Length], new Random(3));
        Assert.True(x.Min() >= 2f && x.Max() < 3f);
        Initializer.Parse("normal:1:0.5").Fill(x, [x.Length], new Random(3));
        (m, s, _, _) = Stats(x);
        Assert.True(Math.Abs(m - 1) < 0.005 && Math.Abs(s / 0.5 - 1) < 0.01);
        Initializer.Parse("zeros").Fill(x, [x.Length], new Random(3));
        Assert.All(x, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Same_seed_same_values_other_seed_other_values()
    {
        var t1 = new Tensor(16, 8);
        var t2 = new Tensor(16, 8);
        var t3 = new Tensor(16, 8);
        var init = Initializer.Parse("he_normal");
        init.Fill(t1, new Random(42));
        init.Fill(t2, new Random(42));
        init.Fill(t3, new Random(43));
        Assert.Equal(t1.ToArray(), t2.ToArray());
        Assert.NotEqual(t1.ToArray(), t3.ToArray());
    }

    [Fact]
    public void Gain_can_be_given()
    {
        var x = new float[100 * 400];
        Initializer.Parse("xavier:2").Fill(x, [100, 400], new Random(5));
        var bound = 2 * Math.Sqrt(6.0 / 500);
        Assert.True(x.Max() < bound && x.Max() > 0.99 * bound);
    }

    [Theory]
    [InlineData("orthogonal", "Unknown initializer")]
    [InlineData("normal:x", "is not a number")]
    [InlineData("normal:-1", "std must be >= 0")]
    [InlineData("uniform:3:2", "a <= b")]
    [InlineData("he:1:2", "too many fields")]
    public void Bad_specs_name_the_problem(string spec, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => Initializer.Parse(spec));
        Assert.Contains(expected, e.Message);
        Assert.Contains(spec, e.Message);
    }
}

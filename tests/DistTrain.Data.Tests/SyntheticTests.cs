// Synthetic sets: labels checked by an independent rule (angle via Atan2 for quadrants, the sign of
// x·y for XOR, distance to each spiral arm), determinism per seed, and normalization statistics.
using DistTrain.Data.Sources;
using Xunit;

namespace DistTrain.Data.Tests;

public class SyntheticTests
{
    [Fact]
    public void QuadrantLabelsMatchTheAngle()
    {
        var ds = Synthetic.Quadrants(5000, seed: 3);
        Assert.Equal([2], ds.SampleShape);
        Assert.Equal(4, ds.Classes);
        var seen = new int[4];
        for (int i = 0; i < ds.Count; i++)
        {
            float x = ds.Features[2 * i], y = ds.Features[2 * i + 1];
            Assert.InRange(x, -1f, 1f); Assert.InRange(y, -1f, 1f);
            double a = Math.Atan2(y, x); // (−π, π]
            int expected = a >= Math.PI / 2 ? 1 : a >= 0 ? 0 : a >= -Math.PI / 2 ? 3 : 2;
            Assert.Equal(expected, ds.Labels[i]);
            seen[ds.Labels[i]]++;
        }
        Assert.All(seen, n => Assert.InRange(n, 1100, 1400)); // uniform: ~1250 each
    }

    [Fact]
    public void QuadrantMarginKeepsPointsAwayFromAxes()
    {
        var ds = Synthetic.Quadrants(2000, seed: 1, margin: 0.1f);
        Assert.All(ds.Features, v => Assert.True(MathF.Abs(v) >= 0.1f));
    }

    [Fact]
    public void XorLabelIsSignOfProduct()
    {
        var ds = Synthetic.Xor(4000, seed: 8);
        Assert.Equal(2, ds.Classes);
        int ones = 0;
        for (int i = 0; i < ds.Count; i++)
        {
            double p = (double)ds.Features[2 * i] * ds.Features[2 * i + 1];
            Assert.Equal(p < 0 ? 1 : 0, ds.Labels[i]);
            ones += ds.Labels[i];
        }
        Assert.InRange(ones, 1800, 2200);
    }

    [Fact]
    public void SpiralPointsLieOnTheirOwnArm()
    {
        const double turns = 1.5;
        var ds = Synthetic.TwoSpirals(1000, seed: 4, noise: 0f, turns: turns);
        Assert.Equal(2, ds.Classes);
        Assert.Equal(500, ds.Labels.Count(l => l == 1));
        for (int i = 0; i < ds.Count; i++)
        {
            double x = ds.Features[2 * i], y = ds.Features[2 * i + 1], r = Math.Sqrt(x * x + y * y);
            Assert.InRange(r, 0.1 - 1e-6, 1.0 + 1e-6);
            // Recover the parameter from the radius, then rebuild both arms' points there.
            double t = (r - 0.1) / 0.9, a = 2 * Math.PI * turns * t;
            double d0 = Math.Sqrt(Math.Pow(x - r * Math.Cos(a), 2) + Math.Pow(y - r * Math.Sin(a), 2));
            double d1 = Math.Sqrt(Math.Pow(x + r * Math.Cos(a), 2) + Math.Pow(y + r * Math.Sin(a), 2));
            int arm = d0 < d1 ? 0 : 1;
            Assert.True(Math.Min(d0, d1) < 1e-4, $"point {i} ({x}, {y}) is {Math.Min(d0, d1)} from its arm");
            Assert.Equal(arm, ds.Labels[i]);
        }
    }

    [Theory]
    [InlineData("quadrants")]
    [InlineData("spirals")]
    [InlineData("xor")]
    public void SameSeedSameBitsOtherSeedOtherData(string name)
    {
        var a = Synthetic.Create(name, 300, 11, noise: 0.05f);
        var b = Synthetic.Create(name, 300, 11, noise: 0.05f);
        var c = Synthetic.Create(name, 300, 12, noise: 0.05f);
        var test = Synthetic.Create(name, 300, 11, noise: 0.05f, split: DataSplit.Test);
        Assert.Equal(a.Fingerprint(), b.Fingerprint());
        Assert.NotEqual(a.Fingerprint(), c.Fingerprint());
        Assert.NotEqual(a.Features, test.Features);
    }

    [Fact]
    public void UnknownNameListsValidOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => Synthetic.Create("moons", 10, 0));
        Assert.Contains("quadrants, spirals, xor", e.Message);
    }

    [Fact]
    public void PerFeatureNormalizationUsesTrainStatistics()
    {
        // Features (2): column 0 = 1, 3, 5 (mean 3, std √(8/3)); column 1 constant 7 (std → 1).
        var train = new Dataset("t", [2], [1, 7, 3, 7, 5, 7], [0, 0, 0], 1);
        var test = new Dataset("v", [2], [3, 7, 9, 8], [0, 0], 1);
        var norm = Normalization.FitPerFeature(train);
        Assert.Equal([3f, 7f], norm.Mean);
        Assert.Equal((float)Math.Sqrt(8.0 / 3), norm.Std[0], 6);
        Assert.Equal(1f, norm.Std[1]);
        var t = norm.Apply(test);
        float s = (float)Math.Sqrt(8.0 / 3);
        Assert.Equal([0f, 0f, 6f / s, 1f], t.Features);
        Assert.Equal([3f, 7f, 9f, 8f], test.Features); // Apply copies
        var z = norm.Apply(train);
        Assert.Equal(0.0, z.Features.Where((_, i) => i % 2 == 0).Average(v => (double)v), 6);
        Assert.Throws<ArgumentException>(() => norm.Apply(new Dataset("w", [3], [1, 2, 3], [0], 1)));
    }

    [Fact]
    public void GlobalNormalizationOverAllValues()
    {
        var train = new Dataset("img", [1, 2, 2], [0, 0.5f, 1, 0.5f, 0, 0, 1, 1], [0, 1], 2);
        var norm = Normalization.FitGlobal(train);
        Assert.True(norm.Global);
        Assert.Equal(0.5f, norm.Mean[0]);
        Assert.Equal((float)Math.Sqrt(0.1875), norm.Std[0], 6); // squares of deviations: 6·0.25 + 2·0 over 8
        norm.ApplyInPlace(train);
        Assert.Equal(0.0, train.Features.Average(v => (double)v), 6);
        Assert.Equal(1.0, Math.Sqrt(train.Features.Average(v => (double)v * v)), 5);
    }
}

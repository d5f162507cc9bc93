using DistTrain.Cli.Bench;
using Xunit;

namespace DistTrain.Cli.Tests;

public sealed class StatsTests
{
    [Fact]
    public void MedianAndQuartilesInterpolateBetweenRanks()
    {
        double[] v = [4, 1, 3, 2];
        Assert.Equal(2.5, Stats.Median(v));            // mean of the two middle values
        Assert.Equal(3.0, Stats.Median([5, 3, 1]));    // the middle one
        Assert.Equal(1.75, Stats.Quantile(v, 0.25), 12); // rank 0.75 of 1, 2, 3, 4
        Assert.Equal(3.25, Stats.Quantile(v, 0.75), 12);
        Assert.True(double.IsNaN(Stats.Median([])));
    }
}

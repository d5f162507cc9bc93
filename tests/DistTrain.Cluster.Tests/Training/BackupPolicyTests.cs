using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class BackupPolicyTests
{
    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    [Fact]
    public void NoBackupBeforeEnoughMicroBatchesAreTimedThenTheMultipleOfTheirMedian()
    {
        var p = new BackupPolicy(2);
        for (int i = 0; i < BackupPolicy.MinSamples - 1; i++) p.Completed(Ms(10 * (i + 1)));
        Assert.Null(p.After);
        p.Completed(Ms(1000)); // 10, 20, ..., 70, 1000: the median of 8 is (40 + 50) / 2; one outlier does not move it far
        Assert.Equal(Ms(45), p.Median);
        Assert.Equal(Ms(90), p.After);
    }

    [Fact]
    public void TheMedianFollowsTheRecentWindowOnly()
    {
        var p = new BackupPolicy(3);
        for (int i = 0; i < 64; i++) p.Completed(Ms(100));
        for (int i = 0; i < 33; i++) p.Completed(Ms(10)); // 33 of the 64 kept are now 10 ms
        Assert.Equal(Ms(10), p.Median);
        Assert.Equal(Ms(30), p.After);
    }

    [Fact]
    public void ZeroMeansNeverAndOtherMultiplesBelowOneAreRefused()
    {
        var off = new BackupPolicy(0);
        for (int i = 0; i < 20; i++) off.Completed(Ms(5));
        Assert.Null(off.After);
        Assert.NotNull(off.Median);
        foreach (var bad in new[] { 0.5, -1, double.NaN, double.PositiveInfinity })
            Assert.Contains("0 (no backup copies) or at least 1", Assert.Throws<ArgumentOutOfRangeException>(() => new BackupPolicy(bad)).Message);
    }
}

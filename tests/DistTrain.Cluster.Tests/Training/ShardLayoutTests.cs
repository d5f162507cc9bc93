using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class ShardLayoutTests
{
    [Theory]
    [InlineData(0, 1)] [InlineData(1, 1)] [InlineData(10, 3)] [InlineData(421642, 2)] [InlineData(421642, 5)] [InlineData(17, 4)]
    public void RangesAreContiguousCoverEverythingAndAreAligned(int total, int shards)
    {
        var r = ShardLayout.Split(total, shards);
        Assert.Equal(shards, r.Length);
        Assert.Equal(0, r[0].Offset);
        for (int i = 1; i < r.Length; i++) Assert.Equal(r[i - 1].End, r[i].Offset);
        Assert.Equal(total, r[^1].End);
        for (int i = 1; i < r.Length; i++) Assert.True(r[i].Offset % 16 == 0 || r[i].Offset == total);
        if (total >= 1000) Assert.All(r, x => Assert.InRange(x.Length, total / shards - 16, total / shards + 16));
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ShardLayout.Split(10, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ShardLayout.Split(-1, 1));
    }
}

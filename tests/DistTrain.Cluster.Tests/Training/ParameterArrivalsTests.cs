// ParameterArrivals: a worker takes a version's values layer by layer only once they have arrived, never a mix.
using DistTrain.Cluster.Training;
using Xunit;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Tests.Training;

public class ParameterArrivalsTests
{
    private static readonly KeyRange[] TwoShards = [new(0, 100), new(100, 50)];

    [Fact]
    public void FramesInKeyOrderUncoverTheRangeFromItsStart()
    {
        var a = new ParameterArrivals(TwoShards);
        Assert.False(a.AllBegun(3, out _));
        Assert.True(a.Accept(0, 3, 0, 30));
        Assert.False(a.AllBegun(3, out _));           // shard 1 has sent nothing of version 3
        Assert.True(a.Accept(1, 3, 0, 50));
        Assert.True(a.AllBegun(3, out bool stale));
        Assert.False(stale);
        Assert.True(a.Covers(3, 0, 30));
        Assert.False(a.Covers(3, 0, 31));
        Assert.True(a.Covers(3, 100, 150));           // shard 1 whole
        Assert.False(a.Covers(3, 20, 120));           // touches shard 0 beyond what arrived
        Assert.False(a.AllComplete(3, out _));
        Assert.True(a.Accept(0, 3, 30, 70));
        Assert.True(a.Covers(3, 0, 150));
        Assert.True(a.AllComplete(3, out _));
        Assert.Equal(3, a.CompleteVersion(0));
        Assert.False(a.Covers(4, 0, 10));             // the next version has not begun
    }

    [Fact]
    public void OlderFramesAndPiecesAfterALostOneAreIgnored()
    {
        var a = new ParameterArrivals(TwoShards);
        Assert.True(a.Accept(0, 5, 0, 40));
        Assert.False(a.Accept(0, 4, 0, 100));         // older version
        Assert.False(a.Accept(0, 5, 60, 40));         // a gap: [40, 60) never came
        Assert.False(a.Covers(5, 0, 100));
        Assert.False(a.Accept(0, 6, 40, 60));         // a newer version must start at the range's start
        Assert.True(a.Covers(5, 0, 40));
        // A whole-range frame (a reconnect's push) of the same version completes it; overlapping pieces are fine.
        Assert.True(a.Accept(0, 5, 0, 100));
        Assert.Equal(5, a.CompleteVersion(0));
        Assert.True(a.Accept(0, 5, 20, 30));
        Assert.Equal(5, a.CompleteVersion(0));
    }

    [Fact]
    public void ANewerVersionMakesAnAssignmentStaleAndBreaksAGatedForward()
    {
        var a = new ParameterArrivals(TwoShards);
        a.Accept(0, 7, 0, 100); a.Accept(1, 7, 0, 50);
        a.Accept(0, 8, 0, 10);
        Assert.False(a.AllBegun(7, out bool stale));
        Assert.True(stale);
        Assert.False(a.AllComplete(7, out stale));
        Assert.True(stale);
        Assert.Throws<VersionPassedException>(() => a.Covers(7, 0, 10)); // another copy completed step 7: this one is given up
        Assert.True(a.Covers(7, 100, 150));           // shard 1 is still at 7
        Assert.Equal(-1, a.CompleteVersion(0));         // shard 0's pending values are half 7, half 8
        Assert.False(a.Intact(0));
        Assert.Equal(7, a.CompleteVersion(1));
    }

    [Fact]
    public void EmptyShardRangesAndOutOfRangeFrames()
    {
        var a = new ParameterArrivals([new(0, 10), new(10, 0)]);
        Assert.True(a.Accept(1, 2, 0, 0));
        Assert.Equal(2, a.CompleteVersion(1));
        Assert.True(a.Accept(0, 2, 0, 10));
        Assert.True(a.AllComplete(2, out _));
        Assert.True(a.Covers(2, 0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.Accept(0, 3, 5, 6));
    }
}

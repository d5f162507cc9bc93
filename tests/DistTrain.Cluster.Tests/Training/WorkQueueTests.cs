// WorkQueue: pulled leases, done only when every shard has the gradient, re-queue on leave/expiry.
using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class WorkQueueTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void LeasesLowestPendingFirstAndFinishesWhenEveryShardAcknowledges()
    {
        var q = new WorkQueue(shards: 2, TimeSpan.FromSeconds(30));
        q.Begin(0, 3);
        Assert.True(q.TryLease("a", T0, out var m0)); Assert.Equal(0, m0);
        Assert.True(q.TryLease("b", T0, out var m1)); Assert.Equal(1, m1);
        Assert.True(q.TryLease("a", T0, out var m2)); Assert.Equal(2, m2);
        Assert.False(q.TryLease("c", T0, out _));
        Assert.False(q.Acknowledge(0, 0, 0));
        Assert.True(q.Acknowledge(0, 0, 1));
        Assert.False(q.Acknowledge(0, 0, 1)); // duplicate
        Assert.Equal(1, q.DuplicateAcks);
        foreach (var m in new[] { 1, 2 }) { q.Acknowledge(0, m, 0); q.Acknowledge(0, m, 1); }
        Assert.True(q.StepDone);
        Assert.False(q.Acknowledge(5, 0, 0)); // stale step
    }

    [Fact]
    public void WorkerThatLeavesHasOnlyItsUnfinishedWorkRequeued()
    {
        var q = new WorkQueue(1, TimeSpan.FromMinutes(1));
        q.Begin(4, 4);
        q.TryLease("a", T0, out _); q.TryLease("b", T0, out _); q.TryLease("a", T0, out _); q.TryLease("b", T0, out _);
        q.Acknowledge(4, 0, 0); // a finished 0, still holds 2
        Assert.Equal(1, q.WorkerLeft("a"));
        Assert.True(q.TryLease("b", T0, out var again));
        Assert.Equal(2, again);
        Assert.False(q.TryLease("b", T0, out _));
    }

    [Fact]
    public void ExpiredLeaseIsHandedOutAgain()
    {
        var q = new WorkQueue(1, TimeSpan.FromSeconds(10));
        q.Begin(0, 1);
        q.TryLease("slow", T0, out _);
        Assert.False(q.TryLease("fast", T0.AddSeconds(9), out _));
        Assert.True(q.TryLease("fast", T0.AddSeconds(10), out var m));
        Assert.Equal(0, m);
        Assert.Equal("fast", q.HolderOf(0));
        Assert.Equal(1, q.Requeued);
    }
}

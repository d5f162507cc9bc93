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

    [Fact]
    public void TheStragglerIsTheMicroBatchAnotherWorkerHasHeldLongestAtLeastTheGivenTime()
    {
        var q = new WorkQueue(shards: 1, TimeSpan.FromSeconds(30));
        q.Begin(0, 4);
        q.TryLease("a", T0, out _);                          // 0: a since T0
        q.TryLease("b", T0.AddMilliseconds(10), out _);      // 1: b since 10 ms
        q.TryLease("b", T0.AddMilliseconds(20), out _);      // 2: b since 20 ms
        q.Acknowledge(0, 0, 0);                              // 0 done
        var now = T0.AddMilliseconds(100);
        static bool None(int _) => false;
        Assert.True(q.TryFindStraggler("a", now, TimeSpan.FromMilliseconds(50), None, out int mb));
        Assert.Equal(1, mb);                                 // held 90 ms, longer than 2's 80 ms; 0 is done, 3 not leased
        Assert.True(q.TryFindStraggler("a", now, TimeSpan.FromMilliseconds(50), m => m == 1, out mb));
        Assert.Equal(2, mb);                                 // 1 already has its copy
        Assert.False(q.TryFindStraggler("a", now, TimeSpan.FromMilliseconds(85), m => m == 1, out _)); // 2 held 80 ms only
        Assert.False(q.TryFindStraggler("b", now, TimeSpan.Zero, None, out _)); // never a copy of one's own work
        Assert.Equal("b", q.HolderOf(1));                    // finding it leaves the lease where it is
    }
}

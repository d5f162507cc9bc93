// AsyncWorkQueue: plan order without a step barrier, the stale-synchronous bound, done only when every
// shard applied it, and a crashed worker's micro-batch going out first again.
using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class AsyncWorkQueueTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private static (long Step, int Mb) Lease(AsyncWorkQueue q, string w, int s, DateTime? at = null)
    {
        Assert.True(q.TryLease(w, at ?? T0, s, out long step, out int mb), $"{w} got nothing");
        return (step, mb);
    }

    private static void Done(AsyncWorkQueue q, (long Step, int Mb) x, int shards = 1)
    {
        for (int s = 0; s < shards; s++) q.Acknowledge(x.Step, x.Mb, s, out _);
    }

    [Fact]
    public void HandsOutAcrossStepsInPlanOrderWithoutWaitingForAStepToFinish()
    {
        var q = new AsyncWorkQueue(steps: 3, microBatchesPerStep: 2, shards: 1, TimeSpan.FromMinutes(1));
        var got = Enumerable.Range(0, 5).Select(i => Lease(q, $"w{i}", 10)).ToArray();
        Assert.Equal([(0L, 0), (0L, 1), (1L, 0), (1L, 1), (2L, 0)], got);
        Assert.Equal(3, q.MinVersion(2, 0, staleness: 1)); // ordinal 4 − 1
        Assert.Equal(0, q.MinVersion(0, 1, staleness: 4));
    }

    [Fact]
    public void StalenessBoundKeepsWorkersWithinSOfTheSlowestUnfinishedMicroBatch()
    {
        var q = new AsyncWorkQueue(steps: 4, microBatchesPerStep: 2, shards: 1, TimeSpan.FromMinutes(1));
        // S = 0 is sequential: nothing goes out until the previous micro-batch is done.
        var a = Lease(q, "a", 0);
        Assert.False(q.TryLease("b", T0, 0, out _, out _));
        Done(q, a);
        var b = Lease(q, "b", 0);
        Assert.Equal((0L, 1), b);
        // S = 2: with ordinal 1 unfinished (a straggler), ordinals 2 and 3 may go out, 4 may not.
        Lease(q, "c", 2); Lease(q, "d", 2);
        Assert.False(q.TryLease("e", T0, 2, out _, out _));
        Done(q, (1, 0)); Done(q, (1, 1)); // the fast ones finish; the straggler still holds ordinal 1
        Assert.False(q.TryLease("e", T0, 2, out _, out _));
        Assert.Equal(1, q.LowestUndone);
        Done(q, b);
        Assert.Equal(4, q.LowestUndone);
        Assert.Equal((2L, 0), Lease(q, "e", 2));
    }

    /// <summary>A checkpoint's fence: nothing at or past it goes out, a re-queued micro-batch before it still does, and the queue
    /// drains to exactly the fence; a resumed queue starts with the fence's micro-batches done and none after them handed out.</summary>
    [Fact]
    public void NothingPastTheFenceGoesOutSoTheQueueDrainsToItAndAResumedQueueStartsThere()
    {
        var q = new AsyncWorkQueue(steps: 4, microBatchesPerStep: 2, shards: 2, TimeSpan.FromMinutes(1)) { Fence = 4 };
        var got = Enumerable.Range(0, 4).Select(i => Lease(q, $"w{i}", 10)).ToArray();
        Assert.False(q.TryLease("w4", T0, 10, out _, out _)); // ordinal 4 is the fence, though the staleness bound allows it
        Assert.Equal(1, q.WorkerLeft("w2"));                   // ordinal 2 goes back, and out again: it is before the fence
        Assert.Equal((1L, 0), Lease(q, "w5", 10));
        foreach (var x in got) Done(q, x, shards: 2);
        Assert.Equal(4, q.LowestUndone);
        Assert.False(q.TryLease("w6", T0, 10, out _, out _));
        q.Fence = long.MaxValue;                               // collected: the next ones go out
        Assert.Equal((2L, 0), Lease(q, "w6", 10));

        var resumed = new AsyncWorkQueue(steps: 4, microBatchesPerStep: 2, shards: 2, TimeSpan.FromMinutes(1));
        resumed.RestoreDone(4);
        Assert.Equal(4, resumed.DoneCount);
        Assert.Equal(4, resumed.LowestUndone);
        Assert.Equal([(2L, 0), (2L, 1), (3L, 0), (3L, 1)], Enumerable.Range(0, 4).Select(i => Lease(resumed, $"w{i}", 10)));
        Assert.Throws<ArgumentOutOfRangeException>(() => resumed.RestoreDone(9));
    }

    [Fact]
    public void DoneOnlyWhenEveryShardAppliedAndStepsReportTheirEnd()
    {
        var q = new AsyncWorkQueue(steps: 1, microBatchesPerStep: 2, shards: 2, TimeSpan.FromMinutes(1));
        var x = Lease(q, "a", 4); var y = Lease(q, "b", 4);
        Assert.False(q.Acknowledge(0, 0, 0, out _));
        Assert.True(q.Acknowledge(0, 0, 1, out bool stepDone));
        Assert.False(stepDone);
        Assert.False(q.Acknowledge(0, 0, 1, out _)); // repeat
        Assert.Equal(1, q.DuplicateAcks);
        q.Acknowledge(0, 1, 1, out _);
        Assert.True(q.Acknowledge(0, 1, 0, out stepDone));
        Assert.True(stepDone);
        Assert.True(q.AllDone);
        Assert.False(q.TryLease("c", T0, 4, out _, out _));
        Assert.False(q.Acknowledge(7, 0, 0, out _)); // unknown step
        _ = (x, y);
    }

    [Fact]
    public void WorkOfAWorkerThatLeftGoesOutFirstAndExpiredLeasesAgain()
    {
        var q = new AsyncWorkQueue(steps: 2, microBatchesPerStep: 2, shards: 2, TimeSpan.FromSeconds(60));
        var a0 = Lease(q, "a", 4); Lease(q, "b", 4);
        q.Acknowledge(a0.Step, a0.Mb, 0, out _); // shard 0 has a's gradient, shard 1 not yet
        Assert.Equal(1, q.WorkerLeft("a"));
        var later = T0.AddSeconds(45);
        Assert.Equal(a0, Lease(q, "c", 4, later)); // re-queued before the plan's next
        Assert.Equal("c", q.HolderOf(a0.Step, a0.Mb));
        Assert.Equal((1L, 0), Lease(q, "c", 4, later));
        // b's lease of (0,1) (taken at T0) expires at T0+61 s (timeout 60 s), c's (T0+45 s) not yet: (0,1) goes out again, counted.
        Assert.Equal((0L, 1), Lease(q, "d", 4, T0.AddSeconds(61)));
        Assert.Equal(2, q.Requeued);
        Done(q, a0, shards: 2);
        Assert.Equal(1, q.DoneCount); // shard 0's earlier acknowledgement still counts; shard 1's made it done
    }
}

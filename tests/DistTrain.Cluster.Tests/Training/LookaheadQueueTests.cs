// LookaheadQueue: a worker leases the next step only once the current one has nothing left to hand out,
// acknowledgements reach the right step, and a worker that leaves gives back the leases of both steps.
using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class LookaheadQueueTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void LeasesAheadOnlyWhenTheCurrentStepIsFullyLeased()
    {
        var q = new LookaheadQueue(shards: 1, TimeSpan.FromMinutes(1), microBatches: 2, totalSteps: 10);
        q.Begin(0);
        Assert.True(q.TryLease("a", T0, out var s, out var m)); Assert.Equal((0L, 0), (s, m));
        Assert.True(q.TryLease("b", T0, out s, out m)); Assert.Equal((0L, 1), (s, m));
        Assert.True(q.TryLease("a", T0, out s, out m)); Assert.Equal((1L, 0), (s, m));
        Assert.True(q.TryLease("b", T0, out s, out m)); Assert.Equal((1L, 1), (s, m));
        Assert.False(q.TryLease("c", T0, out _, out _)); // never two steps ahead

        Assert.True(q.Acknowledge(0, 0, 0));
        Assert.True(q.Acknowledge(0, 1, 0));
        Assert.True(q.StepDone);
        q.Advance(T0);
        Assert.Equal(1, q.Step);
        Assert.False(q.StepDone);
        Assert.False(q.TryLeaseCurrent("c", T0, out _)); // step 1's leases moved with it
        Assert.True(q.Acknowledge(1, 1, 0));
        Assert.True(q.Acknowledge(1, 0, 0));
        Assert.True(q.StepDone);
        Assert.Equal(0, q.DuplicateAcks);
    }

    [Fact]
    public void AdvanceWithoutLeasesAheadStartsAnEmptyStep()
    {
        var q = new LookaheadQueue(1, TimeSpan.FromMinutes(1), 3, 10);
        q.Begin(4);
        for (int i = 0; i < 3; i++) { q.TryLease("a", T0, out _, out var m); q.Acknowledge(4, m, 0); }
        q.Advance(T0);
        Assert.Equal(5, q.Step);
        Assert.True(q.TryLease("a", T0, out var s, out var mb));
        Assert.Equal((5L, 0), (s, mb));
    }

    [Fact]
    public void NothingIsLeasedBeyondTheLastStep()
    {
        var q = new LookaheadQueue(1, TimeSpan.FromMinutes(1), 1, totalSteps: 1);
        q.Begin(0);
        Assert.True(q.TryLease("a", T0, out _, out _));
        Assert.False(q.TryLease("b", T0, out _, out _));
    }

    [Fact]
    public void WorkerThatLeavesGivesBackTheLeasesOfBothSteps()
    {
        var q = new LookaheadQueue(2, TimeSpan.FromMinutes(1), 2, 10);
        q.Begin(0);
        q.TryLease("a", T0, out _, out _);   // 0/0
        q.TryLease("b", T0, out _, out _);   // 0/1
        q.TryLease("b", T0, out var s, out var m); // 1/0, b waits ahead
        Assert.Equal((1L, 0), (s, m));
        Assert.Equal(2, q.WorkerLeft("b"));   // its current lease 0/1 is back ...
        Assert.True(q.TryLeaseCurrent("a", T0, out var again));
        Assert.Equal(1, again);
        Assert.True(q.TryLease("c", T0, out s, out m)); // ... and so is its lease ahead
        Assert.Equal((1L, 0), (s, m));
        Assert.Equal(2, q.Requeued);
    }

    [Fact]
    public void ExpiredLeaseOfTheCurrentStepGoesToAWorkerWaitingAhead()
    {
        var q = new LookaheadQueue(1, TimeSpan.FromSeconds(30), 2, 10);
        q.Begin(0);
        q.TryLease("stuck", T0, out _, out _);            // 0/0, never finishes
        q.TryLease("fast", T0, out _, out _);             // 0/1
        q.Acknowledge(0, 1, 0);
        q.TryLease("fast", T0, out var s, out var m);     // waits ahead on 1/0
        Assert.Equal((1L, 0), (s, m));
        Assert.False(q.TryLeaseCurrent("fast", T0.AddSeconds(29), out _));
        Assert.True(q.TryLeaseCurrent("fast", T0.AddSeconds(30), out var again)); // the coordinator's tick
        Assert.Equal(0, again);
        Assert.True(q.Acknowledge(0, 0, 0));
        Assert.True(q.StepDone);
        Assert.Equal(1, q.Requeued);
    }

    [Fact]
    public void AcknowledgementOfAnUnknownStepIsCountedNotApplied()
    {
        var q = new LookaheadQueue(1, TimeSpan.FromMinutes(1), 1, 10);
        q.Begin(3);
        Assert.False(q.Acknowledge(7, 0, 0));
        Assert.Equal(1, q.DuplicateAcks);
    }

    [Fact]
    public void ALeaseAheadAgesOnlyOnceItsStepIsCurrent()
    {
        var lease = TimeSpan.FromSeconds(1);
        var q = new LookaheadQueue(1, lease, 1, 2);                                  // two steps: nothing to lease beyond step 1
        q.Begin(0);
        Assert.True(q.TryLease("a", T0, out var s, out _)); Assert.Equal(0L, s);
        Assert.True(q.TryLease("b", T0, out s, out _)); Assert.Equal(1L, s);        // b waits ahead on step 1
        var late = T0 + 10 * lease;                                                   // step 0 takes long (a's the straggler)
        Assert.True(q.TryLease("c", late, out s, out _)); Assert.Equal(0L, s);      // a's lease of step 0 expired: c takes it
        Assert.Equal("a", q.TakeExpiredHolder());
        Assert.False(q.TryLease("d", late, out _, out _));                           // b's lease ahead has not aged
        q.Acknowledge(0, 0, 0);
        q.Advance(late);                                                              // step 1 is current from now
        Assert.False(q.TryLease("d", late + lease / 2, out _, out _));
        Assert.True(q.TryLease("d", late + lease, out s, out _)); Assert.Equal(1L, s);
        Assert.Equal("b", q.TakeExpiredHolder());
    }
}

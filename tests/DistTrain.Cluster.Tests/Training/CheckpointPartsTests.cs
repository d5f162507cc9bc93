// The pure parts of cluster checkpoints: StatisticsLog (BatchNorm statistics folded in each mode's order
// whatever the arrival order) and SnapshotAssembly (frames of several shards joined in key order).
using DistTrain.Cluster.Training;
using Xunit;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Tests.Training;

public class CheckpointPartsTests
{
    [Fact]
    public void StatisticsFoldInMicroBatchOrderWhateverTheArrivalOrder()
    {
        var log = new StatisticsLog(2, 4);
        log.Begin(7, 3);
        foreach (int mb in new[] { 2, 0, 1 })
        {
            Assert.False(log.Has(7, mb));
            var slot = log.Reserve(7, mb, 2, out var reason);
            Assert.Equal(GradientDrop.None, reason);
            slot[0] = mb; slot[1] = 10 * mb;
            log.Commit(7, mb);
            Assert.True(log.Has(7, mb));
        }
        var order = new List<float>();
        Assert.True(log.FoldInOrder(s => order.Add(s[0])));
        Assert.Equal([0f, 1f, 2f], order);

        log.Reserve(7, 1, 2, out var dup);
        Assert.Equal(GradientDrop.Duplicate, dup);
        log.Reserve(8, 0, 2, out var early);
        Assert.Equal(GradientDrop.UnknownStep, early);
        log.Reserve(7, 0, 3, out var wrong);
        Assert.Equal(GradientDrop.WrongLength, wrong);
    }

    [Fact]
    public void AStepWithMissingOrAbortedStatisticsIsNotFolded()
    {
        var log = new StatisticsLog(1, 2);
        log.Begin(0, 2);
        log.Reserve(0, 0, 1, out _); log.Commit(0, 0);
        log.Reserve(0, 1, 1, out _); log.Abort(0, 1); // a lost connection mid-frame: may arrive again
        Assert.False(log.Has(0, 1));
        Assert.False(log.FoldInOrder(_ => throw new InvalidOperationException("must not fold")));
        Assert.True(new StatisticsLog(0, 2).Has(5, 1)); // a model without BatchNorm never waits
    }

    [Fact]
    public void AsyncStatisticsOfSeveralStepsWaitForTheirGradientAndAreBounded()
    {
        var log = new StatisticsLog(1, 2, maxPending: 3, stepWindow: long.MaxValue);
        log.Begin(0, 2);
        foreach (var (step, mb) in new[] { (5L, 1), (3L, 0), (9L, 0) })
        {
            log.Reserve(step, mb, 1, out var r)[0] = 10 * step + mb;
            Assert.Equal(GradientDrop.None, r);
            log.Commit(step, mb);
        }
        log.Reserve(4, 1, 1, out var full);
        Assert.Equal(GradientDrop.OutOfRange, full); // three pending: a fourth would grow memory
        var folded = new List<float>();
        Assert.True(log.FoldOne(9, 0, s => folded.Add(s[0])));   // the order the gradients are applied in
        Assert.True(log.FoldOne(3, 0, s => folded.Add(s[0])));
        Assert.False(log.FoldOne(3, 0, _ => throw new InvalidOperationException("folded twice")));
        Assert.Equal([90f, 30f], folded);
        Assert.Equal(1, log.Pending);
        log.Reserve(4, 1, 1, out var room);
        Assert.Equal(GradientDrop.None, room);
    }

    [Fact]
    public void LocalSgdRoundFoldsStepByStepWithChunksInOrderWithinAStep()
    {
        // 3 chunks (micro-batch positions) of a round, each with 2 local steps of 2 floats; the round has 2 steps.
        var log = new StatisticsLog(4, 3);
        log.Begin(6, 3);
        foreach (int c in new[] { 2, 0, 1 })
        {
            var slot = log.Reserve(6, c, 4, out var r);
            Assert.Equal(GradientDrop.None, r);
            for (int h = 0; h < 2; h++) { slot[2 * h] = 10 * h + c; slot[2 * h + 1] = -1; }
            log.Commit(6, c);
        }
        var order = new List<float>();
        Assert.True(log.FoldRound(2, 2, m => { Assert.Equal(2, m.Length); order.Add(m.Span[0]); }));
        Assert.Equal([0f, 1f, 2f, 10f, 11f, 12f], order);
        log.Reserve(6, 0, 4, out var dup);
        Assert.Equal(GradientDrop.Duplicate, dup);
        // A short last round folds only the steps it has.
        log.Begin(7, 1);
        new float[] { 1, 2, 3, 4 }.CopyTo(log.Reserve(7, 0, 4, out _));
        log.Commit(7, 0);
        int calls = 0;
        Assert.True(log.FoldRound(1, 2, m => { calls++; Assert.Equal(1f, m.Span[0]); }));
        Assert.Equal(1, calls);
    }

    [Fact]
    public void SnapshotJoinsShardsInKeyOrderAndCompletesOnceEveryPartArrived()
    {
        KeyRange[] ranges = [new(0, 3), new(3, 2)];
        var a = new SnapshotAssembly(12, ranges, stateBuffers: 2, buffersLength: 4);
        Assert.Null(a.Stage(SnapshotPart.Parameters, 11, 0, 0, 0, 3));    // another version
        Assert.Null(a.Stage(SnapshotPart.Parameters, 12, 1, 0, 0, 2));    // wrong offset for shard 1
        Assert.Null(a.Stage(SnapshotPart.OptimizerState, 12, 0, 2, 0, 3)); // no third state buffer
        var parts = new List<(SnapshotPart Part, int Shard, int State, float Base)>();
        for (int s = 0; s < 2; s++)
        {
            parts.Add((SnapshotPart.Parameters, s, 0, 0));
            parts.Add((SnapshotPart.OptimizerState, s, 0, 100));
            parts.Add((SnapshotPart.OptimizerState, s, 1, 200));
        }
        parts.Add((SnapshotPart.Buffers, 0, 0, 300));
        parts.Reverse(); // arrival order is free
        for (int i = 0; i < parts.Count; i++)
        {
            var (part, shard, state, b) = parts[i];
            var r = ranges[shard];
            var dst = part == SnapshotPart.Buffers ? a.Stage(part, 12, shard, state, 0, 4)! : a.Stage(part, 12, shard, state, r.Offset, r.Length)!;
            for (int k = 0; k < dst.Length; k++) dst[k] = b + (part == SnapshotPart.Buffers ? k : r.Offset + k);
            Assert.Equal(i == parts.Count - 1, a.Arrived(part, shard, state));
        }
        Assert.True(a.IsComplete);
        Assert.False(a.Arrived(SnapshotPart.Parameters, 0, 0)); // a repeat changes nothing
        Assert.Equal([0f, 1, 2, 3, 4], a.JoinValues());
        Assert.Equal([200f, 201, 202, 203, 204], a.JoinState(1));
        Assert.Equal([300f, 301, 302, 303], a.Buffers);
    }
}

// AsyncGradientQueue + ParameterShard.ApplyMicroBatch: gradients applied one by one in arrival order with the
// rate scaled by the micro-batch's share, duplicates dropped, staleness = versions applied since the one computed on.
using DistTrain.Cluster.Training;
using DistTrain.Nn.Optimizers;
using Xunit;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Tests.Training;

public class AsyncGradientQueueTests
{
    private static void Receive(AsyncGradientQueue q, long step, int mb, long version, float[] g)
    {
        var dst = q.Reserve(step, mb, version, g.Length, out var reason);
        Assert.Equal(GradientDrop.None, reason);
        g.CopyTo(dst);
        Assert.True(q.Commit(step, mb));
    }

    [Fact]
    public void AppliesEachGradientInArrivalOrderAsItsOwnUpdateAndCountsStaleness()
    {
        var q = new AsyncGradientQueue(rangeLength: 2, steps: 2, microBatchesPerStep: 2);
        var shard = new ParameterShard(0, new KeyRange(0, 2), [1f, 1f], new Sgd(2), step => step == 0 ? 0.8f : 0.4f, maxMicroBatches: 2);
        Receive(q, 1, 0, version: 0, [1f, 2f]);   // arrives first although it is later in the plan
        Receive(q, 0, 1, version: 0, [2f, 0f]);
        var expected = new[] { 1f, 1f };
        var staleness = new List<long>();
        while (q.TryDequeue(out var a))
        {
            var g = q.Gradient(a).ToArray();
            float lr = (a.Step == 0 ? 0.8f : 0.4f) * 0.5f; // share M/B = 0.5
            for (int i = 0; i < 2; i++) expected[i] -= lr * g[i];
            staleness.Add(shard.ApplyMicroBatch(q.Gradient(a), a.Step, 0.5f, a.Version));
            q.Release(a);
        }
        Assert.Equal(expected, shard.Values);
        Assert.Equal(0f, shard.Values[0], 1e-6f); // (1 − 0.2·1) − 0.4·2
        Assert.Equal(0.6f, shard.Values[1], 1e-6f); // (1 − 0.2·2) − 0.4·0
        Assert.Equal([0L, 1L], staleness);
        Assert.Equal(2, shard.Version);
    }

    [Fact]
    public void DropsDuplicatesWhileQueuedOrAppliedAndLetsAFailedReceiveArriveAgain()
    {
        var q = new AsyncGradientQueue(1, steps: 1, microBatchesPerStep: 3);
        Receive(q, 0, 0, 0, [1f]);
        q.Reserve(0, 0, 0, 1, out var dup);
        Assert.Equal(GradientDrop.Duplicate, dup);
        Assert.True(q.TryDequeue(out var a));
        q.Release(a);
        q.Reserve(0, 0, 5, 1, out dup);
        Assert.Equal(GradientDrop.Duplicate, dup); // applied: a late copy (expired lease) is never applied twice
        Assert.True(q.IsApplied(0, 0));

        q.Reserve(0, 1, 0, 1, out _);
        q.Abort(0, 1, GradientDrop.Corrupt);      // checksum failure: may arrive again
        q.Reserve(0, 1, 0, 1, out var again).Fill(float.NaN);
        Assert.Equal(GradientDrop.None, again);
        Assert.False(q.Commit(0, 1));             // not finite: dropped, may arrive again
        Assert.Equal(1, q.Dropped(GradientDrop.NotFinite));
        Receive(q, 0, 1, 0, [2f]);

        q.Reserve(3, 0, 0, 1, out var unknown);
        Assert.Equal(GradientDrop.UnknownStep, unknown);
        q.Reserve(0, 2, 0, 7, out var length);
        Assert.Equal(GradientDrop.WrongLength, length);
    }

    [Fact]
    public void ReusesSlotsSoASteadyStreamDoesNotGrowThePool()
    {
        var q = new AsyncGradientQueue(4, steps: 50, microBatchesPerStep: 2);
        for (int k = 0; k < 100; k++)
        {
            Receive(q, k / 2, k % 2, k, [1f, 2f, 3f, 4f]);
            Assert.True(q.TryDequeue(out var a));
            q.Release(a);
        }
        Assert.Equal(1, q.SlotCount);
        Assert.Equal(100, q.AppliedCount);
    }
}

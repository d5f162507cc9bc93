// ParameterShard: applies exactly once per complete step, with the in-order sum and the schedule's rate.
using DistTrain.Cluster.Training;
using DistTrain.Nn.Optimizers;
using Xunit;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Tests.Training;

public class ParameterShardTests
{
    /// <summary>Plain SGD written here, independent of the library's optimizers.</summary>
    private sealed class PlainSgd(int length) : Optimizer(length)
    {
        public readonly List<(float Lr, long T)> Calls = [];
        public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t)
        {
            Calls.Add((lr, t));
            for (int i = 0; i < values.Length; i++) values[i] -= lr * grads[i];
        }
        public override string ToString() => "PlainSgd";
    }

    [Fact]
    public void AppliesTheInOrderSumOncePerStepAndAdvancesTheVersion()
    {
        var opt = new PlainSgd(3);
        var shard = new ParameterShard(0, new KeyRange(6, 3), [1f, 2f, 3f], opt, step => 0.5f / (step + 1), maxMicroBatches: 4);
        shard.BeginStep(0, 2);
        Assert.False(shard.TryApply());
        shard.Aggregator.Accept(0, 1, [1f, 1f, 1f]);
        Assert.False(shard.TryApply());
        shard.Aggregator.Accept(0, 0, [1f, 0f, -1f]);
        Assert.True(shard.TryApply());
        Assert.False(shard.TryApply());
        Assert.Equal(new[] { 0f, 1.5f, 3f }, shard.Values);
        Assert.Equal(1, shard.Version);
        shard.BeginStep(1, 1);
        shard.Aggregator.Accept(1, 0, [4f, 4f, 4f]);
        Assert.True(shard.TryApply());
        Assert.Equal(new[] { -1f, 0.5f, 2f }, shard.Values);
        Assert.Equal([(0.5f, 1L), (0.25f, 2L)], opt.Calls);
        Assert.Throws<InvalidOperationException>(() => shard.BeginStep(5, 1));
    }

    [Fact]
    public void MismatchedSizesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new ParameterShard(1, new KeyRange(0, 3), [1f, 2f], new PlainSgd(3), _ => 1f, 1));
        Assert.Throws<ArgumentException>(() => new ParameterShard(1, new KeyRange(0, 2), [1f, 2f], new PlainSgd(3), _ => 1f, 1));
    }
    [Fact]
    public void AShardOverTheCallersValuesUpdatesThemInPlace()
    {
        // The one-process trainer's shard: the model's own parameter array, no copy; a restore to the same memory only moves the step.
        float[] model = [1f, 2f, 3f];
        var shard = ParameterShard.Over(model, new PlainSgd(3), _ => 1f, maxMicroBatches: 1);
        Assert.Same(model, shard.Values);
        shard.BeginStep(0, 1);
        Assert.Equal(ChunkCommit.Completed, shard.Aggregator.FoldInOrder(0, 0, [1f, 1f, 1f]));
        Assert.True(shard.TryApply());
        Assert.Equal(new[] { 0f, 1f, 2f }, model);
        shard.Restore(model, 7);
        Assert.Equal(7, shard.Version);
        Assert.Equal(new[] { 0f, 1f, 2f }, model);
    }
}

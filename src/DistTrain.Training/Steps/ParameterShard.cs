// One parameter-server shard's state, as pure code: the values of its key range, the step aggregator
// and the optimizer over the range (DESIGN contracts 1, 2). A cluster's shard core holds one per key range;
// the one-process Trainer holds one over the whole vector, on the model's own values (Over), so both apply
// a step with the same ordered sum, clip and optimizer call.
using DistTrain.Nn.Optimizers;

namespace DistTrain.Training.Steps;

public sealed class ParameterShard
{
    private readonly Func<long, float> _learningRate;

    /// <param name="initial">This shard's slice of the initial flat parameter vector (copied).</param>
    /// <param name="optimizer">Optimizer whose state covers exactly this range.</param>
    /// <param name="learningRate">Learning rate for a given step (the schedule).</param>
    /// <param name="maxMicroBatches">Largest number of micro-batches a step may have.</param>
    public ParameterShard(int shard, KeyRange range, ReadOnlySpan<float> initial, Optimizer optimizer,
        Func<long, float> learningRate, int maxMicroBatches)
        : this(shard, range, Checked(shard, range, initial).ToArray(), optimizer, learningRate, maxMicroBatches) { }

    private ParameterShard(int shard, KeyRange range, float[] values, Optimizer optimizer, Func<long, float> learningRate, int maxMicroBatches)
    {
        if (optimizer.Length != range.Length)
            throw new ArgumentException($"Shard {shard}: optimizer covers {optimizer.Length} floats, the range {range.Length}.", nameof(optimizer));
        if (optimizer is GroupedOptimizer grouped) grouped.Bind(range.Offset);   // its groups are in the whole vector's coordinates
        Shard = shard;
        Range = range;
        Values = values;
        Optimizer = optimizer;
        _learningRate = learningRate;
        Aggregator = new StepAggregator(range.Length, maxMicroBatches);
    }

    /// <summary>One process: a single shard over the whole of <paramref name="values"/> (the model's parameters), updated in
    /// place.</summary>
    public static ParameterShard Over(float[] values, Optimizer optimizer, Func<long, float> learningRate, int maxMicroBatches) =>
        new(0, new KeyRange(0, values.Length), values, optimizer, learningRate, maxMicroBatches);

    private static ReadOnlySpan<float> Checked(int shard, KeyRange range, ReadOnlySpan<float> initial) =>
        initial.Length == range.Length ? initial
            : throw new ArgumentException($"Shard {shard} owns {range} ({range.Length} floats) but got {initial.Length} initial values.", nameof(initial));

    public int Shard { get; }
    public KeyRange Range { get; }
    /// <summary>The current version of this shard's range.</summary>
    public float[] Values { get; }
    public Optimizer Optimizer { get; }
    public StepAggregator Aggregator { get; }
    /// <summary>Number of updates applied; the parameters after step t have version t+1.</summary>
    public long Version { get; private set; }

    public void BeginStep(long step, int microBatches)
    {
        if (step != Version)
            throw new InvalidOperationException($"Shard {Shard} is at version {Version} and cannot begin step {step}.");
        Aggregator.Begin(step, microBatches);
    }

    /// <summary>Whether the current step's sum is complete (every micro-batch folded) and not yet applied.</summary>
    public bool StepComplete => Aggregator.IsComplete && Aggregator.Step == Version;

    /// <summary>This shard's exact share of the step's Σ g² (clipping: the coordinator merges every shard's share).</summary>
    public ExactSquareSum SquareSum()
    {
        if (!StepComplete) throw new InvalidOperationException($"Shard {Shard}: step {Version} is not complete.");
        var acc = new ExactSquareSum();
        acc.Add(Aggregator.Sum);
        return acc;
    }

    /// <summary>
    /// Applies the optimizer with the complete sum, publishing version step+1. False while gradients are missing.
    /// With <paramref name="maxNorm"/> &gt; 0 the sum is first clipped to that global norm, <paramref name="globalNorm"/> being
    /// the norm of the whole vector's sum (every shard's share): the one-process Trainer's clip, bit for bit.
    /// </summary>
    public bool TryApply(float maxNorm = 0f, double globalNorm = double.NaN)
    {
        if (!StepComplete) return false;
        if (maxNorm > 0f && double.IsFinite(globalNorm))
        {
            float coef = GradientClipping.ClipCoefficient(globalNorm, maxNorm);
            if (coef < 1f) Aggregator.ScaleSum(coef);
        }
        Optimizer.Step(Values, Aggregator.Sum, _learningRate(Version), Version + 1);
        Version++;
        return true;
    }

    /// <summary>
    /// Async mode: applies one micro-batch gradient now, as its own optimizer update with the schedule's rate for
    /// <paramref name="step"/> times <paramref name="share"/> (M/B: the micro-batch's share of a global batch), and
    /// publishes the next version. Returns the staleness τ = versions applied since <paramref name="computedOn"/>.
    /// </summary>
    public long ApplyMicroBatch(ReadOnlySpan<float> gradient, long step, float share, long computedOn)
    {
        long staleness = Version - computedOn;
        Optimizer.Step(Values, gradient, _learningRate(step) * share, Version + 1);
        Version++;
        return staleness;
    }

    /// <summary>Restores a checkpointed state (values of this range at a version).</summary>
    public void Restore(ReadOnlySpan<float> values, long version)
    {
        if (values.Length != Values.Length) throw new ArgumentException($"Shard {Shard}: restore of {values.Length} floats into {Values.Length}.", nameof(values));
        values.CopyTo(Values); // a no-op when they are the same memory (a one-process trainer moving to a checkpoint's step)
        Version = version;
    }
}

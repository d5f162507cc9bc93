// The PS "optimizer" of local-sgd: the shard's values become the average of the workers' parameters,
// θ ← θ + (Σ_c δ_c)·(1/C), where δ_c = θ_c − θ is chunk c's parameter delta and the sum is the
// aggregator's (folded in chunk order, so the result does not depend on arrival order). No state.
using DistTrain.Nn.Optimizers;

namespace DistTrain.Cluster.Training;

public sealed class DeltaAveraging : Optimizer
{
    public DeltaAveraging(int length, int chunks) : base(length)
    {
        if (chunks < 1) throw new ArgumentOutOfRangeException(nameof(chunks), chunks, "Averaging needs at least one chunk per round.");
        Chunks = chunks;
        Weight = 1f / chunks;
    }

    public int Chunks { get; }
    public float Weight { get; }

    /// <summary>values += deltaSum·(1/C); <paramref name="lr"/> and <paramref name="t"/> are not used (averaging has no rate).</summary>
    public override void Step(Span<float> values, ReadOnlySpan<float> deltaSum, float lr, long t) => Apply(values, deltaSum, Weight);

    /// <summary>The averaging itself, also the test oracle's: a multiply then an add per element (never fused), so any vector width gives the same bits.</summary>
    public static void Apply(Span<float> values, ReadOnlySpan<float> deltaSum, float weight)
    {
        if (values.Length != deltaSum.Length) throw new ArgumentException($"Averaging {deltaSum.Length} deltas into {values.Length} values.", nameof(deltaSum));
        for (int i = 0; i < values.Length; i++) values[i] += deltaSum[i] * weight;
    }

    public override string ToString() => $"DeltaAveraging(chunks={Chunks})";
}

// Staleness of async updates: τ = (shard version when the gradient was applied) − (version it was
// computed on), i.e. how many other updates landed in between. Count, mean and max; pure.
namespace DistTrain.Cluster.Training;

public sealed class StalenessStats
{
    public long Count { get; private set; }
    public long Sum { get; private set; }
    public long Max { get; private set; }
    public double Mean => Count == 0 ? double.NaN : (double)Sum / Count;

    public void Add(long staleness)
    {
        if (staleness < 0) throw new ArgumentOutOfRangeException(nameof(staleness), staleness, "A gradient cannot be computed on a version newer than the shard's.");
        Count++;
        Sum += staleness;
        if (staleness > Max) Max = staleness;
    }

    public override string ToString() => Count == 0 ? "staleness n/a" : $"staleness mean {Mean:F2}, max {Max} over {Count} updates";
}

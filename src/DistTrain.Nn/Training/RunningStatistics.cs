// The running statistics (BatchNorm buffers) of a model as one flat vector of per-batch statistics:
// after a training forward, Gather copies every BatchNorm layer's batch mean and variance (in layer
// order); Fold replays such a vector into another replica's buffers with the layers' own update.
// A cluster sends one vector per micro-batch and folds them in micro-batch order, so its buffers get
// the bits the one-process Trainer gets from the same micro-batch sequence (DESIGN contract 2).
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;

namespace DistTrain.Nn.Training;

public sealed class RunningStatistics
{
    private readonly BatchNormBase[] _layers;

    public RunningStatistics(Sequential model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        _layers = model.AllLayers.OfType<BatchNormBase>().ToArray();
        Length = _layers.Sum(l => l.StatisticsLength);
    }

    public Sequential Model { get; }
    /// <summary>Floats per micro-batch; 0 when the model keeps no running statistics.</summary>
    public int Length { get; }

    /// <summary>Copies the batch statistics of the last training forward into <paramref name="destination"/> (Length floats).</summary>
    public void Gather(Span<float> destination)
    {
        if (destination.Length != Length)
            throw new ArgumentException($"Statistics of {Length} floats do not fit a span of {destination.Length}.", nameof(destination));
        int o = 0;
        foreach (var l in _layers) { l.CopyBatchStatistics(destination.Slice(o, l.StatisticsLength)); o += l.StatisticsLength; }
    }

    /// <summary>Applies one micro-batch's statistics (from Gather on any replica) to this model's buffers.</summary>
    public void Fold(ReadOnlySpan<float> statistics)
    {
        if (statistics.Length != Length)
            throw new ArgumentException($"{statistics.Length} statistics given; the model {Model.GetType().Name} needs {Length}.", nameof(statistics));
        int o = 0;
        foreach (var l in _layers) { l.FoldStatistics(statistics.Slice(o, l.StatisticsLength)); o += l.StatisticsLength; }
    }
}

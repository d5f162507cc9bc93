// PS shard 0's staging of the BatchNorm batch statistics of one synchronous step (DESIGN contract 2):
// each micro-batch's statistics arrive (before its gradient, on the same connection) into a slot;
// when the step is applied they are folded into the running buffers in micro-batch index order, which
// is the order the one-process Trainer applies them. The shard accepts a micro-batch's gradient only
// once its statistics are here, so a step can never be applied with statistics missing. Pure; no actors.
namespace DistTrain.Cluster.Training;

public sealed class StatisticsLog
{
    private readonly float[][] _slots;
    private readonly byte[] _state;      // per micro-batch: 0 missing, 1 receiving, 2 arrived

    /// <param name="length">Floats of one micro-batch's statistics (RunningStatistics.Length); 0 = nothing to log.</param>
    public StatisticsLog(int length, int maxMicroBatches)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length));
        if (maxMicroBatches < 1) throw new ArgumentOutOfRangeException(nameof(maxMicroBatches), "At least one micro-batch per step.");
        Length = length;
        _slots = new float[maxMicroBatches][];
        for (int i = 0; i < maxMicroBatches; i++) _slots[i] = new float[length];
        _state = new byte[maxMicroBatches];
        Step = -1;
    }

    public int Length { get; }
    public long Step { get; private set; }
    public int MicroBatchCount { get; private set; }

    public void Begin(long step, int microBatches)
    {
        if (microBatches < 1 || microBatches > _slots.Length)
            throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, $"A step must have 1..{_slots.Length} micro-batches.");
        Step = step;
        MicroBatchCount = microBatches;
        Array.Clear(_state);
    }

    /// <summary>A slot to receive (step, micro-batch)'s statistics into, or a reason to drop them.</summary>
    public Span<float> Reserve(long step, int microBatch, int length, out GradientDrop reason)
    {
        reason = step != Step ? GradientDrop.UnknownStep
            : (uint)microBatch >= (uint)MicroBatchCount ? GradientDrop.OutOfRange
            : length != Length ? GradientDrop.WrongLength
            : _state[microBatch] == 2 ? GradientDrop.Duplicate
            : GradientDrop.None;
        if (reason != GradientDrop.None) return Span<float>.Empty;
        _state[microBatch] = 1;
        return _slots[microBatch];
    }

    /// <summary>The reserved slot was filled and its checksum verified.</summary>
    public void Commit(long step, int microBatch)
    {
        if (step == Step && (uint)microBatch < (uint)MicroBatchCount && _state[microBatch] == 1) _state[microBatch] = 2;
    }

    /// <summary>The receive failed: the statistics may arrive again.</summary>
    public void Abort(long step, int microBatch)
    {
        if (step == Step && (uint)microBatch < (uint)MicroBatchCount && _state[microBatch] == 1) _state[microBatch] = 0;
    }

    /// <summary>Whether (step, micro-batch)'s statistics are here; always true when there is nothing to log.</summary>
    public bool Has(long step, int microBatch) =>
        Length == 0 || (step == Step && (uint)microBatch < (uint)MicroBatchCount && _state[microBatch] == 2);

    /// <summary>Folds the step's statistics in micro-batch order through <paramref name="fold"/>; false (nothing folded) if any is missing.</summary>
    public bool FoldInOrder(Action<float[]> fold)
    {
        if (Length == 0) return true;
        for (int i = 0; i < MicroBatchCount; i++) if (_state[i] != 2) return false;
        for (int i = 0; i < MicroBatchCount; i++) fold(_slots[i]);
        return true;
    }
}

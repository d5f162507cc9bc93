// PS shard 0's staging of the BatchNorm batch statistics, for every mode (DESIGN contracts 2 and 5): each
// micro-batch's statistics arrive before its gradient, on the same connection, into a slot keyed by
// (step, micro-batch); the shard accepts a gradient only once its statistics are here, and folds them into
// the running buffers when it applies the gradient, in the order the mode applies work:
//   sync       the step's micro-batches in index order (what the one-process Trainer folds);
//   async      each micro-batch as its gradient is applied (arrival order, like the update itself);
//   local-sgd  a chunk carries one vector per local step; a round folds step by step, chunks in order
//              within a step (the order sync would fold those micro-batches in), so any worker count agrees.
// Slots are pooled and bounded (maxPending): a flood of statistics frames cannot grow memory. Pure; no actors;
// not thread-safe (the PS actor holds one lock).
using DistTrain.Training.Steps;
namespace DistTrain.Cluster.Training;

public sealed class StatisticsLog
{
    private readonly Dictionary<long, (int Slot, bool Arrived)> _entries = [];
    private readonly List<float[]> _slots = [];
    private readonly Stack<int> _free = new();
    private readonly int _maxPending;
    private readonly long _stepWindow;
    private long _foldedStep = -1;   // FoldInOrder / FoldRound folded this whole step: its statistics are duplicates now

    /// <param name="length">Floats of one micro-batch's statistics (RunningStatistics.Length × vectors per frame); 0 = nothing to log.</param>
    /// <param name="maxMicroBatches">Micro-batches of one step (keys are step · this + micro-batch).</param>
    /// <param name="maxPending">Slots held at most at once (received and not yet folded); more frames are refused.</param>
    /// <param name="stepWindow">Steps accepted from <see cref="Step"/> on: 1 where a step is applied whole before the next
    /// begins (sync, local-sgd rounds), more where micro-batches of several steps are in flight (async).</param>
    public StatisticsLog(int length, int maxMicroBatches, int maxPending = 0, long stepWindow = 1)
    {
        if (stepWindow < 1) throw new ArgumentOutOfRangeException(nameof(stepWindow));
        _stepWindow = stepWindow;
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length));
        if (maxMicroBatches < 1) throw new ArgumentOutOfRangeException(nameof(maxMicroBatches), "At least one micro-batch per step.");
        Length = length;
        MaxMicroBatches = maxMicroBatches;
        MicroBatchCount = maxMicroBatches;
        _maxPending = maxPending > 0 ? maxPending : 2 * maxMicroBatches;
        Step = -1;
    }

    public int Length { get; }
    public int MaxMicroBatches { get; }
    /// <summary>The oldest step still collected (sync: the step being collected); statistics of older steps are refused.</summary>
    public long Step { get; private set; }
    public int MicroBatchCount { get; private set; }
    /// <summary>Slots received or being received and not yet folded.</summary>
    public int Pending => _entries.Count;

    /// <summary>From now on statistics of steps before <paramref name="step"/> are refused; <paramref name="microBatches"/> is its count.</summary>
    public void Begin(long step, int microBatches)
    {
        if (microBatches < 1 || microBatches > MaxMicroBatches)
            throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, $"A step must have 1..{MaxMicroBatches} micro-batches.");
        Step = step;
        MicroBatchCount = microBatches;
        if (_entries.Count == 0) return;
        foreach (var (k, e) in _entries.ToArray())
            if (k / MaxMicroBatches < step) { _entries.Remove(k); _free.Push(e.Slot); }
    }

    private long Key(long step, int microBatch) => step * MaxMicroBatches + microBatch;

    /// <summary>A slot to receive (step, micro-batch)'s statistics into, or a reason to drop them.</summary>
    public Span<float> Reserve(long step, int microBatch, int length, out GradientDrop reason)
    {
        reason = step < Math.Max(Step, 0) || step < 0 || step - Math.Max(Step, 0) >= _stepWindow ? GradientDrop.UnknownStep
            : (uint)microBatch >= (uint)MicroBatchCount ? GradientDrop.OutOfRange
            : length != Length ? GradientDrop.WrongLength
            : step == _foldedStep || _entries.ContainsKey(Key(step, microBatch)) ? GradientDrop.Duplicate // arrived, or arriving on another connection
            : _entries.Count >= _maxPending ? GradientDrop.OutOfRange
            : GradientDrop.None;
        if (reason != GradientDrop.None) return Span<float>.Empty;
        if (_free.Count == 0) { _slots.Add(new float[Length]); _free.Push(_slots.Count - 1); }
        int slot = _free.Pop();
        _entries[Key(step, microBatch)] = (slot, false);
        return _slots[slot];
    }

    /// <summary>The reserved slot was filled and its checksum verified.</summary>
    public void Commit(long step, int microBatch)
    {
        long k = Key(step, microBatch);
        if (_entries.TryGetValue(k, out var e) && !e.Arrived) _entries[k] = (e.Slot, true);
    }

    /// <summary>The receive failed: the statistics may arrive again.</summary>
    public void Abort(long step, int microBatch)
    {
        long k = Key(step, microBatch);
        if (_entries.TryGetValue(k, out var e) && !e.Arrived) { _entries.Remove(k); _free.Push(e.Slot); }
    }

    /// <summary>Whether (step, micro-batch)'s statistics are here; always true when there is nothing to log.</summary>
    public bool Has(long step, int microBatch) =>
        Length == 0 || _entries.TryGetValue(Key(step, microBatch), out var e) && e.Arrived;

    /// <summary>Sync: folds the current step's statistics in micro-batch order through <paramref name="fold"/> and frees them;
    /// false (nothing folded) if any is missing.</summary>
    public bool FoldInOrder(Action<float[]> fold)
    {
        if (Length == 0) return true;
        for (int i = 0; i < MicroBatchCount; i++) if (!Has(Step, i)) return false;
        for (int i = 0; i < MicroBatchCount; i++) fold(Take(Step, i));
        _foldedStep = Step;
        return true;
    }

    /// <summary>Async: folds (step, micro-batch)'s statistics, whose gradient was just applied, and frees them; false if absent.</summary>
    public bool FoldOne(long step, int microBatch, Action<float[]> fold)
    {
        if (Length == 0) return true;
        if (!Has(step, microBatch)) return false;
        fold(Take(step, microBatch));
        return true;
    }

    /// <summary>
    /// Local-sgd: the current round's chunks each hold one vector of <paramref name="vectorLength"/> floats per local step;
    /// folds the first <paramref name="localSteps"/> of them step by step, chunks in order within a step. False if a chunk is missing.
    /// </summary>
    public bool FoldRound(int localSteps, int vectorLength, Action<ReadOnlyMemory<float>> fold)
    {
        if (Length == 0) return true;
        if (vectorLength <= 0 || (long)localSteps * vectorLength > Length)
            throw new ArgumentOutOfRangeException(nameof(localSteps), $"{localSteps} vectors of {vectorLength} floats do not fit a slot of {Length}.");
        for (int c = 0; c < MicroBatchCount; c++) if (!Has(Step, c)) return false;
        var chunks = new float[MicroBatchCount][];
        for (int c = 0; c < MicroBatchCount; c++) chunks[c] = _slots[_entries[Key(Step, c)].Slot];
        for (int h = 0; h < localSteps; h++)
            for (int c = 0; c < MicroBatchCount; c++) fold(chunks[c].AsMemory(h * vectorLength, vectorLength));
        for (int c = 0; c < MicroBatchCount; c++) Take(Step, c);
        _foldedStep = Step;
        return true;
    }

    private float[] Take(long step, int microBatch)
    {
        long k = Key(step, microBatch);
        var e = _entries[k];
        _entries.Remove(k);
        _free.Push(e.Slot); // the caller folds it before anything can reserve the slot again (same lock)
        return _slots[e.Slot];
    }
}

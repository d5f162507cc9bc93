// A PS shard's receive side in async mode: micro-batch gradients of any step arrive (on data-plane
// threads) into pooled slots and wait, in arrival order, for the actor to apply them one by one
// (DESIGN contract 5: "the PS applies each micro-batch gradient as it arrives"). A (step, micro-batch)
// that is already queued, being received or applied is dropped (contract 3). The pool grows only when
// more gradients are in flight than ever before, so a steady run allocates nothing. Not thread-safe:
// the caller serialises Reserve/Commit/Abort/TryDequeue/Release (the PS actor holds one lock).
using DistTrain.Training.Steps;
namespace DistTrain.Cluster.Training;

public sealed class AsyncGradientQueue
{
    private const byte Missing = 0, Receiving = 1, Queued = 2, Applied = 3;
    private readonly byte[] _state;                   // per micro-batch of the run, k = step·M + micro-batch
    private readonly Dictionary<long, (int Slot, long Version)> _receiving = [];
    private readonly Queue<Arrival> _arrived = new();
    private readonly List<float[]> _slots = [];
    private readonly Stack<int> _free = new();
    private readonly long[] _dropped = new long[Enum.GetValues<GradientDrop>().Length];

    /// <summary>A received gradient waiting to be applied; <see cref="Slot"/> holds it until <see cref="Release"/>.</summary>
    public readonly record struct Arrival(long Step, int MicroBatch, long Version, int Slot);

    public AsyncGradientQueue(int rangeLength, long steps, int microBatchesPerStep)
    {
        if (rangeLength < 0) throw new ArgumentOutOfRangeException(nameof(rangeLength));
        if (microBatchesPerStep < 1) throw new ArgumentOutOfRangeException(nameof(microBatchesPerStep), "At least one micro-batch per step.");
        if (steps < 0 || steps * microBatchesPerStep > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(steps), steps, "Too many micro-batches for one run.");
        RangeLength = rangeLength;
        MicroBatches = microBatchesPerStep;
        _state = new byte[steps * microBatchesPerStep];
    }

    public int RangeLength { get; }
    public int MicroBatches { get; }
    public int Pending => _arrived.Count;
    public int SlotCount => _slots.Count;
    public long AppliedCount { get; private set; }
    public bool IsApplied(long step, int microBatch) => _state[step * MicroBatches + microBatch] == Applied;
    /// <summary>Applied already, or not a micro-batch of this run (checked before indexing: the arguments come off the wire).</summary>
    public bool IsAppliedOrUnknown(long step, int microBatch) =>
        step < 0 || (uint)microBatch >= (uint)MicroBatches || (ulong)step * (ulong)MicroBatches >= (ulong)_state.Length || IsApplied(step, microBatch);
    public long Dropped(GradientDrop reason) => _dropped[(int)reason];

    /// <summary>A buffer for the gradient of (step, micro-batch) computed on <paramref name="version"/>, or empty and why it is dropped (counted).</summary>
    public Span<float> Reserve(long step, int microBatch, long version, int length, out GradientDrop reason)
    {
        long k = step * MicroBatches + microBatch;
        reason = (ulong)step * (ulong)MicroBatches >= (ulong)_state.Length ? GradientDrop.UnknownStep
            : (uint)microBatch >= (uint)MicroBatches ? GradientDrop.OutOfRange
            : length != RangeLength ? GradientDrop.WrongLength
            : _state[k] != Missing ? GradientDrop.Duplicate
            : GradientDrop.None;
        if (reason != GradientDrop.None) { _dropped[(int)reason]++; return Span<float>.Empty; }
        if (_free.Count == 0) { _slots.Add(new float[RangeLength]); _free.Push(_slots.Count - 1); }
        int slot = _free.Pop();
        _state[k] = Receiving;
        _receiving[k] = (slot, version);
        return _slots[slot];
    }

    /// <summary>The reserved buffer was filled and verified: queue it. False (counted, slot freed, may arrive again) when it is not finite.</summary>
    public bool Commit(long step, int microBatch)
    {
        long k = step * MicroBatches + microBatch;
        if (!_receiving.Remove(k, out var r)) throw new InvalidOperationException($"Commit of step {step} micro-batch {microBatch} without a Reserve.");
        if (!AllFinite(_slots[r.Slot]))
        {
            _free.Push(r.Slot);
            _state[k] = Missing;
            _dropped[(int)GradientDrop.NotFinite]++;
            return false;
        }
        _state[k] = Queued;
        _arrived.Enqueue(new Arrival(step, microBatch, r.Version, r.Slot));
        return true;
    }

    /// <summary>The receive failed (checksum, lost connection): free the slot so the micro-batch can arrive again.</summary>
    public void Abort(long step, int microBatch, GradientDrop reason)
    {
        long k = step * MicroBatches + microBatch;
        if (!_receiving.Remove(k, out var r)) return;
        _free.Push(r.Slot);
        _state[k] = Missing;
        _dropped[(int)reason]++;
    }

    /// <summary>The oldest arrival not yet applied; it counts as applied from here on (a copy arriving now is a duplicate).</summary>
    public bool TryDequeue(out Arrival a)
    {
        if (!_arrived.TryDequeue(out a)) return false;
        _state[a.Step * MicroBatches + a.MicroBatch] = Applied;
        AppliedCount++;
        return true;
    }

    public ReadOnlySpan<float> Gradient(Arrival a) => _slots[a.Slot];

    /// <summary>
    /// The shard's state was put back to a consistent cut (a checkpoint's, or a copy kept at one): exactly the first
    /// <paramref name="applied"/> micro-batches of the plan are in it. Those count as applied (a copy of one is a duplicate),
    /// the rest are missing again and will arrive again; gradients queued and not applied are forgotten. A frame still being
    /// received keeps its slot and is queued when it completes (the coordinator closes every worker's connections before a
    /// roll-back, so it is rare): it is then applied once, as a stale gradient.
    /// </summary>
    public void RollBackTo(long applied)
    {
        if (applied < 0 || applied > _state.Length)
            throw new ArgumentOutOfRangeException(nameof(applied), applied, $"A run of {_state.Length} micro-batches cannot have {applied} applied.");
        while (_arrived.TryDequeue(out var a)) _free.Push(a.Slot);
        Array.Fill(_state, Applied, 0, (int)applied);
        Array.Fill(_state, Missing, (int)applied, _state.Length - (int)applied);
        foreach (long k in _receiving.Keys) _state[k] = Receiving;
        AppliedCount = applied;
    }

    /// <summary>The arrival was applied: its slot takes the next gradient.</summary>
    public void Release(Arrival a) => _free.Push(a.Slot);

    private static bool AllFinite(float[] g) => System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(g); // vectorized, see StepAggregator
}

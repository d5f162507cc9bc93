// A step's gradient aggregation, for a cluster's PS shard and for the one-process Trainer alike: receives
// micro-batch gradients for its key range in any order, and folds them into the step's sum strictly in
// micro-batch index order (DESIGN contract 2d), so the bits never depend on arrival order or worker count.
// Zero-copy: the data plane receives straight into a slot that Reserve hands out; the one-process Trainer,
// whose gradients come in order, folds each straight from the model's gradient buffer (FoldInOrder) and
// needs no slot. Slots are allocated on first use; a steady-state step allocates nothing.
// A micro-batch may arrive in chunks (sub-ranges, any order: a worker sends a layer's gradient while it is
// still back-propagating through the layers before it); it counts as arrived when its chunks cover the range.
namespace DistTrain.Training.Steps;

public enum GradientDrop { None, UnknownStep, Duplicate, WrongLength, OutOfRange, NotFinite, Corrupt }

/// <summary>What a committed chunk did: stored (the micro-batch still misses chunks), completed the micro-batch, or was
/// dropped as not finite (then it can arrive again).</summary>
public enum ChunkCommit { Stored, Completed, NotFinite }

public sealed class StepAggregator
{
    private readonly float[] _sum;
    private float[]? _borrowed;                 // a step of one micro-batch folded in order: that gradient is the sum
    private float[]?[] _slots;                  // out-of-order arrivals wait here, one slot per micro-batch (allocated on first use)
    private int[] _slotOf;                      // micro-batch -> slot index, -1 when none
    private byte[] _state;                      // per micro-batch: 0 missing, 1 receiving, 2 arrived, 3 folded
    private Chunk[]?[] _chunks;                 // per micro-batch: the reserved chunks (committed or not), _chunkCount of them
    private int[] _chunkCount;
    private readonly Stack<int> _free = new();
    private readonly long[] _dropped = new long[Enum.GetValues<GradientDrop>().Length];
    private int _folded;

    /// <summary>At most this many chunks per micro-batch (a frame per layer of a deep model stays well below it).</summary>
    public const int MaxChunks = 64;

    private struct Chunk { public int Offset, Length; public bool Committed; }

    public StepAggregator(int rangeLength, int maxMicroBatches)
    {
        if (rangeLength < 0) throw new ArgumentOutOfRangeException(nameof(rangeLength));
        if (maxMicroBatches < 1) throw new ArgumentOutOfRangeException(nameof(maxMicroBatches), "At least one micro-batch per step.");
        RangeLength = rangeLength;
        _sum = new float[rangeLength];
        _slots = new float[maxMicroBatches][];
        for (int i = 0; i < maxMicroBatches; i++) _free.Push(maxMicroBatches - 1 - i);
        _slotOf = new int[maxMicroBatches];
        _state = new byte[maxMicroBatches];
        _chunkCount = new int[maxMicroBatches];
        _chunks = new Chunk[maxMicroBatches][];
        Step = -1;
    }

    public int RangeLength { get; }
    public long Step { get; private set; }
    public int MicroBatchCount { get; private set; }
    public bool IsComplete => MicroBatchCount > 0 && _folded == MicroBatchCount;
    /// <summary>Σ of the step's micro-batch gradients, folded in index order; valid when IsComplete.</summary>
    public ReadOnlySpan<float> Sum => _borrowed ?? _sum;

    /// <summary>Clipping (a complete step only): sum *= factor, elementwise, as GradientClipping.Scale does in one process.</summary>
    public void ScaleSum(float factor)
    {
        if (!IsComplete) throw new InvalidOperationException($"Step {Step} is not complete; its sum cannot be clipped yet.");
        DistTrain.Nn.Optimizers.GradientClipping.Scale(_borrowed ?? _sum, factor);
    }
    public long Dropped(GradientDrop reason) => _dropped[(int)reason];
    public long DroppedTotal => _dropped.Sum();

    /// <summary>Starts collecting step <paramref name="step"/> of <paramref name="microBatches"/> micro-batches. More than the
    /// constructor's count grows the per-micro-batch bookkeeping (the count is the owner's, never a frame's).</summary>
    public void Begin(long step, int microBatches)
    {
        if (microBatches < 1)
            throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, "A step must have at least one micro-batch.");
        if (microBatches > _slots.Length) Grow(microBatches);
        Step = step;
        _borrowed = null;
        MicroBatchCount = microBatches;
        _folded = 0;
        _free.Clear();
        for (int i = _slots.Length - 1; i >= 0; i--) _free.Push(i);
        Array.Fill(_slotOf, -1);
        Array.Clear(_state);
        Array.Clear(_chunkCount);
    }

    /// <summary>
    /// A buffer to receive micro-batch <paramref name="microBatch"/>'s whole gradient of <paramref name="length"/> floats
    /// into, or an empty span and the reason when the gradient must be dropped (counted).
    /// </summary>
    public Span<float> Reserve(long step, int microBatch, int length, out GradientDrop reason)
    {
        if (length != RangeLength && step == Step && MicroBatchCount > 0 && (uint)microBatch < (uint)MicroBatchCount)
        {
            reason = GradientDrop.WrongLength;
            _dropped[(int)reason]++;
            return Span<float>.Empty;
        }
        return Reserve(step, microBatch, 0, length, out reason);
    }

    /// <summary>
    /// A buffer for the chunk [<paramref name="offset"/>, offset + <paramref name="length"/>) (relative to the range) of
    /// micro-batch <paramref name="microBatch"/>'s gradient, or an empty span and the reason when it must be dropped
    /// (counted): outside the range or empty (WrongLength), overlapping a chunk already reserved (Duplicate).
    /// </summary>
    public Span<float> Reserve(long step, int microBatch, int offset, int length, out GradientDrop reason)
    {
        reason = step != Step || MicroBatchCount == 0 ? GradientDrop.UnknownStep
            : (uint)microBatch >= (uint)MicroBatchCount ? GradientDrop.OutOfRange
            : offset < 0 || length < 0 || (long)offset + length > RangeLength || (length == 0 && RangeLength > 0) ? GradientDrop.WrongLength
            : _state[microBatch] >= 2 || Overlaps(microBatch, offset, length) ? GradientDrop.Duplicate
            : _chunkCount[microBatch] == MaxChunks ? GradientDrop.WrongLength
            : GradientDrop.None;
        if (reason != GradientDrop.None) { _dropped[(int)reason]++; return Span<float>.Empty; }
        if (_state[microBatch] == 0)
        {
            int slot = _free.Pop();
            _slots[slot] ??= new float[RangeLength];
            _slotOf[microBatch] = slot;
            _state[microBatch] = 1;
        }
        (_chunks[microBatch] ??= new Chunk[MaxChunks])[_chunkCount[microBatch]++] = new Chunk { Offset = offset, Length = length };
        return _slots[_slotOf[microBatch]].AsSpan(offset, length);
    }

    /// <summary>The reserved whole-range buffer was filled and verified: fold whatever is now contiguous from the front.
    /// Returns false (and counts it) when the gradient is not finite; the micro-batch can then arrive again.</summary>
    public bool Commit(long step, int microBatch) => Commit(step, microBatch, 0, RangeLength) != ChunkCommit.NotFinite;

    /// <summary>A reserved chunk was filled and verified. When the micro-batch's chunks now cover its range, folds whatever
    /// is contiguous from the front (Completed). A chunk that is not finite is dropped (counted) and can arrive again.</summary>
    public ChunkCommit Commit(long step, int microBatch, int offset, int length)
    {
        int c = step == Step && (uint)microBatch < (uint)MicroBatchCount && _state[microBatch] == 1 ? Find(microBatch, offset, length) : -1;
        if (c < 0 || _chunks[microBatch]![c].Committed)
            throw new InvalidOperationException($"Commit of step {step} micro-batch {microBatch} chunk {offset}+{length} without a Reserve.");
        var slot = _slots[_slotOf[microBatch]]!;
        if (!AllFinite(slot.AsSpan(offset, length))) { Abort(step, microBatch, offset, length, GradientDrop.NotFinite); return ChunkCommit.NotFinite; }
        _chunks[microBatch]![c].Committed = true;
        if (CommittedFloats(microBatch) < RangeLength) return ChunkCommit.Stored;
        _state[microBatch] = 2;
        while (_folded < MicroBatchCount && _state[_folded] == 2)
        {
            var g = _slots[_slotOf[_folded]]!;
            if (_folded == 0) g.AsSpan().CopyTo(_sum);
            else AddInPlace(_sum, g);
            _free.Push(_slotOf[_folded]);
            _slotOf[_folded] = -1;
            _state[_folded] = 3;
            _folded++;
        }
        return ChunkCommit.Completed;
    }

    /// <summary>
    /// One process: micro-batch <paramref name="microBatch"/>'s whole gradient, computed in index order, folded straight from
    /// the caller's buffer (no slot, no copy beyond the sum itself). A step of one micro-batch keeps <paramref name="gradient"/>
    /// as its sum, which is then valid until the caller changes that buffer. NotFinite (counted): nothing was folded.
    /// </summary>
    public ChunkCommit FoldInOrder(long step, int microBatch, float[] gradient)
    {
        if (step != Step || microBatch != _folded || _folded >= MicroBatchCount || _state[microBatch] != 0 || gradient.Length != RangeLength)
            throw new InvalidOperationException($"Micro-batch {microBatch} of step {step} ({gradient.Length} floats) is not the next in order " +
                                                $"(step {Step}, {_folded} of {MicroBatchCount} folded, {RangeLength} floats).");
        if (!AllFinite(gradient)) { _dropped[(int)GradientDrop.NotFinite]++; return ChunkCommit.NotFinite; }
        if (MicroBatchCount == 1) _borrowed = gradient;
        else if (microBatch == 0) gradient.AsSpan().CopyTo(_sum);
        else AddInPlace(_sum, gradient);
        _state[microBatch] = 3;
        _folded++;
        return ChunkCommit.Completed;
    }

    private void Grow(int microBatches)
    {
        Array.Resize(ref _slots, microBatches);
        Array.Resize(ref _slotOf, microBatches);
        Array.Resize(ref _state, microBatches);
        Array.Resize(ref _chunks, microBatches);
        Array.Resize(ref _chunkCount, microBatches);
    }

    /// <summary>The whole-range receive failed (checksum, connection lost): release it so the micro-batch can arrive again.</summary>
    public void Abort(long step, int microBatch, GradientDrop reason) => Abort(step, microBatch, 0, RangeLength, reason);

    /// <summary>The receive of a chunk failed (checksum, connection lost, not finite): forget it so it can arrive again;
    /// the slot is released when the micro-batch holds no other chunk.</summary>
    public void Abort(long step, int microBatch, int offset, int length, GradientDrop reason)
    {
        if (step != Step || (uint)microBatch >= (uint)MicroBatchCount || _state[microBatch] != 1) return;
        int c = Find(microBatch, offset, length);
        if (c < 0) return;
        var chunks = _chunks[microBatch]!;
        chunks[c] = chunks[--_chunkCount[microBatch]];
        if (_chunkCount[microBatch] == 0)
        {
            _free.Push(_slotOf[microBatch]);
            _slotOf[microBatch] = -1;
            _state[microBatch] = 0;
        }
        _dropped[(int)reason]++;
    }

    // Chunks never overlap (Reserve refuses that), so their committed lengths add up to the floats that arrived.
    private int CommittedFloats(int microBatch)
    {
        int sum = 0;
        var chunks = _chunks[microBatch]!;
        for (int i = 0; i < _chunkCount[microBatch]; i++) if (chunks[i].Committed) sum += chunks[i].Length;
        return sum;
    }

    private bool Overlaps(int microBatch, int offset, int length)
    {
        var chunks = _chunks[microBatch]!;
        for (int i = 0; i < _chunkCount[microBatch]; i++)
        {
            ref var k = ref chunks[i];
            // Two empty chunks (a zero-length range) count as the same chunk.
            if (offset < k.Offset + k.Length && k.Offset < offset + length || length == 0 && k.Length == 0) return true;
        }
        return false;
    }

    private int Find(int microBatch, int offset, int length)
    {
        var chunks = _chunks[microBatch]!;
        for (int i = 0; i < _chunkCount[microBatch]; i++)
            if (chunks[i].Offset == offset && chunks[i].Length == length) return i;
        return -1;
    }

    /// <summary>Convenience for callers that already hold the gradient: Reserve + copy + Commit.</summary>
    public GradientDrop Accept(long step, int microBatch, ReadOnlySpan<float> gradient)
    {
        var dst = Reserve(step, microBatch, gradient.Length, out var reason);
        if (reason != GradientDrop.None) return reason;
        gradient.CopyTo(dst);
        return Commit(step, microBatch) ? GradientDrop.None : GradientDrop.NotFinite;
    }

    public bool HasArrived(int microBatch) => (uint)microBatch < (uint)MicroBatchCount && _state[microBatch] >= 2;

    // Plain float adds, element by element: vector width changes nothing since lanes are independent.
    private static void AddInPlace(float[] sum, float[] g) => System.Numerics.Tensors.TensorPrimitives.Add(sum, g, sum);

    // Vectorized: the scalar `acc += v - v` chain was one dependent add per float, ~0.6 ms for 421k floats on the
    // receive thread of the step's last gradient, i.e. on the synchronous barrier; this reads at memory speed.
    private static bool AllFinite(ReadOnlySpan<float> g) => System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(g);
}

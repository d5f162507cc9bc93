// The coordinator's bookkeeping in async mode (DESIGN contracts 3, 4, 5): the run's micro-batches in
// plan order, k = step·M + micro-batch, handed out without a step barrier. Leases, "done once every
// shard has it", and re-queueing on leave or lease expiry work as in WorkQueue; a re-queued micro-batch
// goes out before new ones. The staleness bound S (stale-synchronous): micro-batch k goes out only once
// every micro-batch below k − S is done, so no worker runs more than S micro-batches ahead of the
// slowest unfinished one, and k is computed on parameters with at least k − S updates (what a
// sequential run would use for it, minus S). A worker never holds a lease while it waits for that, so a
// crashed worker's micro-batch can always be handed to another (no deadlock). Pure: time is passed in.
namespace DistTrain.Cluster.Training;

public sealed class AsyncWorkQueue
{
    private readonly int _shards, _full;
    private readonly string?[] _holder;
    private readonly DateTime[] _leasedAt;
    private readonly int[] _shardAcks;                 // bit s set when shard s applied the gradient
    private readonly int[] _doneInStep;
    private readonly SortedSet<long> _requeued = [];
    private readonly Dictionary<long, string> _leased = [];
    private long _next;

    /// <summary>No micro-batch at or past this ordinal goes out (a checkpoint: the queue drains to it, the shards' state at this
    /// version is collected, then the fence moves on). long.MaxValue = none.</summary>
    public long Fence { get; set; } = long.MaxValue;
    /// <summary>A lease older than this is handed out again; the coordinator adapts it to the observed step time.</summary>
    public TimeSpan LeaseTimeout { get; set; }
    /// <summary>The worker whose expired lease the last TryLease handed out again (the caller reads and clears it).</summary>
    public string? ExpiredHolder { get; set; }

    public AsyncWorkQueue(long steps, int microBatchesPerStep, int shards, TimeSpan leaseTimeout)
    {
        if (shards is < 1 or > 30) throw new ArgumentOutOfRangeException(nameof(shards), shards, "Shards must be 1..30.");
        if (microBatchesPerStep < 1) throw new ArgumentOutOfRangeException(nameof(microBatchesPerStep), microBatchesPerStep, "A step needs at least one micro-batch.");
        if (steps < 0 || steps * microBatchesPerStep > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, "Too many micro-batches for one run; raise --micro-batch or lower --epochs.");
        Steps = steps;
        MicroBatches = microBatchesPerStep;
        _shards = shards;
        _full = (1 << shards) - 1;
        LeaseTimeout = leaseTimeout;
        int total = (int)(steps * microBatchesPerStep);
        _holder = new string?[total];
        _leasedAt = new DateTime[total];
        _shardAcks = new int[total];
        _doneInStep = new int[steps];
    }

    public long Steps { get; }
    public int MicroBatches { get; }
    public long Total => _holder.Length;
    public long DoneCount { get; private set; }
    public bool AllDone => DoneCount == Total;
    public long Requeued { get; private set; }
    /// <summary>Ordinal of the first micro-batch not yet done (Total when all are).</summary>
    public long LowestUndone { get; private set; }
    public long DuplicateAcks { get; private set; }
    /// <summary>Highest step of which some micro-batch was handed out (-1 before the first).</summary>
    public long FrontStep => _next == 0 ? -1 : (_next - 1) / MicroBatches;

    /// <summary>Micro-batch k = step·M + micro-batch is the k-th of the run in plan order (what a sequential run computes on version k).</summary>
    public long Ordinal(long step, int microBatch) => step * MicroBatches + microBatch;

    /// <summary>The oldest parameter version micro-batch (step, micro-batch) may be computed on under staleness bound <paramref name="staleness"/>.</summary>
    public long MinVersion(long step, int microBatch, int staleness) => Math.Max(0, Ordinal(step, microBatch) - staleness);

    /// <summary>
    /// Hands out a re-queued micro-batch, else an expired lease, else the next one of the plan — only an ordinal at most
    /// <see cref="LowestUndone"/> + <paramref name="staleness"/>. False when none can go out now.
    /// </summary>
    public bool TryLease(string worker, DateTime now, int staleness, out long step, out int microBatch)
    {
        long k = -1, limit = Math.Min(LowestUndone + staleness, Fence - 1); // highest ordinal that may go out now
        while (_requeued.Count > 0 && k < 0 && _requeued.Min <= limit)
        {
            long r = _requeued.Min;
            _requeued.Remove(r);
            if (_shardAcks[r] != _full && _holder[r] is null) k = r;
        }
        if (k < 0)
            foreach (var (leased, _) in _leased)
                if (leased <= limit && now - _leasedAt[leased] >= LeaseTimeout) { k = leased; Requeued++; ExpiredHolder = _holder[k]; break; }
        if (k < 0 && _next < Total && _next <= limit) k = _next++;
        if (k < 0) { step = -1; microBatch = -1; return false; }
        _holder[k] = worker;
        _leasedAt[k] = now;
        _leased[k] = worker;
        step = k / MicroBatches;
        microBatch = (int)(k % MicroBatches);
        return true;
    }

    /// <summary>Shard <paramref name="shard"/> applied (step, micro-batch). True when this made it done; repeats are counted and ignored.</summary>
    public bool Acknowledge(long step, int microBatch, int shard, out bool stepDone)
    {
        stepDone = false;
        if ((ulong)step >= (ulong)Steps || (uint)microBatch >= (uint)MicroBatches || (uint)shard >= (uint)_shards) { DuplicateAcks++; return false; }
        long k = step * MicroBatches + microBatch;
        int bit = 1 << shard;
        if ((_shardAcks[k] & bit) != 0) { DuplicateAcks++; return false; }
        _shardAcks[k] |= bit;
        if (_shardAcks[k] != _full) return false;
        _holder[k] = null;
        _leased.Remove(k);
        DoneCount++;
        while (LowestUndone < Total && _shardAcks[LowestUndone] == _full) LowestUndone++;
        stepDone = ++_doneInStep[step] == MicroBatches;
        return true;
    }

    /// <summary>The worker left: its unfinished micro-batches go back, ahead of the plan's next ones.</summary>
    public int WorkerLeft(string worker)
    {
        var mine = _leased.Where(kv => kv.Value == worker).Select(kv => kv.Key).ToList();
        foreach (var k in mine)
        {
            _leased.Remove(k);
            _holder[k] = null;
            _requeued.Add(k);
        }
        Requeued += mine.Count;
        return mine.Count;
    }

    public string? HolderOf(long step, int microBatch) => _holder[step * MicroBatches + microBatch];

    /// <summary>Puts a leased, unfinished micro-batch back at once, ahead of the plan's next ones; false if it is not leased.</summary>
    public bool Release(long step, int microBatch)
    {
        if ((ulong)step >= (ulong)Steps || (uint)microBatch >= (uint)MicroBatches) return false;
        long k = step * MicroBatches + microBatch;
        if (!_leased.Remove(k)) return false;
        _holder[k] = null;
        _requeued.Add(k);
        Requeued++;
        return true;
    }

    /// <summary>Which shards applied each micro-batch of the run (bit s: shard s), and how far the plan was handed out.</summary>
    public (int[] Acks, long Next) Ledger() => (_shardAcks.ToArray(), _next);

    /// <summary>The queue of a run resumed from a checkpoint taken at a fence: the first <paramref name="done"/> micro-batches
    /// are done, none after them was handed out.</summary>
    public void RestoreDone(long done)
    {
        if (done < 0 || done > Total) throw new ArgumentOutOfRangeException(nameof(done), done, $"A run of {Total} micro-batches cannot have {done} done.");
        var acks = new int[Total];
        Array.Fill(acks, _full, 0, (int)done);
        Restore(acks, done);
    }

    /// <summary>Rebuilds the queue from <see cref="Ledger"/> with no leases: what was handed out and is not done goes out again first.</summary>
    public void Restore(int[] acks, long next)
    {
        if (acks.Length != _shardAcks.Length || next < 0 || next > Total)
            throw new ArgumentException($"A ledger of {acks.Length} micro-batches up to {next} does not fit this run's {Total}.");
        acks.CopyTo(_shardAcks, 0);
        Array.Clear(_holder);
        Array.Clear(_doneInStep);
        _leased.Clear();
        _requeued.Clear();
        DoneCount = 0;
        for (long k = 0; k < Total; k++)
        {
            if (_shardAcks[k] == _full) { DoneCount++; _doneInStep[k / MicroBatches]++; }
            else if (k < next) _requeued.Add(k);
        }
        _next = next;
        LowestUndone = 0;
        while (LowestUndone < Total && _shardAcks[LowestUndone] == _full) LowestUndone++;
    }
}

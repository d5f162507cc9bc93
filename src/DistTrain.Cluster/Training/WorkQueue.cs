// The coordinator's bookkeeping of one synchronous step's micro-batches (DESIGN contracts 3 and 4):
// workers pull (lowest pending index first), a lease belongs to one worker, a micro-batch is done once
// every PS shard has it, and a worker that leaves (or whose lease expires) has its unfinished
// micro-batches put back. Pure: time is passed in, no actors, no clocks.
namespace DistTrain.Cluster.Training;

public sealed class WorkQueue
{
    private readonly int _shards;
    private string?[] _holder = [];
    private DateTime[] _leasedAt = [];
    private int[] _shardAcks = [];        // bit s set when shard s has the gradient
    private int _done;

    /// <param name="shards">PS shards that must each receive a micro-batch's gradient before it is done.</param>
    /// <param name="leaseTimeout">A lease older than this is handed out again (straggler or silent loss).</param>
    public WorkQueue(int shards, TimeSpan leaseTimeout)
    {
        if (shards is < 1 or > 30) throw new ArgumentOutOfRangeException(nameof(shards), shards, "Shards must be 1..30.");
        _shards = shards;
        LeaseTimeout = leaseTimeout;
        Step = -1;
    }

    /// <summary>A lease older than this is handed out again; the coordinator adapts it to the observed step time.</summary>
    public TimeSpan LeaseTimeout { get; set; }
    public long Step { get; private set; }
    public int MicroBatchCount => _holder.Length;
    public int DoneCount => _done;
    public bool StepDone => _holder.Length > 0 && _done == _holder.Length;
    public long DuplicateAcks { get; private set; }
    public long Requeued { get; private set; }
    /// <summary>The worker whose expired lease the last TryLease handed out again (the caller reads and clears it).</summary>
    public string? ExpiredHolder { get; set; }

    public void Begin(long step, int microBatches)
    {
        if (microBatches < 1) throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, "A step needs at least one micro-batch.");
        Step = step;
        _holder = new string?[microBatches];
        _leasedAt = new DateTime[microBatches];
        _shardAcks = new int[microBatches];
        _done = 0;
    }

    /// <summary>Hands <paramref name="worker"/> the lowest-index micro-batch that is neither done nor leased
    /// (or whose lease expired, unless <paramref name="reclaimExpired"/> is false). False when there is nothing to hand out now.</summary>
    public bool TryLease(string worker, DateTime now, out int microBatch, bool reclaimExpired = true)
    {
        int full = (1 << _shards) - 1;
        for (int i = 0; i < _holder.Length; i++)
        {
            if (_shardAcks[i] == full) continue;
            bool free = _holder[i] is null;
            bool expired = !free && reclaimExpired && now - _leasedAt[i] >= LeaseTimeout;
            if (!free && !expired) continue;
            if (expired) { Requeued++; ExpiredHolder = _holder[i]; }
            _holder[i] = worker;
            _leasedAt[i] = now;
            microBatch = i;
            return true;
        }
        microBatch = -1;
        return false;
    }

    /// <summary>Shard <paramref name="shard"/> received (step, micro-batch). Returns true when this made the
    /// micro-batch done; a repeated or stale acknowledgement is counted and ignored.</summary>
    public bool Acknowledge(long step, int microBatch, int shard)
    {
        if (step != Step || (uint)microBatch >= (uint)_holder.Length || (uint)shard >= (uint)_shards) { DuplicateAcks++; return false; }
        int bit = 1 << shard, full = (1 << _shards) - 1;
        if ((_shardAcks[microBatch] & bit) != 0) { DuplicateAcks++; return false; }
        _shardAcks[microBatch] |= bit;
        if (_shardAcks[microBatch] != full) return false;
        _holder[microBatch] = null;
        _done++;
        return true;
    }

    /// <summary>The worker left the cluster: its unfinished micro-batches go back to the queue.</summary>
    public int WorkerLeft(string worker)
    {
        int n = 0, full = (1 << _shards) - 1;
        for (int i = 0; i < _holder.Length; i++)
            if (_holder[i] == worker && _shardAcks[i] != full) { _holder[i] = null; n++; }
        Requeued += n;
        return n;
    }

    public string? HolderOf(int microBatch) => _holder[microBatch];

    /// <summary>When <paramref name="microBatch"/> was last leased (kept after it is done, for timing it).</summary>
    public DateTime LeasedAt(int microBatch) => _leasedAt[microBatch];

    /// <summary>
    /// The micro-batch, not done, that a worker other than <paramref name="worker"/> has held longest, if it has held it at
    /// least <paramref name="after"/> and <paramref name="skip"/> does not exclude it (a copy is already out): the candidate
    /// for a backup copy (its lease stays where it is).
    /// </summary>
    public bool TryFindStraggler(string worker, DateTime now, TimeSpan after, Func<int, bool> skip, out int microBatch)
    {
        int full = (1 << _shards) - 1;
        microBatch = -1;
        var longest = TimeSpan.MinValue;
        for (int i = 0; i < _holder.Length; i++)
        {
            if (_shardAcks[i] == full || _holder[i] is not { } h || h == worker) continue;
            var held = now - _leasedAt[i];
            if (held < after || held <= longest || skip(i)) continue;
            (microBatch, longest) = (i, held);
        }
        return microBatch >= 0;
    }

    /// <summary>The micro-batches not done yet, each with its holder (null: not leased) and how long it has held it.</summary>
    public IEnumerable<(int MicroBatch, string? Holder, TimeSpan Held)> Pending(DateTime now)
    {
        int full = (1 << _shards) - 1;
        for (int i = 0; i < _holder.Length; i++)
            if (_shardAcks[i] != full) yield return (i, _holder[i], _holder[i] is null ? TimeSpan.Zero : now - _leasedAt[i]);
    }

    /// <summary>Puts a leased, unfinished micro-batch back at once (its gradient was refused); false if it is not leased.</summary>
    public bool Release(int microBatch)
    {
        if ((uint)microBatch >= (uint)_holder.Length || _holder[microBatch] is null) return false;
        _holder[microBatch] = null;
        Requeued++;
        return true;
    }

    /// <summary>Every lease held now counts from <paramref name="now"/> (a step leased ahead became the current one: its
    /// holders could not begin before its parameters existed).</summary>
    public void RestartLeases(DateTime now)
    {
        for (int i = 0; i < _holder.Length; i++) if (_holder[i] is not null) _leasedAt[i] = now;
    }

    /// <summary>Which shards have each micro-batch of the step (bit s: shard s); leases are not part of it.</summary>
    public int[] Acks() => _shardAcks.ToArray();

    /// <summary>Step <paramref name="step"/> with the acknowledgements of <see cref="Acks"/> and no leases: what is not done goes out again.</summary>
    public void Restore(long step, int[] acks)
    {
        Begin(step, acks.Length);
        int full = (1 << _shards) - 1;
        acks.CopyTo(_shardAcks, 0);
        _done = acks.Count(a => a == full);
    }
}

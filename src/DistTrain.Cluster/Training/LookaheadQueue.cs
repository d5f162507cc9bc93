// The coordinator's leases over two consecutive synchronous steps. A worker that finished its share of
// step t and finds every micro-batch of t leased or done may lease one of step t+1 at once; it then
// waits for the shards' push of version t+1 over the data plane. Between two steps a worker's critical
// path is then the push alone, not a round trip through the coordinator after the step is applied.
// Determinism is untouched: a micro-batch of t+1 is still computed on version t+1 and summed in index
// order. Pure: time is passed in, no actors, no clocks.
namespace DistTrain.Cluster.Training;

public sealed class LookaheadQueue
{
    private WorkQueue _current;
    private WorkQueue _next;
    private readonly int _microBatches;
    private readonly long _totalSteps;
    private bool _nextBegun;

    /// <param name="totalSteps">Steps in the run: nothing beyond the last one is leased ahead.</param>
    public LookaheadQueue(int shards, TimeSpan leaseTimeout, int microBatches, long totalSteps)
    {
        if (microBatches < 1) throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, "A step needs at least one micro-batch.");
        _current = new WorkQueue(shards, leaseTimeout);
        _next = new WorkQueue(shards, leaseTimeout);
        _microBatches = microBatches;
        _totalSteps = totalSteps;
    }

    /// <summary>A lease (of either step) older than this is handed out again.</summary>
    public TimeSpan LeaseTimeout
    {
        get => _current.LeaseTimeout;
        set { _current.LeaseTimeout = value; _next.LeaseTimeout = value; }
    }

    /// <summary>The worker whose expired lease the last lease handed out again, if any; reading clears it.</summary>
    public string? TakeExpiredHolder()
    {
        var holder = _current.ExpiredHolder ?? _next.ExpiredHolder;
        _current.ExpiredHolder = _next.ExpiredHolder = null;
        return holder;
    }

    /// <summary>The current step's micro-batches not done yet, with their holders and how long they have held them.</summary>
    public IEnumerable<(int MicroBatch, string? Holder, TimeSpan Held)> Pending(DateTime now) => _current.Pending(now);

    /// <summary>The step being applied now (-1 before <see cref="Begin"/>).</summary>
    public long Step => _current.Step;
    public bool StepDone => _current.StepDone;
    public long DuplicateAcks => _current.DuplicateAcks + _next.DuplicateAcks;
    public long Requeued => _current.Requeued + _next.Requeued;

    public void Begin(long step)
    {
        _current.Begin(step, _microBatches);
        _nextBegun = false;
    }

    /// <summary>Step <see cref="Step"/> was applied at <paramref name="now"/>: the step leased ahead (with its leases) becomes
    /// current, and its leases count from now — their holders could not start before its version existed, so a long step
    /// never makes the leases ahead of it look stale.</summary>
    public void Advance(DateTime now)
    {
        long step = _current.Step + 1;
        if (!_nextBegun) _next.Begin(step, _microBatches);
        (_current, _next) = (_next, _current);
        _current.RestartLeases(now);
        _nextBegun = false;
    }

    /// <summary>Leases a micro-batch of the current step, else (when every one of them is leased or done)
    /// one of the next step. False when neither has anything to hand out.</summary>
    public bool TryLease(string worker, DateTime now, out long step, out int microBatch)
    {
        if (TryLeaseCurrent(worker, now, out microBatch)) { step = _current.Step; return true; }
        step = _current.Step + 1;
        if (_current.Step < 0 || step >= _totalSteps) return false;
        if (!_nextBegun) { _next.Begin(step, _microBatches); _nextBegun = true; }
        return _next.TryLease(worker, now, out microBatch, reclaimExpired: false); // a lease ahead ages only once its step is current
    }

    /// <summary>Leases a micro-batch of the current step only (for a worker that waits on a lease ahead).</summary>
    public bool TryLeaseCurrent(string worker, DateTime now, out int microBatch)
    {
        microBatch = -1;
        return _current.Step >= 0 && _current.Step < _totalSteps && _current.TryLease(worker, now, out microBatch);
    }

    /// <summary>The current step's micro-batch that another worker has held longest, at least <paramref name="after"/>
    /// (WorkQueue.TryFindStraggler).</summary>
    public bool TryFindStraggler(string worker, DateTime now, TimeSpan after, Func<int, bool> skip, out int microBatch)
    {
        microBatch = -1;
        return _current.Step >= 0 && _current.Step < _totalSteps && _current.TryFindStraggler(worker, now, after, skip, out microBatch);
    }

    /// <summary>When (step, micro-batch) of the current or the next step was leased; null for another step.</summary>
    public DateTime? LeasedAt(long step, int microBatch) =>
        _nextBegun && step == _next.Step && (uint)microBatch < (uint)_next.MicroBatchCount ? _next.LeasedAt(microBatch)
        : step == _current.Step && (uint)microBatch < (uint)_current.MicroBatchCount ? _current.LeasedAt(microBatch) : null;

    /// <summary>Routes a shard's acknowledgement to its step; true when it made the micro-batch done.</summary>
    public bool Acknowledge(long step, int microBatch, int shard) =>
        _nextBegun && step == _next.Step ? _next.Acknowledge(step, microBatch, shard) : _current.Acknowledge(step, microBatch, shard);

    /// <summary>Puts a leased micro-batch of the current or the next step back at once.</summary>
    public bool Release(long step, int microBatch) =>
        _nextBegun && step == _next.Step ? _next.Release(microBatch) : step == _current.Step && _current.Release(microBatch);

    /// <summary>The worker left: its unfinished leases of both steps go back. Returns how many.</summary>
    public int WorkerLeft(string worker) => _current.WorkerLeft(worker) + (_nextBegun ? _next.WorkerLeft(worker) : 0);

    /// <summary>The acknowledgements of the current step and, once leased ahead, of the next one.</summary>
    public (long Step, int[] Current, int[]? Next) Ledger() => (_current.Step, _current.Acks(), _nextBegun ? _next.Acks() : null);

    /// <summary>Rebuilds the queue from <see cref="Ledger"/>: no leases, so what is not done goes out again.</summary>
    public void Restore(long step, int[] current, int[]? next)
    {
        _current.Restore(step, current);
        _nextBegun = next is not null;
        if (next is not null) _next.Restore(step + 1, next);
    }
}

// The receive side of a parameter-server shard: data-plane threads hand it frames (gradient chunks straight
// into the step aggregator's or the async queue's slots, BatchNorm statistics, restore frames), and it posts
// what happened to the shard's actor as events. It owns the one lock that the receive threads and the actor
// share; the actor itself holds none. Values change only on the actor's thread (apply, restore), so pushes
// read them without the lock.
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Optimizers;
using DistTrain.Training.Steps;
using TrainingDrop = DistTrain.Training.Steps.GradientDrop;
using WireDrop = DistTrain.Cluster.DataPlane.DropReason;

namespace DistTrain.Cluster.Runtime;

public sealed class ShardInbox : IFrameHandler
{
    /// <summary>Every chunk of (step, micro-batch) arrived intact (sync), or the micro-batch is queued for its update (async).</summary>
    public sealed record GradientArrived(int SenderId, long Step, int MicroBatch) : Akka.Actor.INoSerializationVerificationNeeded;
    /// <summary>A frame was dropped, with the precise reason (reported to the coordinator).</summary>
    public sealed record GradientDropped(int SenderId, long Step, int MicroBatch, string Reason) : Akka.Actor.INoSerializationVerificationNeeded;
    /// <summary>A data-plane connection of this sender ended.</summary>
    public sealed record PeerDisconnected(int SenderId) : Akka.Actor.INoSerializationVerificationNeeded;
    /// <summary>A second copy of a kept gradient chunk has another checksum (the determinism audit).</summary>
    public sealed record CopiesDiffer(int KeptSender, int OtherSender, long Step, int MicroBatch, long Offset) : Akka.Actor.INoSerializationVerificationNeeded;
    /// <summary>The coordinator's restore frames are all here: apply them (ApplyRestore).</summary>
    public sealed record RestoreComplete : Akka.Actor.INoSerializationVerificationNeeded;

    private static readonly int CoordinatorSender = JobMapping.CoordinatorSenderId;

    private readonly Lock _gate = new();
    private readonly ParameterShard _shard;
    private readonly AsyncGradientQueue? _async;
    private readonly ShardCheckpointing _extras;
    private readonly Action<object> _post;
    private readonly int _microBatches;
    private readonly Dictionary<int, (long Step, int MicroBatch)> _receiving = [];   // per sender: the gradient frame arriving
    // Sender ids of the workers the coordinator registered with this shard (WorkerEndpoint until WorkerGone): the only peers
    // whose gradients and statistics are taken. Any registered worker, not only a micro-batch's lease holder: a backup copy
    // of a straggler's micro-batch is legitimate, and the first intact copy wins.
    private readonly HashSet<int> _workers = [];
    // Sync, the determinism audit: the checksum and sender of each gradient chunk kept in the last AuditSteps steps, in the
    // order kept (steps only grow, so the oldest leave from the front).
    private readonly Dictionary<(long Step, int MicroBatch, long Offset), (ulong Checksum, int Sender)> _kept = [];
    private readonly Queue<(long Step, int MicroBatch, long Offset)> _keptOrder = new();
    private const int AuditSteps = 3;

    /// <param name="async">The async mode's queue; null in sync and local-sgd, which sum a step in the shard's aggregator.</param>
    /// <param name="post">Delivers an event to the actor (a Tell: it runs on the receive thread).</param>
    public ShardInbox(ParameterShard shard, AsyncGradientQueue? async, ShardCheckpointing extras, int microBatches, Action<object> post)
    {
        _shard = shard; _async = async; _extras = extras; _microBatches = microBatches; _post = post;
    }

    public ParameterShard Shard => _shard;

    // ---- the actor's side ----

    /// <summary>Sync / local-sgd: applies the complete step (clipped to <paramref name="maxNorm"/> with the global norm when
    /// given), folds its BatchNorm statistics and begins the next step. False while micro-batches are missing.</summary>
    public bool TryApplyStep(float maxNorm = 0f, double globalNorm = double.NaN)
    {
        lock (_gate)
        {
            if (!_shard.TryApply(maxNorm, globalNorm)) return false;
            _shard.BeginStep(_shard.Version, _microBatches);
            while (_keptOrder.TryPeek(out var oldest) && oldest.Step < _shard.Version - AuditSteps) _kept.Remove(_keptOrder.Dequeue());
            _extras.StepApplied();
            return true;
        }
    }

    /// <summary>--clip-norm: this range's exact Σ g² of the current step once its sum is complete and unless it went out
    /// already (<paramref name="sentFor"/>); null otherwise.</summary>
    public (long Step, uint[] Digits)? NormShare(long sentFor)
    {
        lock (_gate)
        {
            if (!_shard.StepComplete || _shard.Version == sentFor) return null;
            var digits = new uint[ExactSquareSum.SerializedLength];
            _shard.SquareSum().CopyTo(digits);
            return (_shard.Version, digits);
        }
    }

    /// <summary>Async: the oldest queued gradient; its slot stays reserved until <see cref="Applied"/>.</summary>
    public bool TryDequeue(out AsyncGradientQueue.Arrival arrival, out ReadOnlySpan<float> gradient)
    {
        lock (_gate)
        {
            gradient = default;
            if (!_async!.TryDequeue(out arrival)) return false;
            gradient = _async.Gradient(arrival);
            return true;
        }
    }

    /// <summary>Async: the update of <paramref name="arrival"/> was applied; free its slot and fold its statistics.</summary>
    public void Applied(AsyncGradientQueue.Arrival arrival)
    {
        lock (_gate)
        {
            _async!.Release(arrival);
            _extras.MicroBatchApplied(arrival.Step, arrival.MicroBatch);
        }
    }

    /// <summary>Sends this shard's state at <paramref name="version"/> (its current one) for a checkpoint.</summary>
    public void SendCheckpoint(DataPlaneClient client, long version)
    {
        lock (_gate) _extras.Send(client, version);
    }

    /// <summary>The versions this shard can roll back to by itself (ShardCheckpointing.Versions).</summary>
    public long[] RollBackVersions()
    {
        lock (_gate) return _extras.Versions();
    }

    /// <summary>Puts back this shard's own state of <paramref name="version"/>; false when it holds none.</summary>
    public bool RollBack(long version)
    {
        lock (_gate)
        {
            if (!_extras.RollBack(version)) return false;
            _async?.RollBackTo(version); // async versions count the micro-batches applied, and a kept copy is a consistent cut
            return true;
        }
    }

    /// <summary>Puts the received restore state in place; returns its version.</summary>
    public long ApplyRestore()
    {
        lock (_gate)
        {
            long version = _extras.ApplyRestore();
            _async?.RollBackTo(version);
            return version;
        }
    }

    /// <summary>The coordinator registered this worker with the shard: its gradients and statistics are taken from now on.</summary>
    public void WorkerRegistered(int senderId)
    {
        lock (_gate) _workers.Add(senderId);
    }

    /// <summary>The worker left (or every worker re-registers after a roll-back): its frames are refused until it is registered again.</summary>
    public void WorkerLeft(int senderId)
    {
        lock (_gate) _workers.Remove(senderId);
    }

    // ---- data plane (receive threads) ----

    WireDrop? IFrameHandler.Rent(FrameHeader header, out Span<float> destination)
    {
        destination = Span<float>.Empty;
        if (!header.IsGradient) return RentOther(header, out destination);
        if (header.Shard != _shard.Shard || header.Offset < _shard.Range.Offset || _async is not null && header.Offset != _shard.Range.Offset)
            return WireDrop.Rejected;
        // Sync: a micro-batch's gradient may come as several chunks of the range (sent during the worker's backward).
        int chunkOffset = (int)Math.Min(header.Offset - _shard.Range.Offset, int.MaxValue);
        lock (_gate)
        {
            if (!_workers.Contains(header.SenderId)) return WireDrop.NotPermitted;
            // (An async copy of a micro-batch already applied goes on to be refused as the Duplicate it is.)
            if (!_extras.StatisticsReady(header.Step, header.MicroBatch) && _async?.IsAppliedOrUnknown(header.Step, header.MicroBatch) != true)
            {
                _post(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, "its BatchNorm statistics did not arrive first"));
                return WireDrop.Rejected;
            }
            destination = _async is { } q ? q.Reserve(header.Step, header.MicroBatch, header.Version, header.Length, out var reason)
                : _shard.Aggregator.Reserve(header.Step, header.MicroBatch, chunkOffset, header.Length, out reason, header.SenderId);
            if (reason == TrainingDrop.None) { _receiving[header.SenderId] = (header.Step, header.MicroBatch); return null; }
            // A copy of a chunk already kept (re-executed work, a verification copy): the computation is bit-reproducible, so
            // an equal checksum is the expected outcome and says nothing; another checksum is reported by the audit.
            if (_async is null && _kept.TryGetValue((header.Step, header.MicroBatch, header.Offset), out var kept))
            {
                if (kept.Checksum != header.Checksum)
                    _post(new CopiesDiffer(kept.Sender, header.SenderId, header.Step, header.MicroBatch, header.Offset));
                return WireDrop.Rejected;
            }
            _post(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, reason.ToString()));
            return WireDrop.Rejected; // reported above with the precise reason
        }
    }

    /// <summary>Statistics (worker → shard 0) and restore frames (coordinator → shard): staged by ShardCheckpointing.</summary>
    private WireDrop? RentOther(FrameHeader header, out Span<float> destination)
    {
        destination = Span<float>.Empty;
        lock (_gate)
        {
            if (header.Kind == FrameKind.Statistics)
            {
                if (!_workers.Contains(header.SenderId)) return WireDrop.NotPermitted;
                // Async: statistics of a micro-batch already applied (a re-executed copy) would never be folded.
                var reason = TrainingDrop.Duplicate;
                destination = _async is { } q && q.IsAppliedOrUnknown(header.Step, header.MicroBatch) ? Span<float>.Empty
                    : _extras.RentStatistics(header, out reason);
                if (reason == TrainingDrop.None) return null;
                if (reason != TrainingDrop.Duplicate)
                    _post(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, $"statistics: {reason}"));
                return WireDrop.Rejected;
            }
            // Restore frames replace the shard's state: only the coordinator sends them.
            if (header.SenderId != CoordinatorSender) return WireDrop.NotPermitted;
            destination = header.Kind is FrameKind.Parameters or FrameKind.OptimizerState or FrameKind.Buffers
                ? _extras.RentRestore(header) : Span<float>.Empty;
            return destination.IsEmpty && header.Length > 0 ? WireDrop.Rejected : null;
        }
    }

    void IFrameHandler.OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
    {
        if (header.Kind == FrameKind.Statistics) { lock (_gate) _extras.StatisticsArrived(header); return; }
        if (!header.IsGradient)
        {
            bool complete;
            lock (_gate) complete = _extras.RestoreArrived(header);
            if (complete) _post(new RestoreComplete());
            return;
        }
        ChunkCommit result;
        lock (_gate)
        {
            _receiving.Remove(header.SenderId);
            result = _async is { } q ? (q.Commit(header.Step, header.MicroBatch) ? ChunkCommit.Completed : ChunkCommit.NotFinite)
                : _shard.Aggregator.Commit(header.Step, header.MicroBatch, ChunkOffset(header), header.Length, header.SenderId);
            if (_async is null && result != ChunkCommit.NotFinite)
            {
                // Two copies received side by side (a backup of a straggler): the second chunk to end is checked against the first.
                var key = (header.Step, header.MicroBatch, header.Offset);
                if (_kept.TryAdd(key, (header.Checksum, header.SenderId))) _keptOrder.Enqueue(key);
                else if (_kept[key] is var kept && kept.Sender != header.SenderId && kept.Checksum != header.Checksum)
                    _post(new CopiesDiffer(kept.Sender, header.SenderId, header.Step, header.MicroBatch, header.Offset));
            }
        }
        if (result is ChunkCommit.Stored or ChunkCommit.Superseded) return; // more chunks to come, or another copy counted
        _post(result == ChunkCommit.Completed ? new GradientArrived(header.SenderId, header.Step, header.MicroBatch)
            : new GradientDropped(header.SenderId, header.Step, header.MicroBatch, $"gradient chunk {header.Offset}+{header.Length} is not finite (NaN or infinity)"));
    }

    /// <summary>Whether a gradient frame of (step, micro-batch) from <paramref name="senderId"/> is arriving (reserved, not complete).</summary>
    public bool IsReceiving(int senderId, long step, int microBatch)
    {
        lock (_gate) return _receiving.TryGetValue(senderId, out var r) && r == (step, microBatch);
    }

    void IFrameHandler.OnPeerDisconnected(int senderId) => _post(new PeerDisconnected(senderId));

    private int ChunkOffset(in FrameHeader header) => (int)(header.Offset - _shard.Range.Offset);

    void IFrameHandler.OnDropped(in FrameHeader header, WireDrop reason)
    {
        if (reason is WireDrop.Rejected or WireDrop.NotPermitted) return; // Rent refused it (and reported why, or counted a sender out of role)
        if (header.Kind == FrameKind.Statistics) { lock (_gate) _extras.StatisticsDropped(header); return; }
        if (!header.IsGradient) return; // a restore frame: the coordinator's send fails and it says so
        lock (_gate) _receiving.Remove(header.SenderId);
        // A frame that failed after Rent (checksum, tag, lost connection) frees its slot so it can arrive again.
        if (reason is WireDrop.BadChecksum or WireDrop.BadMac or WireDrop.ConnectionLost)
            lock (_gate)
            {
                if (_async is not null) _async.Abort(header.Step, header.MicroBatch, TrainingDrop.Corrupt);
                else _shard.Aggregator.Abort(header.Step, header.MicroBatch, ChunkOffset(header), header.Length, TrainingDrop.Corrupt, header.SenderId);
            }
        _post(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, reason.ToString()));
    }
}

// The coordinator (a cluster singleton): hands shards their key ranges, admits workers whose protocol
// and model agree, plans steps from the seeded epoch plan, leases micro-batches to workers that ask,
// re-queues the work of workers that leave, collects the shards' state at step boundaries for
// checkpoints (and resumes from one), and at the end writes the model and evaluates. Bookkeeping lives in
// WorkQueue, StepLog and CoordinatorCheckpoints; this wires it.
using System.Diagnostics;
using System.Net;
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Data.Plans;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Runtime;

/// <summary>What the coordinator needs besides the job: shard count, output folder, who to tell at the end.</summary>
public sealed record CoordinatorSettings(int Shards, string OutDir, NodeEndpoints Endpoints, TimeSpan LeaseTimeout, int MinWorkers = 1)
{
    public Action<RunCompleted>? OnCompleted { get; init; }
    public Action<string>? OnProgress { get; init; }
    /// <summary>Training mode of the job (DESIGN contract 5); handed to every node in the JobDescription.</summary>
    public ModeOptions Mode { get; init; } = ModeOptions.Sync;
    /// <summary>Checkpoint every N steps as well as at every epoch end; 0 = at epoch ends only; negative = never (only the final model).
    /// Sync mode only: async and local-sgd runs write the final model alone.</summary>
    public long CheckpointEvery { get; init; }
    /// <summary>Start from this checkpoint (its step, weights, optimizer state and buffers) instead of step 0 (sync mode). A point at
    /// step 0 is `--init` (ClusterNode.InitialPoint): weights with a fresh optimizer, and a new metrics.jsonl.</summary>
    public DistTrain.Nn.Checkpoints.ResumePoint? Resume { get; init; }
    /// <summary>How long a snapshot may stay incomplete after every shard has passed its version before the coordinator acts:
    /// it asks again for the final state (the shards stay there) and gives up on an intermediate checkpoint (they moved on).</summary>
    public TimeSpan SnapshotGrace { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>Faults a test injects (null in production).</summary>
    public ICoordinatorFaults? Faults { get; init; }
    /// <summary>SHA-256 of the training set (DatasetOps.Fingerprint): workers with other data refuse the job (ClusterNode.DatasetMismatch).</summary>
    public string TrainFingerprint { get; init; } = "";
}

public sealed partial class CoordinatorActor : ReceiveActor
{
    private readonly TrainJob _job;
    private readonly JobDescription _description;
    private readonly CoordinatorSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _self;
    private readonly KeyRange[] _ranges;
    private readonly ShardInfo?[] _shards;
    private readonly IActorRef?[] _shardRefs;
    private readonly Dictionary<string, (IActorRef Ref, RegisterWorker Info)> _workers = [];
    private readonly Dictionary<IActorRef, string> _workerByRef = [];
    private readonly Queue<(string Id, IActorRef Ref)> _idle = new();
    private readonly HashSet<string> _withEndpoint = [];
    private readonly LookaheadQueue _queue;
    private readonly Dictionary<string, IActorRef> _waitingAhead = []; // workers whose newest lease is of the next step
    private readonly long[] _published;
    private readonly int _microBatches;
    private readonly long _totalSteps;
    private readonly long _planSteps;
    private readonly int _stepsPerEpoch;
    private readonly StepLog _stepLog;
    private long _step = -1;
    private bool _finishing;
    // checkpoints: collection at step boundaries, restore on resume
    private readonly CoordinatorCheckpoints _checkpoints;
    private readonly bool[] _restored;
    private readonly Dictionary<long, Action> _snapshots = [];   // asked for, by version
    private readonly Dictionary<long, DateTime> _overdueSince = [];  // snapshots whose version every shard has passed
    private bool _allApplied, _finalCollected;

    private sealed record CollectionArrived(long Version) : INoSerializationVerificationNeeded;
    private sealed record LeaseTick : INoSerializationVerificationNeeded;
    private sealed record SnapshotWatch : INoSerializationVerificationNeeded;

    public CoordinatorActor(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings)
    {
        _job = job;
        _settings = settings;
        _self = Self; // frame handlers run on data-plane threads, where Self is unavailable
        _description = JobMapping.ToDescription(job, Guid.NewGuid().ToString("N")[..12], parameterCount, settings.Mode);
        _description = _description with { Dataset = _description.Dataset with { TrainSamples = trainCount, TrainFingerprint = settings.TrainFingerprint } };
        _ranges = DistTrain.Cluster.Training.KeyRanges.Split(parameterCount, settings.Shards);
        _shards = new ShardInfo?[settings.Shards];
        _shardRefs = new IActorRef?[settings.Shards];
        _published = new long[settings.Shards];
        _microBatches = JobMapping.MicroBatchesPerStep(_description);
        _stepsPerEpoch = EpochPlan.CountSteps(trainCount, job.BatchSize);
        _planSteps = job.TotalSteps(trainCount);
        _totalSteps = settings.Mode.Units(_planSteps); // work units with a barrier after each: steps, or local-sgd rounds
        _queue = new LookaheadQueue(settings.Shards, settings.LeaseTimeout, _microBatches, _totalSteps);
        _stepLog = new StepLog(Path.Combine(settings.OutDir, "metrics.jsonl"), _microBatches, _stepsPerEpoch, job.CreateSchedule(trainCount),
            append: settings.Resume is { Step: > 0 })
        {
            StepOfUnit = unit => settings.Mode.LastStepOf(unit, _planSteps),
        };
        _checkpoints = new CoordinatorCheckpoints(job, _ranges, settings.Endpoints, v => _self.Tell(new CollectionArrived(v)),
            optimizerState: _description.Hyper.Mode != TrainingMode.LocalSgd)
        {
            DropFrame = settings.Faults is { } faults ? faults.DropCheckpointFrame : null,
            RunMetadata = settings.Mode.Metadata(),
        };
        _restored = new bool[settings.Shards];
        if (settings.Resume is not null && settings.Mode.Mode != TrainingMode.Sync)
            throw new ArgumentException($"--resume and --init work with sync runs only on the cluster; this run is {settings.Mode.Mode}.");
        if (settings.Resume is { } resume && resume.Values.Length != parameterCount)
            throw new ArgumentException($"{resume} has {resume.Values.Length} parameters but the model has {parameterCount}.");
        InitMode();

        Receive<RequestShard>(OnRequestShard);
        Receive<RegisterShard>(OnRegisterShard);
        Receive<RequestJob>(r => Sender.Tell(r.ProtocolVersion == WireProtocol.Version ? _description
            : new RegisterRejected(r.WorkerId, VersionMismatch(r.ProtocolVersion))));
        Receive<RegisterWorker>(OnRegisterWorker);
        Receive<RequestWork>(OnRequestWork);
        Receive<GradientAccepted>(OnAccepted);
        Receive<GradientRejected>(r => _log.Warning("Shard {0} dropped a gradient of step {1} micro-batch {2} from {3}: {4}", r.Shard, r.Step, r.MicroBatch, r.WorkerId, r.Reason));
        Receive<VersionPublished>(OnPublished);
        Receive<NormShare>(OnNormShare);
        Receive<MicroBatchDone>(d => _stepLog.Add(d));
        Receive<Terminated>(t => OnWorkerLeft(t.ActorRef));
        Receive<CollectionArrived>(c =>
        {
            if (!_snapshots.Remove(c.Version, out var then)) return;
            _overdueSince.Remove(c.Version);
            then();
            // The final state stays until Finish has written it: it can arrive before the last VersionPublished does.
            if (c.Version != FinalVersion) _checkpoints.Release(c.Version);
        });
        Receive<ShardRestored>(OnShardRestored);
        Receive<LeaseTick>(_ => { if (!_finishing) { ServeIdle(); ServeWaitingAhead(); } });
        Receive<SnapshotWatch>(_ => WatchSnapshots());
    }

    protected override void PreStart() =>
        Timers.StartPeriodicTimer("snapshot-watch", new SnapshotWatch(), TimeSpan.FromSeconds(Math.Clamp(_settings.SnapshotGrace.TotalSeconds / 4, 0.1, 5)));

    public static Props Props(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(job, trainCount, parameterCount, settings));

    protected override void PostStop()
    {
        _checkpoints.Dispose();
        _stepLog.Dispose();
    }

    private static string VersionMismatch(int theirs) =>
        $"protocol version {theirs} differs from the coordinator's {WireProtocol.Version}; run the same DistTrain build on every node.";

    private void OnRequestShard(RequestShard r)
    {
        if (r.ProtocolVersion != WireProtocol.Version) { Sender.Tell(new RegisterRejected(r.NodeId, VersionMismatch(r.ProtocolVersion))); return; }
        int s = Array.FindIndex(_shardRefs, x => x is not null && x.Equals(Sender));
        if (s < 0) s = Array.FindIndex(_shardRefs, x => x is null);
        if (s < 0)
        {
            var taken = string.Join(", ", _ranges.Select((k, i) => $"shard {i} {k} on {_shards[i]?.OwnerAddress ?? _shardRefs[i]!.Path.Address.ToString()}"));
            _log.Warning("Parameter-server actor {0} refused: every key range is taken ({1})", r.NodeId, taken);
            Sender.Tell(new RegisterRejected(r.NodeId, $"all {_shards.Length} key ranges of the {_description.ParameterCount} parameters are taken ({taken}); " +
                "start the job with more --ps-shards, or a lower --ps-local so the coordinator's process hosts fewer of them."));
            return;
        }
        _shardRefs[s] = Sender;
        Context.Watch(Sender);
        Sender.Tell(new ShardAssignment(s, _shards.Length, _ranges[s].Offset, _ranges[s].Length, _description));
    }

    private void OnRegisterShard(RegisterShard r)
    {
        _shards[r.Shard] = new ShardInfo(r.Shard, r.Offset, r.Length, r.OwnerAddress, r.DataHost, r.DataPort);
        if (_settings.Resume is { } resume && !_restored[r.Shard] && _step < 0)
        {
            try { _checkpoints.SendRestore(resume, _shards[r.Shard]!, JobMapping.SenderIdOf("coordinator")); }
            catch (IOException e) { _log.Error("Cannot send shard {0} its checkpoint state: {1}", r.Shard, e.Message); }
            return; // up once it answers ShardRestored
        }
        _restored[r.Shard] = true;
        if (AllShardsUp) foreach (var (id, w) in _workers) Accept(id, w.Ref);
        MaybeStart();
    }

    private bool AllShardsUp => _shards.All(s => s is not null) && _restored.All(x => x);

    private void OnShardRestored(ShardRestored r)
    {
        if ((uint)r.Shard >= (uint)_restored.Length || _restored[r.Shard]) return;
        _restored[r.Shard] = true;
        _settings.OnProgress?.Invoke($"PS shard {r.Shard} restored at step {r.Version}");
        if (AllShardsUp) foreach (var (id, w) in _workers) Accept(id, w.Ref);
        MaybeStart();
    }

    private void OnRegisterWorker(RegisterWorker r)
    {
        if (r.ProtocolVersion != WireProtocol.Version) { Sender.Tell(new RegisterRejected(r.WorkerId, VersionMismatch(r.ProtocolVersion))); return; }
        if (r.SpecHash != _description.SpecHash)
        {
            Sender.Tell(new RegisterRejected(r.WorkerId, $"model spec hash {r.SpecHash[..Math.Min(12, r.SpecHash.Length)]} differs from the job's {_description.SpecHash[..12]}; the worker built another model."));
            return;
        }
        _workers[r.WorkerId] = (Sender, r);
        _workerByRef[Sender] = r.WorkerId;
        Context.Watch(Sender);
        if (AllShardsUp) Accept(r.WorkerId, Sender);
        _settings.OnProgress?.Invoke($"worker {r.WorkerId} joined ({_workers.Count} in all)");
        MaybeStart();
    }

    private void Accept(string id, IActorRef worker) =>
        worker.Tell(new RegisterAccepted(id, new ParameterServerMessages.ShardLayout(_description.ParameterCount, _shards.Select(s => s!).ToArray()), Math.Max(_step, 0)));

    private void MaybeStart()
    {
        if (_step >= 0 || !AllShardsUp || _workers.Count < _settings.MinWorkers) return;
        long first = _settings.Resume?.Step ?? 0;
        if (first >= _totalSteps) { _step = first; _allApplied = true; Snapshot(first, Final); return; } // resumed a finished run: write its output again
        BeginStep(first);
    }

    private void BeginStep(long step)
    {
        if (_async is not null) { BeginAsync(); return; }
        bool first = _step < 0;
        if (first)
        {
            _queue.Begin(step); // step 0, or the checkpoint's step on resume
            // An expired lease (a worker alive but stuck) is handed out again only when someone is served: the idle
            // workers and those waiting ahead are served once a second, so a straggler costs at most its lease.
            Timers.StartPeriodicTimer("lease-tick", new LeaseTick(), TimeSpan.FromSeconds(1));
        }
        else _queue.Advance(); // leases already taken on this step stay with their workers
        _step = step;
        _waitingAhead.Clear();
        _stepLog.Begin(step);
        RequestSnapshots(step, first);
        ServeIdle();
    }

    /// <summary>
    /// Asks the shards, when step t begins, for their state at version t+2 (t+1 too on the first step) if that is a
    /// checkpoint or the end. With micro-batches leased one step ahead a shard can reach version t+2 before the coordinator
    /// hears of t+1, so it must be told two steps early; it sends the moment it reaches the version
    /// (ParameterServerActor.SendDueCheckpoints), from where nothing can move it on meanwhile.
    /// </summary>
    private void RequestSnapshots(long step, bool first)
    {
        for (long v = first ? step + 1 : step + 2; v <= Math.Min(step + 2, _totalSteps); v++)
        {
            long version = v;
            if (version == _totalSteps) Snapshot(version, Final);
            else if (IsCheckpointStep(version)) Snapshot(version, () => WriteCheckpoint(version));
        }
    }

    private void Final() { _finalCollected = true; TryFinish(); }

    private void TryFinish()
    {
        if (_allApplied && _finalCollected && !_finishing) Finish();
    }

    private void OnRequestWork(RequestWork r)
    {
        if (!_workers.TryGetValue(r.WorkerId, out var w)) return;
        // A worker's first request means it holds the shard layout, so it can accept the shards'
        // parameter pushes: only now are the shards told where it listens.
        if (_withEndpoint.Add(r.WorkerId))
            foreach (var s in _shardRefs) s!.Tell(new WorkerEndpoint(r.WorkerId, JobMapping.SenderIdOf(r.WorkerId), w.Info.DataHost, w.Info.DataPort));
        if (!TryAssign(r.WorkerId, Sender)) _idle.Enqueue((r.WorkerId, Sender));
    }

    private bool TryAssign(string id, IActorRef worker)
    {
        if (_async is not null) return TryAssignAsync(id, worker);
        if (_step < 0 || _finishing || _step >= _totalSteps || !_queue.TryLease(id, DateTime.UtcNow, out long step, out int mb)) return false;
        if (step != _step) _waitingAhead[id] = worker; // it waits for the shards' push of version step
        Assign(worker, step, mb);
        return true;
    }

    private void Assign(IActorRef worker, long step, int mb)
    {
        var (epoch, _) = EpochPlan.Locate(_settings.Mode.FirstStepOf(step), _stepsPerEpoch); // step is a round in local-sgd
        worker.Tell(new WorkAssignment(epoch, step, mb, _microBatches, step));
    }

    /// <summary>Requeued work of the current step goes to workers that hold only a lease ahead: they are
    /// idle until this step is applied, and nobody else may ask again.</summary>
    private void ServeWaitingAhead()
    {
        foreach (var (id, worker) in _waitingAhead)
        {
            if (!_workers.ContainsKey(id)) continue;
            if (!_queue.TryLeaseCurrent(id, DateTime.UtcNow, out int mb)) return;
            Assign(worker, _step, mb);
        }
    }

    private void ServeIdle()
    {
        int n = _idle.Count;
        for (int i = 0; i < n; i++)
        {
            var (id, r) = _idle.Dequeue();
            if (!_workers.ContainsKey(id)) continue;
            if (!TryAssign(id, r)) _idle.Enqueue((id, r));
        }
    }

    /// <summary>--clip-norm (sync): merges the shards' exact Σ g² of a step (order-free, so the bits equal one process's
    /// norm over the whole vector) and tells every shard the global norm once all have sent theirs.</summary>
    private void OnNormShare(NormShare n)
    {
        // A shard that applied step t can complete t+1 before this actor has heard every shard publish t: one step ahead is normal.
        if ((uint)n.Shard >= (uint)_shardRefs.Length || n.Step < _step || n.Step > _step + 1 || n.Digits.Length != DistTrain.Nn.Optimizers.ExactSquareSum.SerializedLength)
        {
            _log.Warning("Ignored a malformed or stale norm share (shard {0}, step {1}) during step {2}", n.Shard, n.Step, _step);
            return;
        }
        foreach (var old in _normShares.Keys.Where(k => k < _step).ToArray()) _normShares.Remove(old);
        if (!_normShares.TryGetValue(n.Step, out var parts)) _normShares[n.Step] = parts = new DistTrain.Nn.Optimizers.ExactSquareSum?[_shardRefs.Length];
        if (parts[n.Shard] is not null) return;
        parts[n.Shard] = DistTrain.Nn.Optimizers.ExactSquareSum.FromDigits(n.Digits);
        if (parts.Any(p => p is null)) return;
        _normShares.Remove(n.Step);
        var total = new DistTrain.Nn.Optimizers.ExactSquareSum();
        foreach (var part in parts) total.Add(part!.Value);
        var clip = new ApplyClipped(n.Step, Math.Sqrt(total.ToDouble()));
        foreach (var s in _shardRefs) s!.Tell(clip);
    }

    private readonly Dictionary<long, DistTrain.Nn.Optimizers.ExactSquareSum?[]> _normShares = [];

    private void OnAccepted(GradientAccepted a) => _queue.Acknowledge(a.Step, a.MicroBatch, a.Shard);

    private void OnPublished(VersionPublished p)
    {
        _published[p.Shard] = Math.Max(_published[p.Shard], p.Version);
        if (_published.Any(v => v <= _step)) return; // some shard has not applied this step yet
        _stepLog.End(_step);
        long next = _step + 1;
        if (next % 20 == 0 || next == _totalSteps) _settings.OnProgress?.Invoke(_stepLog.Summary(next, _totalSteps));
        if (_settings.Faults?.CrashAfter(next) == true) { Crash(next); return; }
        if (next >= _totalSteps) { _allApplied = true; TryFinish(); return; }
        BeginStep(next);
    }

    /// <summary>The shards' version at the end: one per step (sync) or round (local-sgd), one per micro-batch (async).</summary>
    private long FinalVersion => _async?.Total ?? _totalSteps;

    private bool IsCheckpointStep(long step) =>
        _settings.CheckpointEvery >= 0 && _settings.Mode.Mode == TrainingMode.Sync && (step % _stepsPerEpoch == 0 || (_settings.CheckpointEvery > 0 && step % _settings.CheckpointEvery == 0));

    private void Crash(long step)
    {
        _finishing = true;
        _settings.OnCompleted?.Invoke(new RunCompleted(step, null, double.NaN, double.NaN, $"stopped after step {step} (an injected fault)"));
    }

    private void OnWorkerLeft(IActorRef who)
    {
        if (!_workerByRef.Remove(who, out var id)) return;
        _workers.Remove(id);
        _withEndpoint.Remove(id);
        _waitingAhead.Remove(id);
        int requeued = _async?.WorkerLeft(id) ?? _queue.WorkerLeft(id);
        foreach (var s in _shardRefs) s?.Tell(new WorkerGone(id));
        if (_finishing)
        {
            // The run is over and the workers are shutting down: expected, nothing to re-queue, not a warning.
            _settings.OnProgress?.Invoke($"worker {id} left after the run");
            return;
        }
        _log.Warning("Worker {0} left; {1} micro-batch(es) of step {2} re-queued", id, requeued, _step);
        _settings.OnProgress?.Invoke($"worker {id} left; {requeued} micro-batch(es) re-queued, {_workers.Count} worker(s) remain");
        ServeIdle();
        ServeWaitingAhead();
    }

    // ---- checkpoints and the end of the run: collect every shard's state over the data plane ----

    /// <summary>Asks every shard for its state at <paramref name="version"/>, then runs <paramref name="then"/> once it is all here.</summary>
    private void Snapshot(long version, Action then)
    {
        if (!_snapshots.TryAdd(version, then)) return;
        var ask = _checkpoints.Begin(version);
        foreach (var s in _shardRefs) s!.Tell(ask);
    }

    /// <summary>
    /// A shard's checkpoint send can fail (a broken connection, a frame dropped as corrupt) and nothing else would notice:
    /// without this the coordinator would wait for the final state forever. Once every shard has passed a snapshot's
    /// version and its frames are still missing after the grace period, the final state is asked for again (the shards stay
    /// at the last version, and frames that did arrive are simply overwritten with the same bits), and an intermediate
    /// checkpoint is given up (the shards have moved on; the previous checkpoint stays the one to resume from).
    /// </summary>
    private void WatchSnapshots()
    {
        if (_finishing || _snapshots.Count == 0) return;
        var now = DateTime.UtcNow;
        foreach (var version in _snapshots.Keys.ToArray())
        {
            if (_published.Any(p => p < version)) continue; // not reached yet: nothing was due
            if (!_overdueSince.TryGetValue(version, out var since)) { _overdueSince[version] = now; continue; }
            if (now - since < _settings.SnapshotGrace) continue;
            _overdueSince[version] = now;
            if (version == FinalVersion)
            {
                _log.Warning("The shards' final state (version {0}) is incomplete after {1:F0} s; asking the shards again", version, _settings.SnapshotGrace.TotalSeconds);
                _settings.OnProgress?.Invoke($"final state of version {version} incomplete after {_settings.SnapshotGrace.TotalSeconds:F0} s; asking the shards again");
                var ask = _checkpoints.Ask(version);
                foreach (var s in _shardRefs) s!.Tell(ask);
            }
            else
            {
                _snapshots.Remove(version);
                _overdueSince.Remove(version);
                _checkpoints.Release(version);
                _log.Error("Checkpoint of step {0} not written: a shard's state did not arrive; the previous checkpoint stays the one to resume from", version);
                _settings.OnProgress?.Invoke($"checkpoint of step {version} NOT written: a shard's state did not arrive within {_settings.SnapshotGrace.TotalSeconds:F0} s");
            }
        }
    }

    private void WriteCheckpoint(long step)
    {
        try
        {
            var started = Stopwatch.GetTimestamp();
            var dir = _checkpoints.Write(_settings.OutDir, _stepsPerEpoch, step);
            double ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds; // the write; the shards sent while training went on
            _settings.OnProgress?.Invoke($"checkpoint: step {step} -> {dir} ({ms:F0} ms)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // Training goes on; the previous checkpoint stays the one to resume from.
            _log.Error("Checkpoint of step {0} not written: {1}", step, e.Message);
            _settings.OnProgress?.Invoke($"checkpoint of step {step} NOT written: {e.Message}");
        }
    }

    private void Finish()
    {
        _finishing = true;
        if (_settings.CheckpointEvery >= 0 && _settings.Mode.Mode == TrainingMode.Sync) WriteCheckpoint(_totalSteps);
        RunCompleted result;
        try
        {
            var (values, buffers) = _checkpoints.Collected(FinalVersion);
            result = ModelOutput.SaveAndEvaluate(_job, values, _planSteps, _settings.OutDir, _stepLog, buffers, _settings.Mode.Metadata(),
                _checkpoints.CollectedState(FinalVersion), _checkpoints.OptimizerDescription);
        }
        catch (Exception e) { result = new RunCompleted(_planSteps, null, double.NaN, double.NaN, e.Message); }
        var done = new TrainingDone(_planSteps, _totalSteps, result.Error);
        foreach (var w in _workers.Values) w.Ref.Tell(done);
        foreach (var s in _shardRefs) s?.Tell(done);
        _settings.OnCompleted?.Invoke(result);
    }
}

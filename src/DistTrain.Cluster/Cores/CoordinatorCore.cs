// The coordinator as a plain class: hands shards their key ranges, admits workers whose protocol and model agree,
// leases micro-batches to workers that ask (how is the mode's: IWorkPlan), re-queues the work of workers that
// leave, collects the shards' state at versions that are checkpoints or the end, and finishes the run. It takes
// events (a peer's message, a peer that left, a snapshot collected, a timer) and returns effects; time comes from
// the clock it is given. CoordinatorActor only translates.
using System.Diagnostics;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Data.Plans;
using DistTrain.Nn.Optimizers;
using DistTrain.Nn.Training;
using DistTrain.Training;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Cores;

/// <summary>The coordinator's run is over: what it wrote, or why it stopped.</summary>
public sealed record Completed(RunCompleted Result) : Effect;

/// <summary>Hold an idle data-plane connection to shard <paramref name="Shard"/>'s listener and call the core's ShardLinkLost when
/// it closes: a process that dies closes it at once, long before Akka's failure detector and downing.</summary>
public sealed record WatchShardLink(int Shard, string Host, int Port) : Effect;

/// <summary>
/// A peer's data-plane connection ended: if its listener <paramref name="Host"/>:<paramref name="Port"/> refuses a connection
/// its process is gone, and its node (the actor id <paramref name="PeerId"/> without its last segment) is downed now. Until
/// Akka's failure detector and the split-brain resolver would (~8 s), the dead member holds the cluster's convergence, and
/// nodes that join meanwhile (a restarted worker, a standby) cannot become Up.
/// </summary>
public sealed record DownIfDead(string PeerId, string Host, int Port, string What) : Effect;

/// <summary>
/// What a coordinator knows that its shards and workers do not: where the run is, which micro-batches every shard
/// has, which shard owns which range, which snapshots are asked for. Peers and leases are not in it: a coordinator
/// restored from it waits for the shards and workers to register again and hands out everything not done.
/// </summary>
public sealed record CoordinatorSnapshot(string JobId, long Step, long[] Published, ShardInfo?[] Shards, WorkLedger Ledger,
    bool AllApplied, bool FinalCollected, long[] PendingSnapshots);

/// <summary>Per micro-batch, the shards that have it (bit s: shard s). Step barrier: <paramref name="Step"/> and the step
/// leased ahead (<paramref name="Ahead"/>, null if none); async: every micro-batch of the run, <paramref name="Step"/>
/// being the ordinal up to which the plan was handed out.</summary>
public sealed record WorkLedger(long Step, int[] Acks, int[]? Ahead);

public sealed partial class CoordinatorCore : IDisposable
{
    public const string LeaseTimer = "lease-tick", SnapshotTimer = "snapshot-watch";

    private readonly TrainJob _job;
    private readonly CoordinatorSettings _settings;
    private readonly ICoordinatorStore _store;
    private readonly Func<DateTime> _clock;
    private readonly EffectList _out = new();
    private readonly IWorkPlan _plan;
    private readonly KeyRange[] _ranges;
    private readonly ShardInfo?[] _shards;
    private readonly string?[] _shardPeers;
    private readonly bool[] _restored;
    private readonly long[] _published;
    private readonly Dictionary<string, (string Peer, RegisterWorker Info)> _workers = [];
    private readonly Dictionary<string, string> _workerByPeer = [];
    private readonly Queue<(string Id, string Peer)> _idle = new();
    private readonly HashSet<string> _withEndpoint = [];
    private readonly Dictionary<long, Action> _snapshots = [];       // asked for, by version
    private readonly Dictionary<long, DateTime> _overdueSince = [];  // snapshots whose version every shard has passed
    private readonly Dictionary<long, ExactSquareSum?[]> _normShares = [];
    private readonly int _microBatches;
    private readonly int _stepsPerEpoch;
    private readonly long _planSteps;
    private readonly long _units;          // work units with a barrier after each: steps, or local-sgd rounds
    private readonly StepLog _log;
    private readonly LeasePolicy _lease;
    private readonly BackupPolicy _backup;
    private long _step = -1;               // the unit being applied (async: 0 once started); -1 before the start
    private long _recoveryVersion;         // sync: the newest state held whole (the start, or a snapshot collected since)
    private bool _recovering;              // a shard was lost: every shard is being rolled back to _recoveryVersion
    private readonly Dictionary<string, string> _spares = [];   // PS actors told that every range has an owner, with their node ids
    private readonly int[] _shardIds;      // per shard: the data-plane sender id of the node it is assigned to (its keys are for it)
    private bool _held = true;             // the store holds the state at _recoveryVersion (not yet, after a take-over)
    private bool _awaitingRejoin;          // took over from a coordinator whose node died: waiting for every shard to rejoin
    private readonly (long Version, long[] Kept)[] _rejoined;
    private DateTime _takeoverSince;
    private bool _finishing, _allApplied, _finalCollected;

    public CoordinatorCore(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings, ICoordinatorStore store,
        Func<DateTime>? clock = null, string? jobId = null) : this(job, trainCount, parameterCount, settings, store, clock, jobId, restored: false)
    {
    }

    private CoordinatorCore(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings, ICoordinatorStore store,
        Func<DateTime>? clock, string? jobId, bool restored)
    {
        if (settings.Resume is { } resume && resume.Values.Length != parameterCount)
            throw new ArgumentException($"{resume} has {resume.Values.Length} parameters but the model has {parameterCount}.");
        (_job, _settings, _store, _clock) = (job, settings, store, clock ?? (() => DateTime.UtcNow));
        var takeover = settings.TakeOver;
        Description = JobMapping.ToDescription(job, jobId ?? takeover?.JobId ?? Guid.NewGuid().ToString("N")[..12], parameterCount, settings.Mode);
        Description = Description with { Dataset = Description.Dataset with { TrainSamples = trainCount, TrainFingerprint = settings.TrainFingerprint } };
        // The shards and workers hold keys derived from the job's data-plane key: a coordinator that takes over keeps it.
        Keys = new JobKeys(takeover is null ? DataPlane.DataPlaneKey.Create() : DataPlane.DataPlaneKey.FromWire(takeover.DataKey));
        _ranges = KeyRanges.Split(parameterCount, settings.Shards);
        _shards = new ShardInfo?[settings.Shards];
        _shardPeers = new string?[settings.Shards];
        _shardIds = new int[settings.Shards];
        _restored = new bool[settings.Shards];
        _published = new long[settings.Shards];
        _rejoined = new (long, long[])[settings.Shards];
        _microBatches = JobMapping.MicroBatchesPerStep(Description);
        _stepsPerEpoch = EpochPlan.CountSteps(trainCount, job.BatchSize);
        _planSteps = job.TotalSteps(trainCount);
        _units = settings.Mode.Units(_planSteps);
        _log = new StepLog(Path.Combine(settings.OutDir, "metrics.jsonl"), _microBatches, _stepsPerEpoch, job.CreateSchedule(trainCount),
            append: restored || takeover is not null || settings.Resume is { Step: > 0 })
        {
            StepOfUnit = unit => settings.Mode.LastStepOf(unit, _planSteps),
        };
        if (restored || takeover is not null || settings.Resume is { Step: > 0 }) _log.SkipWritten(_units);
        if (!restored && takeover is null) _log.Record("run", settings.Mode.Metadata());
        if (takeover is not null)
        {
            _awaitingRejoin = true;
            _takeoverSince = _clock();
        }
        _recoveryVersion = settings.Resume?.Step ?? 0;
        _backup = new BackupPolicy(settings.BackupMultiple);
        _lease = new LeasePolicy(settings.LeaseFloor < settings.LeaseTimeout ? settings.LeaseFloor : settings.LeaseTimeout, settings.LeaseStepMultiple,
            settings.LeaseTimeout);
        _plan = settings.Mode.Mode == TrainingMode.Async ? new AsyncPlan(this) : new BarrierPlan(this);
    }

    public JobDescription Description { get; }

    /// <summary>The job's data-plane keys: this coordinator hands each node only those of the pairs it is in.</summary>
    public JobKeys Keys { get; }

    /// <summary>The state to rebuild this coordinator from (<see cref="Restore"/>), e.g. on another node.</summary>
    public CoordinatorSnapshot Snapshot() =>
        new(Description.JobId, _step, _published.ToArray(), _shards.ToArray(), _plan.Ledger(), _allApplied, _finalCollected, _snapshots.Keys.Order().ToArray());

    /// <summary>
    /// A coordinator that continues from <paramref name="snapshot"/>: each shard gets its range back when its node asks
    /// again, workers register again, every micro-batch not done goes out again, and the snapshots that were asked for
    /// are asked for again once every shard is back. Its metrics.jsonl is continued.
    /// </summary>
    public static CoordinatorCore Restore(CoordinatorSnapshot snapshot, TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings,
        ICoordinatorStore store, Func<DateTime>? clock = null)
    {
        var core = new CoordinatorCore(job, trainCount, parameterCount, settings, store, clock, snapshot.JobId, restored: true);
        core.Load(snapshot);
        return core;
    }

    private long[] _askAgain = [];

    private void Load(CoordinatorSnapshot s)
    {
        if (s.Shards.Length != _shards.Length || s.Published.Length != _published.Length)
            throw new ArgumentException($"The snapshot has {s.Shards.Length} shards but this run has {_shards.Length}; restore it with the same --ps-shards.");
        _step = s.Step;
        s.Published.CopyTo(_published, 0);
        s.Shards.CopyTo(_shards, 0);
        (_allApplied, _finalCollected, _askAgain) = (s.AllApplied, s.FinalCollected, s.PendingSnapshots);
        if (_step >= 0) _plan.Restore(s.Ledger);
    }

    /// <summary>Timers the core needs from the start.</summary>
    public IReadOnlyList<Effect> Start()
    {
        _out.Add(new StartTimer(SnapshotTimer, TimeSpan.FromSeconds(Math.Clamp(_settings.SnapshotGrace.TotalSeconds / 4, 0.1, 5))));
        return _out.Take();
    }

    /// <summary>A control message from the peer known as <paramref name="from"/>.</summary>
    public IReadOnlyList<Effect> Handle(string from, object message)
    {
        switch (message)
        {
            case RequestShard r: OnRequestShard(from, r); break;
            case RegisterShard r: OnRegisterShard(from, r); break;
            case RejoinShard r: OnRejoin(from, r); break;
            case ShardRestored r: OnShardRestored(r); break;
            case RequestJob r:
                _out.Send(from, r.ProtocolVersion == WireProtocol.Version ? Description with { DataKey = Keys.WorkerListener(r.WorkerId) }
                    : new RegisterRejected(r.WorkerId, VersionMismatch(r.ProtocolVersion)));
                break;
            case RegisterWorker r: OnRegisterWorker(from, r); break;
            case RequestWork r: OnRequestWork(from, r); break;
            case GradientRejected r: OnRejected(r); break;
            case PeerConnectionLost l when Array.IndexOf(_shardPeers, from) == l.Shard: OnConnectionLost(l); break;
            case MicroBatchDone d:
                _log.Add(d);
                // What a micro-batch costs a worker (its compute and sending), not lease to done: a lease taken ahead, or while the
                // worker still sends the one before, waits before it starts, and that wait would hide a straggler.
                if (d.ComputeMs + d.CommunicationMs is var ms && double.IsFinite(ms)) _backup.Completed(TimeSpan.FromMilliseconds(ms));
                break;
            case NormShare n when !_recovering: OnNormShare(n); break;
            case GradientMismatch m: OnMismatch(m); break;
            case var _ when _recovering: break; // the shards' word on versions that are being rolled back
            default: _plan.Handle(message); break;
        }
        return _out.Take();
    }

    /// <summary>A watched peer stopped, or its node left.</summary>
    public IReadOnlyList<Effect> PeerLeft(string peer)
    {
        if (_workerByPeer.Remove(peer, out var id)) OnWorkerLeft(id);
        else if (Array.IndexOf(_shardPeers, peer) is >= 0 and var s) ShardLost(s, "its actor stopped or its node left the cluster");
        _spares.Remove(peer);
        return _out.Take();
    }

    /// <summary>The idle connection to a shard's data-plane listener (WatchShardLink) closed: its process is gone.</summary>
    public IReadOnlyList<Effect> ShardLinkLost(int shard, string host, int port)
    {
        if ((uint)shard < (uint)_shards.Length && _shards[shard] is { } info && info.DataHost == host && info.DataPort == port)
        {
            if (!_finishing) _out.Add(new DownIfDead(info.OwnerAddress, host, port, $"PS shard {shard}")); // at the end they exit anyway
            ShardLost(shard, $"its data-plane listener {host}:{port} closed the coordinator's connection (the process died)");
        }
        return _out.Take();
    }

    /// <summary>Every shard's state at <paramref name="version"/> has arrived (ICoordinatorStore.Begin).</summary>
    public IReadOnlyList<Effect> Collected(long version)
    {
        if (_snapshots.Remove(version, out var then))
        {
            _overdueSince.Remove(version);
            then();
            // The final state stays until Finish has written it: it can arrive before the last version is published.
            if (version != _plan.FinalVersion) Keep(version);
        }
        return _out.Take();
    }

    public IReadOnlyList<Effect> Timer(string name)
    {
        if (name == SnapshotTimer) { WatchSnapshots(); WatchTakeover(); }
        else if (!_finishing && !_recovering) _plan.Timer(name);
        return _out.Take();
    }

    public void Dispose()
    {
        _store.Dispose();
        _log.Dispose();
    }

    private static string VersionMismatch(int theirs) =>
        $"protocol version {theirs} differs from the coordinator's {WireProtocol.Version}; run the same DistTrain build on every node.";

    // ---- admission: shards and workers ----

    private void OnRequestShard(string from, RequestShard r)
    {
        if (r.ProtocolVersion != WireProtocol.Version) { _out.Send(from, new RegisterRejected(r.NodeId, VersionMismatch(r.ProtocolVersion))); return; }
        int s = Array.IndexOf(_shardPeers, from);
        // After a restore a range whose owner is known waits for that node: its state lives there.
        if (s < 0) s = Array.FindIndex(_shards, i => i is not null && i.OwnerAddress == r.NodeId && _shardPeers[i.Shard] is null);
        if (s < 0) s = Enumerable.Range(0, _shards.Length).FirstOrDefault(i => _shardPeers[i] is null && _shards[i] is null, -1);
        if (s < 0 || _awaitingRejoin)
        {
            // A spare: it keeps asking, and the first to ask after a shard is lost takes that shard's range.
            if (!_spares.TryAdd(from, r.NodeId)) return;
            var taken = string.Join(", ", _ranges.Select((k, i) => $"shard {i} {k} on {_shards[i]?.OwnerAddress ?? _shardPeers[i]}"));
            _out.Add(new Watch(from));
            _out.Report($"PS actor {r.NodeId} waits as a spare: all {_shards.Length} key ranges are taken");
            _out.Send(from, new ShardStandby($"all {_shards.Length} key ranges of the {Description.ParameterCount} parameters are taken ({taken}); " +
                "it takes over the range of a shard that is lost. For more shards, start the job with more --ps-shards (or a lower --ps-local)."));
            return;
        }
        AssignShard(from, s, r.NodeId);
    }

    private void AssignShard(string peer, int s, string nodeId)
    {
        _spares.Remove(peer);
        _shardPeers[s] = peer;
        Assigned(s, JobMapping.ShardSenderId(nodeId, s));
        _out.Add(new Watch(peer));
        _out.Send(peer, new ShardAssignment(s, _shards.Length, _ranges[s].Offset, _ranges[s].Length, Description with { DataKey = Keys.Listener(_shardIds[s]).ToWire() })
            { CoordinatorKey = Keys.ShardToCoordinator(_shardIds[s]) });
    }

    /// <summary>The data-plane sender id of the node shard <paramref name="s"/> is assigned to (its listener's id).</summary>
    public int ShardSenderId(int s) => _shardIds[s];

    /// <summary>Shard <paramref name="s"/> is the node with data-plane sender id <paramref name="id"/>: the keys handed out for it are
    /// that id's, and its checkpoint frames are taken from that id only.</summary>
    private void Assigned(int s, int id)
    {
        _shardIds[s] = id;
        _store.ShardAssigned(s, id);
    }

    private void OnRegisterShard(string from, RegisterShard r)
    {
        // Only from the actor the range was assigned to: a lost shard's late word must not take the range back.
        if ((uint)r.Shard >= (uint)_shards.Length || _shardPeers[r.Shard] != from) return;
        // The layout's owner names the sender id workers take pushes from: it must be the node the keys were made for.
        if (JobMapping.ShardSenderId(r.OwnerAddress, r.Shard) != _shardIds[r.Shard])
        {
            _out.Log(Severity.Warning, $"Refused shard {r.Shard}'s registration from {from}: it names owner {r.OwnerAddress}, not the node it asked as");
            return;
        }
        _shards[r.Shard] = new ShardInfo(r.Shard, r.Offset, r.Length, r.OwnerAddress, r.DataHost, r.DataPort);
        _out.Add(new WatchShardLink(r.Shard, r.DataHost, r.DataPort));
        _out.Report($"shard {r.Shard} of {_shards.Length} holds [{r.Offset}, {r.Offset + r.Length}) on {r.OwnerAddress}");
        if (_recovering || _settings.Resume is not null && !_restored[r.Shard] && _step < 0)
        {
            SendRestore(r.Shard);
            return; // up once it answers ShardRestored
        }
        _restored[r.Shard] = true;
        ShardUp();
    }

    private void OnShardRestored(ShardRestored r)
    {
        if ((uint)r.Shard >= (uint)_restored.Length || _restored[r.Shard] || _recovering && r.Version != _recoveryVersion) return;
        _restored[r.Shard] = true;
        _out.Report($"PS shard {r.Shard} restored at step {r.Version}");
        ShardUp();
    }

    /// <summary>Sends shard <paramref name="shard"/> the state it starts from: the resumed checkpoint, or (recovering) the newest state held.</summary>
    private void SendRestore(int shard)
    {
        long version = _recovering ? _recoveryVersion : _settings.Resume!.Step;
        try { _store.SendRestore(version, _shards[shard]!); }
        catch (IOException e) { _out.Log(Severity.Error, $"Cannot send shard {shard} its state of step {version}: {e.Message}"); }
    }

    // ---- take-over: the coordinator's node died and this one, a standby, became the singleton ----

    /// <summary>How long a coordinator that took over waits for every shard to rejoin before it gives the run up.</summary>
    public static readonly TimeSpan RejoinTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A shard of the run rejoins a coordinator that took over, naming the versions it can roll back to by itself. Once every
    /// range is back, every shard rolls back to the newest version all of them hold (they may be a step apart: one applied a
    /// step whose last gradient another never got), and the steps from there are handed out again: they give the same bits.
    /// </summary>
    private void OnRejoin(string from, RejoinShard r)
    {
        if (!_awaitingRejoin) return; // a repeat that crossed our RollBack
        if (r.JobId != Description.JobId || r.ProtocolVersion != WireProtocol.Version || (uint)r.Shard >= (uint)_shards.Length
            || r.Offset != _ranges[r.Shard].Offset || r.Length != _ranges[r.Shard].Length || r.Kept is null)
        {
            _out.Log(Severity.Warning, $"Refused a rejoin from {from}: shard {r.Shard} [{r.Offset}, +{r.Length}) of job {r.JobId} is not a range of this run " +
                $"(job {Description.JobId}, ranges {string.Join(", ", _ranges.Select(k => k.ToString()))})");
            return;
        }
        if (_shardPeers[r.Shard] is { } other && other != from)
        {
            _out.Log(Severity.Warning, $"Refused a rejoin of shard {r.Shard} from {from}: {other} holds it");
            return;
        }
        if (_shardPeers[r.Shard] is null)
        {
            _shardPeers[r.Shard] = from;
            Assigned(r.Shard, JobMapping.ShardSenderId(r.OwnerAddress, r.Shard));
            _shards[r.Shard] = new ShardInfo(r.Shard, r.Offset, r.Length, r.OwnerAddress, r.DataHost, r.DataPort);
            _out.Add(new Watch(from));
            _out.Add(new WatchShardLink(r.Shard, r.DataHost, r.DataPort));
            _out.Report($"shard {r.Shard} rejoined at {Unit} {r.Version} (it can roll back to {string.Join(", ", r.Kept)})");
        }
        _rejoined[r.Shard] = (r.Version, r.Kept);
        if (_shardPeers.Any(p => p is null)) return;

        var common = new HashSet<long>(_rejoined[0].Kept);
        foreach (var (_, kept) in _rejoined.Skip(1)) common.IntersectWith(kept);
        if (common.Count == 0)
        {
            Fail(0, $"The shards that rejoined hold no common state to continue from ({string.Join("; ", _rejoined.Select((j, i) => $"shard {i}: {string.Join(", ", j.Kept)}"))}); " +
                $"continue the run with `disttrain train ... --resume {_settings.OutDir}`.");
            return;
        }
        // The newest shared version, but not past the first step without a line in metrics.jsonl: the steps whose lines died
        // unwritten with the old coordinator are computed again and written here.
        long written = (_log.Written + 1) * (_settings.Mode.Mode == TrainingMode.Async ? _microBatches : 1); // async versions count updates
        // A folder without a step line is this standby's own disk (the old coordinator's host, and its metrics, are gone): go on
        // from the newest shared state rather than redo the run from the start for the sake of lines that are lost anyway.
        bool ownFolder = _log.Written < 0;
        long start = _settings.Resume?.Step ?? 0;
        long at = ownFolder || !common.Any(v => v <= written) ? common.Max() : common.Where(v => v <= written).Max();
        if (ownFolder && at > start)
            _out.Report($"metrics.jsonl in {_settings.OutDir} begins at {Unit} {at}: the lines before it stayed with the coordinator that was lost");
        _awaitingRejoin = false;
        _recovering = true;
        _recoveryVersion = at;
        _held = at == start; // the run's start point the store can always send; any other state it collects once the shards are back
        Array.Fill(_restored, false);
        (_lostAt, _lossWhat) = (_takeoverSince, "this coordinator took over");
        _out.Report($"took over the run: every shard rolls back to {Unit} {at} ({Unit}s up to {_rejoined.Max(j => j.Version)} had been applied)");
        foreach (var p in _shardPeers) _out.Send(p!, new RollBack(at));
    }

    /// <summary>A coordinator that took over gives up when a shard never rejoins: its state died with it.</summary>
    private void WatchTakeover()
    {
        if (!_awaitingRejoin || _finishing || _clock() - _takeoverSince < RejoinTimeout) return;
        var missing = Enumerable.Range(0, _shards.Length).Where(i => _shardPeers[i] is null).ToArray();
        Fail(0, $"This coordinator took over, but PS shard(s) {string.Join(", ", missing)} did not rejoin within {RejoinTimeout.TotalSeconds:0} s " +
            $"(their processes died with the coordinator's, or cannot reach it); continue the run with `disttrain train ... --resume {_settings.OutDir}`.");
    }

    // ---- recovery: a lost shard's range goes to a spare, and every shard rolls back to the newest state held ----

    /// <summary>
    /// A shard's process is gone (its link closed, or Akka says its actor or node left). Sync: its range goes to the first
    /// spare (or restarted) `ps` actor that asks, every shard is rolled back to the newest state the coordinator holds, and the
    /// steps after it are computed again: they give the same bits, so the run ends as if nothing had happened. The other
    /// shards forget their workers (they are told again where to push once the workers hold the new layout).
    /// </summary>
    private void ShardLost(int s, string why)
    {
        if (_finishing || _shardPeers[s] is null) return;
        string owner = _shards[s]?.OwnerAddress ?? _shardPeers[s]!;
        _shardPeers[s] = null;
        _store.ShardAssigned(s, -1);
        _shards[s] = null;
        _restored[s] = false;
        if (_step < 0)
        {
            _out.Report($"shard {s} lost before the start ({why}); waiting for a ps node to take {_ranges[s]}");
            return;
        }
        if (!_held)
        {
            Fail(_step, $"PS shard {s} on {owner} was lost ({why}) before this coordinator, which took over, held a state to roll back to; " +
                $"continue the run with `disttrain train ... --resume {_settings.OutDir}`.");
            return;
        }
        long at = _settings.Mode.Mode == TrainingMode.Async ? _published.Max() : _step; // async versions count updates
        _recovering = true;
        Array.Fill(_restored, false);
        _idle.Clear();
        _withEndpoint.Clear();
        foreach (var id in _workers.Keys)
            foreach (var p in _shardPeers) if (p is not null) _out.Send(p, new WorkerGone(id));
        _out.Log(Severity.Warning, $"PS shard {s} on {owner} was lost: {why}. Every shard rolls back to {Unit} {_recoveryVersion} (the newest state " +
            $"the coordinator holds) and {Unit}s {_recoveryVersion}..{at} are computed again; range {_ranges[s]} goes to the first spare or restarted ps node");
        _out.Report($"shard {s} lost ({why}) during {Unit} {at}; rolling back to {Unit} {_recoveryVersion}, waiting for a ps node to take {_ranges[s]}");
        for (int i = 0; i < _shards.Length; i++) if (_shards[i] is not null) SendRestore(i);
        // A spare known to be waiting takes the range now rather than at its next ask.
        if (_spares.FirstOrDefault() is { Key: { } spare, Value: var node }) AssignShard(spare, s, node);
        (_lostAt, _lossWhat) = (_clock(), "the shard was lost");
    }

    /// <summary>What a shard's version counts: steps, or rounds in local-sgd.</summary>
    private string Unit => _settings.Mode.Mode switch { TrainingMode.LocalSgd => "round", TrainingMode.Async => "update", _ => "step" };

    private DateTime? _lostAt;   // when the last shard was lost, until the first step after the roll-back is applied
    private string _lossWhat = "the shard was lost";

    /// <summary>A step was applied: the first after a roll-back says how long the recovery took.</summary>
    private void ReportRecovery(long step)
    {
        if (_lostAt is not { } at) return;
        _lostAt = null;
        _out.Report($"{Unit} {step} applied {(_clock() - at).TotalSeconds:0.00} s after {_lossWhat} (recovered)");
    }

    /// <summary>Every shard is back at the recovery version: the work from there is handed out again, to workers that take the new layout.</summary>
    private void Recovered()
    {
        _recovering = false;
        Array.Fill(_published, _recoveryVersion);
        _idle.Clear();
        _overdueSince.Clear();
        foreach (long v in _snapshots.Keys)
        {
            var ask = _store.Ask(v); // the shards forgot the asks for versions past the roll-back
            foreach (var p in _shardPeers) _out.Send(p!, ask);
        }
        _out.Report($"every shard is back at {Unit} {_recoveryVersion}; training continues from there");
        bool first = _step < 0; // a coordinator that took over starts its plan here
        if (!_held) Snapshot(_recoveryVersion, () => { }); // the shards are there: collected at once, and kept (Keep)
        if (first) _plan.Start(_recoveryVersion); else _plan.Restart(_recoveryVersion);
        foreach (var (id, w) in _workers) Accept(id, w.Peer);
    }

    /// <summary>A state collected (not the final one): the newest is what the shards roll back to if one is lost; older ones go.</summary>
    private void Keep(long version)
    {
        if (!_recovering && (version > _recoveryVersion || version == _recoveryVersion && !_held))
        {
            if (_held) _store.Release(_recoveryVersion); // the start's state is not in the store: releasing it does nothing
            _recoveryVersion = version;
            _held = true;
        }
        else _store.Release(version);
    }

    /// <summary>The first checkpoint step and the first replicated step after <paramref name="step"/> that come before the last
    /// unit, or the last unit when neither does.</summary>
    private IEnumerable<long> NextSnapshots(long step)
    {
        long checkpoint = long.MaxValue, replica = long.MaxValue;
        if (_settings.CheckpointEvery >= 0 && _settings.Mode.Mode != TrainingMode.Async)
        {
            // Epoch ends and --checkpoint-every count plan steps; local-sgd checkpoints the round that reaches one.
            checkpoint = _settings.Mode.NextUnitAtBoundary(step, _stepsPerEpoch);
            if (_settings.CheckpointEvery > 0) checkpoint = Math.Min(checkpoint, _settings.Mode.NextUnitAtBoundary(step, _settings.CheckpointEvery));
        }
        if (_settings.Mode.Mode != TrainingMode.Async && _settings.ReplicateEvery > 0)
            replica = (step / _settings.ReplicateEvery + 1) * _settings.ReplicateEvery;
        if (checkpoint < _units) yield return checkpoint;
        if (replica < _units) yield return replica;
        if (Math.Min(checkpoint, replica) >= _units && step < _units) yield return _units;
    }

    private void ShardUp()
    {
        if (!AllShardsUp) return;
        if (_recovering) { Recovered(); return; }
        foreach (var (id, w) in _workers) Accept(id, w.Peer);
        foreach (long v in _askAgain) Snapshot(v, v == _plan.FinalVersion ? Final : () => WriteCheckpoint(v));
        _askAgain = [];
        MaybeStart();
    }

    private bool AllShardsUp => _shards.All(s => s is not null) && _restored.All(x => x);

    private void OnRegisterWorker(string from, RegisterWorker r)
    {
        if (_excluded.Contains(r.WorkerId))
        {
            _out.Send(from, new RegisterRejected(r.WorkerId, "excluded from this run by the determinism audit (see the coordinator's log)"));
            return;
        }
        if (r.ProtocolVersion != WireProtocol.Version) { _out.Send(from, new RegisterRejected(r.WorkerId, VersionMismatch(r.ProtocolVersion))); return; }
        if (r.SpecHash != Description.SpecHash)
        {
            _out.Send(from, new RegisterRejected(r.WorkerId,
                $"model spec hash {r.SpecHash[..Math.Min(12, r.SpecHash.Length)]} differs from the job's {Description.SpecHash[..12]}; the worker built another model."));
            return;
        }
        if (_finishing)
        {
            // Accepted, it would connect to shards that are shutting down; told the run is over, its node finishes.
            _out.Send(from, new TrainingDone(_planSteps, _units, null));
            return;
        }
        if (_workers.TryGetValue(r.WorkerId, out var known) && known.Peer == from && known.Info == r) return; // asked again while a take-over is under way
        _workers[r.WorkerId] = (from, r);
        _workerByPeer[from] = r.WorkerId;
        _probed.Remove(r.WorkerId);
        _withEndpoint.Remove(r.WorkerId); // a restarted worker actor listens on a new port: the shards hear of it at its first request
        _out.Add(new Watch(from));
        if (AllShardsUp) Accept(r.WorkerId, from);
        _out.Report($"worker {r.WorkerId} joined ({_workers.Count} in all)");
        MaybeStart();
    }

    /// <summary>Registers a worker; its layout carries, per shard, the key of the pair (worker, shard).</summary>
    private void Accept(string id, string peer) =>
        _out.Send(peer, new RegisterAccepted(id, new ShardLayout(Description.ParameterCount,
            _shards.Select((s, i) => s! with { Key = Keys.WorkerToShard(id, _shardIds[i]) }).ToArray()), Math.Max(_step, 0)));

    private void MaybeStart()
    {
        if (_step >= 0 || !AllShardsUp || _workers.Count < _settings.MinWorkers) return;
        long first = _settings.Resume?.Step ?? 0;
        if (first >= _plan.FinalVersion) { _step = first; _allApplied = true; Snapshot(first, Final); return; } // a finished run resumed: write its output again
        _plan.Start(first);
    }

    // ---- work ----

    private void OnRequestWork(string from, RequestWork r)
    {
        // While shards roll back a worker's ask is moot: it asks again once it holds the new layout (Recovered).
        if (_recovering || !_workers.TryGetValue(r.WorkerId, out var w)) return;
        // A worker's first request means it holds the shard layout, so it can accept the shards' parameter pushes:
        // only now are the shards told where it listens.
        if (_withEndpoint.Add(r.WorkerId))
            for (int s = 0; s < _shardPeers.Length; s++)
                if (_shardPeers[s] is { } shard)
                    _out.Send(shard, new WorkerEndpoint(r.WorkerId, JobMapping.SenderIdOf(r.WorkerId), w.Info.DataHost, w.Info.DataPort)
                        { Key = Keys.ShardToWorker(_shardIds[s], r.WorkerId) });
        if (!TryAssign(r.WorkerId, from)) _idle.Enqueue((r.WorkerId, from));
    }

    private bool TryAssign(string id, string peer) => _step >= 0 && !_finishing && !_recovering && _plan.TryAssign(id, peer, _clock());

    private void ServeIdle()
    {
        int n = _idle.Count;
        for (int i = 0; i < n; i++)
        {
            var (id, peer) = _idle.Dequeue();
            if (!_workers.ContainsKey(id)) continue;
            if (!TryAssign(id, peer)) _idle.Enqueue((id, peer));
        }
    }

    private void OnWorkerLeft(string id)
    {
        _workers.Remove(id);
        _withEndpoint.Remove(id);
        int requeued = _plan.WorkerLeft(id);
        foreach (var s in _shardPeers) if (s is not null) _out.Send(s, new WorkerGone(id));
        if (_finishing)
        {
            // The run is over and the workers are shutting down: expected, nothing to re-queue, not a warning.
            _out.Report($"worker {id} left after the run");
            return;
        }
        _out.Log(Severity.Warning, $"Worker {id} left; {requeued} micro-batch(es) re-queued (step {_step} is being applied)");
        _out.Report($"worker {id} left; {requeued} micro-batch(es) re-queued, {_workers.Count} worker(s) remain");
        ServeIdle();
        _plan.ServeWaiting();
    }

    /// <summary>
    /// A shard saw a worker's data-plane connection end: its leases go back now, not after Akka's failure detector and
    /// downing (seconds). A process that died is seen here at once; one that lives on finishes its micro-batch anyway and the
    /// shards drop whichever copy comes second, so handing the work out early is safe. The worker stays registered until Akka
    /// says it left; every shard reports the same loss, and only the first finds leases to put back.
    /// </summary>
    private void OnConnectionLost(PeerConnectionLost l)
    {
        if (_finishing || _step < 0 || _recovering) return;
        if (WorkerOfSender(l.SenderId) is not { } id) return; // the coordinator's own connections, or a worker already gone
        if (_probed.Add(id) && _workers.TryGetValue(id, out var w)) _out.Add(new DownIfDead(id, w.Info.DataHost, w.Info.DataPort, $"worker {id}"));
        int requeued = _plan.WorkerLeft(id);
        if (requeued == 0) return;
        _out.Log(Severity.Warning, $"Worker {id}'s data-plane connection to shard {l.Shard} ended; {requeued} micro-batch(es) re-queued (step {_step} is being applied)");
        _out.Report($"worker {id} lost its connection to shard {l.Shard}; {requeued} micro-batch(es) re-queued");
        ServeIdle();
        _plan.ServeWaiting();
    }

    private readonly HashSet<string> _probed = [];   // workers whose death was checked since they registered

    /// <summary>The registered worker whose data-plane sender id (JobMapping.SenderIdOf) is <paramref name="sender"/>, if any.</summary>
    private string? WorkerOfSender(int sender) => _workers.Keys.FirstOrDefault(w => JobMapping.SenderIdOf(w) == sender);

    /// <summary>
    /// A shard refused a gradient. One that is not finite is computed again at once, by whichever worker asks first; the
    /// computation is bit-reproducible, so a second non-finite copy means the training diverged (as the one-process trainer
    /// says), and the run stops naming the step, the micro-batch and the workers, with nothing of it applied.
    /// </summary>
    private void OnRejected(GradientRejected r)
    {
        if (_recovering) return; // copies of work that is being rolled back
        string worker = int.TryParse(r.WorkerId, out int sender) ? WorkerOfSender(sender) ?? r.WorkerId : r.WorkerId;
        // A second copy (a backup of a straggler, work handed out again) that finds its micro-batch arriving or arrived, or that
        // comes after its step was applied, is expected: not a warning.
        bool expected = r.Reason == nameof(GradientDrop.Duplicate) || r.Reason == nameof(GradientDrop.UnknownStep) && r.Step < _step;
        _out.Log(expected ? Severity.Info : Severity.Warning, $"Shard {r.Shard} dropped a gradient of step {r.Step} micro-batch {r.MicroBatch} from {worker}: {r.Reason}");
        if (_finishing || !r.Reason.Contains("not finite", StringComparison.Ordinal) || (uint)r.Shard >= (uint)_shards.Length) return;
        // Every shard whose range holds a NaN refuses the same copy: the copies are the most any one shard refused.
        var key = (r.Step, r.MicroBatch);
        if (!_nonFinite.TryGetValue(key, out var seen)) _nonFinite[key] = seen = (new int[_shards.Length], []);
        int copies = seen.ByShard.Max();
        if (++seen.ByShard[r.Shard] <= copies) return; // another shard's word on a copy already counted
        seen.Workers.Add(worker);
        if (seen.Workers.Count < NonFiniteLimit)
        {
            if (_plan.Release(r.Step, r.MicroBatch)) { ServeIdle(); _plan.ServeWaiting(); }
            return;
        }
        Fail(r.Step, $"The gradient of step {r.Step} micro-batch {r.MicroBatch} was not finite (NaN or infinity) {seen.Workers.Count} times, computed by " +
            $"{string.Join(" and ", seen.Workers.Distinct())}: training diverged. Lower --lr or set --clip-norm; nothing of that step was applied.");
    }

    /// <summary>The run stops with <paramref name="error"/> at <paramref name="step"/>: said, and every worker and shard told.</summary>
    private void Fail(long step, string error)
    {
        _finishing = true;
        _out.Report(error);
        End(new RunCompleted(step, null, double.NaN, double.NaN, error));
    }

    /// <summary>Tells every worker and shard the run is over, then the node (Completed).</summary>
    private void End(RunCompleted result)
    {
        var done = new TrainingDone(_planSteps, _units, result.Error);
        foreach (var w in _workers.Values) _out.Send(w.Peer, done);
        foreach (var s in _shardPeers) if (s is not null) _out.Send(s, done);
        _out.Add(new Completed(result));
    }

    /// <summary>
    /// The determinism audit: two copies of a micro-batch's gradient differ although the computation is bit-reproducible.
    /// Said once per micro-batch, naming both workers (silent data corruption or a faulty host); the first copy was kept.
    /// A worker found in every disagreement is the likely culprit, which the count per worker shows.
    /// </summary>
    private void OnMismatch(GradientMismatch m)
    {
        if (!_mismatched.Add((m.Step, m.MicroBatch))) return; // every chunk and every shard of one micro-batch says it
        string kept = WorkerOfSender(m.KeptSender) ?? m.KeptSender.ToString(), other = WorkerOfSender(m.OtherSender) ?? m.OtherSender.ToString();
        foreach (var w in new[] { kept, other }) _disagreements[w] = _disagreements.GetValueOrDefault(w) + 1;
        (_partners.TryGetValue(kept, out var pk) ? pk : _partners[kept] = []).Add(other);
        (_partners.TryGetValue(other, out var po) ? po : _partners[other] = []).Add(kept);
        if (!_firstKept.ContainsKey(kept)) _firstKept[kept] = m.Step;
        string counts = string.Join(", ", _disagreements.OrderByDescending(d => d.Value).Select(d => $"{d.Key} {d.Value}"));
        foreach (var w in new[] { kept, other }) MaybeExclude(w);
        // A faulty host disagrees on nearly every copy: the first few are said, then every hundredth with the counts.
        int n = _mismatched.Count;
        if (n > 10 && n % 100 != 0) return;
        _out.Log(Severity.Error, $"Determinism audit: step {m.Step} micro-batch {m.MicroBatch} computed by {kept} and by {other} differs (shard {m.Shard}, " +
            $"offset {m.Offset}), although it is bit-reproducible: silent data corruption or a faulty host. {kept}'s copy was kept. Disagreements so far: {counts}" +
            (n == 10 ? " (from now on every 100th is said)" : ""));
        _out.Report($"determinism audit: step {m.Step} micro-batch {m.MicroBatch} differs between {kept} (kept) and {other}; disagreements: {counts}");
    }

    private readonly HashSet<(long Step, int MicroBatch)> _mismatched = [];
    private readonly Dictionary<string, int> _disagreements = [];
    private readonly Dictionary<string, HashSet<string>> _partners = [];   // the workers each one disagreed with
    private readonly Dictionary<string, long> _firstKept = [];             // the first step whose differing copy of it was kept
    private readonly HashSet<string> _excluded = [];

    /// <summary>Whether <paramref name="suspect"/> was in a disagreement, but never with <paramref name="referee"/>.</summary>
    private bool Unrefereed(string suspect, string referee) =>
        _partners.TryGetValue(suspect, out var p) && !p.Contains(referee) && !_partners.ContainsKey(referee);

    /// <summary>A worker in at least this many disagreements, and in every one so far, with two or more other workers, is the
    /// faulty one (two workers alone cannot tell which of them is).</summary>
    private const int ExcludeAfter = 3;

    /// <summary>
    /// The determinism audit names one worker in every disagreement with several others: it is excluded from the run (its work
    /// goes to the others, it is refused if it registers again, and its process exits saying why). What it computed before is
    /// said: copies of it that arrived first were kept, and a resume from a checkpoint before them gives weights without them.
    /// </summary>
    private void MaybeExclude(string w)
    {
        if (_excluded.Contains(w) || !_workers.TryGetValue(w, out var info) || _disagreements[w] < ExcludeAfter
            || _disagreements[w] != _mismatched.Count || _partners[w].Count < 2)
            return;
        _excluded.Add(w);
        string why = $"excluded by the determinism audit: its gradients differed from {_partners[w].Count} other workers' on {_disagreements[w]} " +
            "micro-batches that are bit-reproducible (silent data corruption or a faulty host); check the host, then start it again for another run";
        _out.Send(info.Peer, new RegisterRejected(w, why));
        string kept = _firstKept.TryGetValue(w, out long first)
            ? $"; copies of it were kept from step {first} on, so the weights hold them: for weights without them resume from a checkpoint before step {first} (--resume {_settings.OutDir})"
            : "; none of its differing copies was kept";
        _out.Log(Severity.Error, $"Worker {w} {why}{kept}");
        _out.Report($"determinism audit: excluding {w} (in all {_disagreements[w]} disagreements, with {_partners[w].Count} workers){kept}");
        OnWorkerLeft(w);
    }

    /// <summary>Non-finite copies of a micro-batch before the run gives up on it: the second copy usually comes from another
    /// worker, so one faulty host rarely stops a run.</summary>
    private const int NonFiniteLimit = 2;
    private readonly Dictionary<(long Step, int MicroBatch), (int[] ByShard, List<string> Workers)> _nonFinite = [];

    /// <summary>--clip-norm (sync): merges the shards' exact Σ g² of a step (order-free, so the bits equal one process's
    /// norm over the whole vector) and tells every shard the global norm once all have sent theirs.</summary>
    private void OnNormShare(NormShare n)
    {
        // A shard that applied step t can complete t+1 before the coordinator has heard every shard publish t: one step ahead is normal.
        if ((uint)n.Shard >= (uint)_shardPeers.Length || n.Step < _step || n.Step > _step + 1 || n.Digits.Length != ExactSquareSum.SerializedLength)
        {
            _out.Log(Severity.Warning, $"Ignored a malformed or stale norm share (shard {n.Shard}, step {n.Step}) during step {_step}");
            return;
        }
        foreach (var old in _normShares.Keys.Where(k => k < _step).ToArray()) _normShares.Remove(old);
        if (!_normShares.TryGetValue(n.Step, out var parts)) _normShares[n.Step] = parts = new ExactSquareSum?[_shardPeers.Length];
        if (parts[n.Shard] is not null) return;
        parts[n.Shard] = ExactSquareSum.FromDigits(n.Digits);
        if (parts.Any(p => p is null)) return;
        _normShares.Remove(n.Step);
        var total = new ExactSquareSum();
        foreach (var part in parts) total.Add(part!.Value);
        var clip = new ApplyClipped(n.Step, Math.Sqrt(total.ToDouble()));
        foreach (var s in _shardPeers) if (s is not null) _out.Send(s, clip);
    }

    /// <summary>A shard published <paramref name="version"/>; true when every shard has passed the current unit.</summary>
    private bool Published(int shard, long version)
    {
        if ((uint)shard >= (uint)_published.Length) return false;
        _published[shard] = Math.Max(_published[shard], version);
        return _published.All(v => v > _step);
    }

    // ---- snapshots: checkpoints and the end of the run ----

    /// <summary>Asks every shard for its state at <paramref name="version"/>, then runs <paramref name="then"/> once it is all here.</summary>
    private void Snapshot(long version, Action then)
    {
        if (!_snapshots.TryAdd(version, then)) return;
        var ask = _store.Begin(version);
        foreach (var s in _shardPeers) if (s is not null) _out.Send(s, ask);
    }

    /// <summary>
    /// A shard's checkpoint send can fail (a broken connection, a frame dropped as corrupt) and nothing else would notice.
    /// Once every shard has passed a snapshot's version and its frames are still missing after the grace period, the final
    /// state is asked for again (the shards stay at the last version; frames that did arrive are overwritten with the same
    /// bits), and an intermediate checkpoint is given up (the shards moved on; the previous one stays the one to resume from).
    /// </summary>
    private void WatchSnapshots()
    {
        if (_finishing || _recovering || _snapshots.Count == 0) return;
        var now = _clock();
        foreach (var version in _snapshots.Keys.ToArray())
        {
            if (_published.Any(p => p < version)) continue; // not reached yet: nothing was due
            if (!_overdueSince.TryGetValue(version, out var since)) { _overdueSince[version] = now; continue; }
            if (now - since < _settings.SnapshotGrace) continue;
            _overdueSince[version] = now;
            double grace = _settings.SnapshotGrace.TotalSeconds;
            if (version == _plan.FinalVersion)
            {
                _out.Log(Severity.Warning, $"The shards' final state (version {version}) is incomplete after {grace:F0} s; asking the shards again");
                _out.Report($"final state of version {version} incomplete after {grace:F0} s; asking the shards again");
                var ask = _store.Ask(version);
                foreach (var s in _shardPeers) if (s is not null) _out.Send(s, ask);
                continue;
            }
            _snapshots.Remove(version);
            _overdueSince.Remove(version);
            _store.Release(version);
            if (!IsCheckpointStep(version))
            {
                _out.Log(Severity.Warning, $"The shards' state of step {version} did not arrive within {grace:F0} s; a lost shard would roll the run back to step {_recoveryVersion}");
                continue;
            }
            _out.Log(Severity.Error, $"Checkpoint of step {version} not written: a shard's state did not arrive; the previous checkpoint stays the one to resume from");
            _out.Report($"checkpoint of step {version} NOT written: a shard's state did not arrive within {grace:F0} s");
        }
    }

    private bool IsCheckpointStep(long step) =>
        _settings.CheckpointEvery >= 0 && _settings.Mode.Mode != TrainingMode.Async && step > 0
        && (_settings.Mode.NextUnitAtBoundary(step - 1, _stepsPerEpoch) == step
            || (_settings.CheckpointEvery > 0 && _settings.Mode.NextUnitAtBoundary(step - 1, _settings.CheckpointEvery) == step));

    private void WriteCheckpoint(long step)
    {
        try
        {
            var started = Stopwatch.GetTimestamp();
            var dir = _store.WriteCheckpoint(step);
            string what = _settings.Mode.Mode == TrainingMode.Async ? $"step {step / _microBatches} ({step} updates)" : $"step {step}";
            _out.Report($"checkpoint: {what} -> {dir} ({Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // Training goes on; the previous checkpoint stays the one to resume from.
            _out.Log(Severity.Error, $"Checkpoint of step {step} not written: {e.Message}");
            _out.Report($"checkpoint of step {step} NOT written: {e.Message}");
        }
    }

    private void Final() { _finalCollected = true; TryFinish(); }

    /// <summary>Every unit of work is applied; the run ends once the final state is here too.</summary>
    private void AllApplied()
    {
        ReportBackups();
        if (_verified > 0)
            _out.Report($"determinism audit: {_verified} micro-batch(es) computed twice ({_verified * 100.0 / Math.Max(1, _units * _microBatches):0.#} % of the run's " +
                $"work, --verify-fraction {_settings.VerifyFraction}); {_mismatched.Count} differed");
        _allApplied = true;
        TryFinish();
    }

    private long _verified;   // verification copies handed out

    private void TryFinish()
    {
        if (!_allApplied || !_finalCollected || _finishing) return;
        _finishing = true;
        if (_settings.CheckpointEvery >= 0) WriteCheckpoint(_plan.FinalVersion);
        RunCompleted result;
        try { result = _store.WriteModel(_plan.FinalVersion, _planSteps, _log); }
        catch (Exception e) { result = new RunCompleted(_planSteps, null, double.NaN, double.NaN, e.Message); }
        End(result);
    }

    /// <summary>A test's injected fault: the coordinator stops abruptly after <paramref name="step"/>, writing nothing.</summary>
    private bool Crashed(long step)
    {
        if (_settings.Faults?.CrashAfter(step) != true) return false;
        _finishing = true;
        _out.Add(new Completed(new RunCompleted(step, null, double.NaN, double.NaN, $"stopped after step {step} (an injected fault)")));
        return true;
    }
}

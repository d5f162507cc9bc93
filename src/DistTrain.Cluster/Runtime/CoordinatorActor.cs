// The coordinator (a cluster singleton) as an actor: CoordinatorCore decides; this translates. Peers are known to
// the core by a key (the actor path with its uid); the core's effects become Tells, watches, timers, log lines and
// the callbacks of CoordinatorSettings.
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.Cores;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Training;
using DistTrain.Training;
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
    /// Async runs stop handing out work at each checkpoint until the shards have applied everything before it (a consistent cut).</summary>
    public long CheckpointEvery { get; init; }
    /// <summary>Start from this checkpoint (its step, weights, optimizer state and buffers) instead of step 0 (sync mode). A point at
    /// step 0 is `--init` (ClusterNode.InitialPoint): weights with a fresh optimizer, and a new metrics.jsonl.</summary>
    public DistTrain.Training.Checkpoints.ResumePoint? Resume { get; init; }
    /// <summary>How long a snapshot may stay incomplete after every shard has passed its version before the coordinator acts:
    /// it asks again for the final state (the shards stay there) and gives up on an intermediate checkpoint (they moved on).</summary>
    public TimeSpan SnapshotGrace { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>The shortest lease on a micro-batch once steps are timed (LeasePolicy); LeaseTimeout is the longest.</summary>
    public TimeSpan LeaseFloor { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>A lease lasts this many median step times (at least LeaseFloor, at most LeaseTimeout).</summary>
    public double LeaseStepMultiple { get; init; } = 4;
    /// <summary>Sync and local-sgd: a micro-batch held this many median micro-batch times is also handed to a worker with nothing
    /// left of the step (BackupPolicy; disttrain.backup-multiple); 0 = never.</summary>
    public double BackupMultiple { get; init; } = 2;
    /// <summary>Sync: keep the shards' state of every this many steps in memory (DistTrainSettings.ReplicateEvery); 0 = off.</summary>
    public long ReplicateEvery { get; init; }
    /// <summary>Faults a test injects (null in production).</summary>
    public ICoordinatorFaults? Faults { get; init; }
    /// <summary>Sync: this seeded fraction of micro-batches is also computed by a second worker, and the shards compare the two
    /// copies' checksums (the determinism audit; `--verify-fraction`). 0 = only copies that faults make anyway are compared.</summary>
    public double VerifyFraction { get; init; }
    /// <summary>Set on a standby coordinator that takes over (the singleton moved): the job's id and data-plane key that the
    /// shards and workers hold (StandbyState). The core then waits for the shards to rejoin instead of assigning ranges.</summary>
    public TakeOver? TakeOver { get; init; }
    /// <summary>Coordinator-eligible nodes: what the standby actor of this node heard from the coordinator (null elsewhere).</summary>
    public CoordinatorHandover? Handover { get; init; }
    /// <summary>This node is a standby (`train --standby`): its coordinator, once the singleton moves here, takes the run over
    /// from what Handover heard, or does nothing when it heard nothing or the run finished.</summary>
    public bool Standby { get; init; }
    /// <summary>SHA-256 of the training set (DatasetOps.Fingerprint): workers with other data refuse the job (ClusterNode.DatasetMismatch).</summary>
    public string TrainFingerprint { get; init; } = "";
}

/// <summary>What a standby needs to take over a run: its job id and the data-plane key its shards and workers hold.</summary>
public sealed record TakeOver(string JobId, byte[] DataKey);

public sealed class CoordinatorActor : ReceiveActor, IWithTimers
{
    private readonly CoordinatorCore _core = null!;
    private readonly CoordinatorStore _store = null!;
    private CoordinatorSettings _settings;
    private readonly bool _idle;   // a standby's singleton with no run to take over
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _peers = [];
    private readonly Dictionary<IActorRef, string> _keys = [];

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Collected(long Version) : INoSerializationVerificationNeeded;
    private sealed record SendFailed(string Why) : INoSerializationVerificationNeeded;
    private sealed record LinkLost(int Shard, string Host, int Port) : INoSerializationVerificationNeeded;
    private readonly Dictionary<int, DataPlaneClient> _links = [];   // per shard: the idle connection that shows its process lives

    private sealed record SyncStandbys : INoSerializationVerificationNeeded;
    private readonly HashSet<Address> _standbys = [];

    public CoordinatorActor(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings)
    {
        if (settings.Standby)
        {
            var heard = settings.Handover?.Latest;
            if (settings.Handover is not { Finished: false } || heard is null)
            {
                _settings = settings;
                _idle = true;
                settings.Handover?.CannotTakeOver("this standby became the coordinator but never heard of a run to take over (the coordinator died before it told this node)");
                ReceiveAny(_ => { });
                return;
            }
            settings = settings with { TakeOver = new TakeOver(heard.JobId, heard.DataKey) };
            settings.OnProgress?.Invoke($"taking over job {heard.JobId}: waiting for its shards and workers");
        }
        _settings = settings;
        Telemetry.RunMeters.Plan(job.TotalSteps(trainCount), DistTrain.Data.Plans.EpochPlan.CountSteps(trainCount, job.BatchSize)); // for progress views
        var self = Self; // the store reports collected snapshots from data-plane threads, where Self is unavailable
        var store = new CoordinatorStore(job, trainCount, parameterCount, settings, v => self.Tell(new Collected(v)), why => self.Tell(new SendFailed(why)));
        try { _core = new CoordinatorCore(job, trainCount, parameterCount, settings, store); }
        catch { store.Dispose(); throw; }
        _store = store;
        store.UseKeys(_core.Keys); // the keys the core hands to shards and workers
        var gate = new MessageGate(Context, "coordinator", new MessageBounds(settings.Shards, parameterCount));
        Receive<IDistTrainMessage>(m => !gate.Admit(m, Sender), _ => { }); // refused (counted, logged) before the core sees it
        Receive<Akka.Cluster.ClusterEvent.MemberUp>(m => { if (IsStandby(m.Member)) { _standbys.Add(m.Member.Address); TellStandbys(false, m.Member.Address); } });
        Receive<Akka.Cluster.ClusterEvent.MemberRemoved>(m => _standbys.Remove(m.Member.Address));
        Receive<SyncStandbys>(_ => TellStandbys(false));
        Receive<DownNode>(d =>
        {
            _log.Warning("{0}'s process on {1} is gone (its data-plane listener {2} refuses connections): downing that node", d.What, d.Node, d.Listener);
            Akka.Cluster.Cluster.Get(Context.System).Down(d.Node);
        });
        Receive<Collected>(c => Safely(c, () => _core.Collected(c.Version)));
        Receive<SendFailed>(f => _log.Error(f.Why));
        Receive<LinkLost>(l => Safely(l, () => _core.ShardLinkLost(l.Shard, l.Host, l.Port)));
        Receive<ActorEffects.Tick>(t => Safely(t, () => _core.Timer(t.Name)));
        Receive<Terminated>(t => { if (_keys.Remove(t.ActorRef, out var key)) { Safely(t, () => _core.PeerLeft(key)); _peers.Remove(key); } });
        Receive<IDistTrainMessage>(m => Safely(m, () => _core.Handle(Key(Sender), m)));
    }

    public static Props Props(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(job, trainCount, parameterCount, settings));

    protected override void PreStart()
    {
        if (_idle) return;
        Run(_core.Start());
        if (!InCluster) return; // an ActorSystem without cluster (tests of the coordinator alone) has no standbys
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, Akka.Cluster.ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(Akka.Cluster.ClusterEvent.MemberUp), typeof(Akka.Cluster.ClusterEvent.MemberRemoved));
        // Again now and then: a standby's actor may have missed the first (it starts with its node, the member event comes later).
        Timers.StartPeriodicTimer("standbys", new SyncStandbys(), TimeSpan.FromSeconds(5));
    }

    protected override void PostStop()
    {
        if (_idle) return;
        if (InCluster) Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        foreach (var link in _links.Values) link.Dispose();
        _core.Dispose();
    }

    private bool InCluster => ((ExtendedActorSystem)Context.System).Provider is Akka.Cluster.ClusterActorRefProvider;

    /// <summary>Another coordinator-eligible node: it stands by to take over.</summary>
    private bool IsStandby(Akka.Cluster.Member m) =>
        m.HasRole("coordinator") && !m.Address.Equals(Akka.Cluster.Cluster.Get(Context.System).SelfAddress);

    /// <summary>Tells the standbys (or one) what they need to take over, or that the run is over (<paramref name="finished"/>).</summary>
    private void TellStandbys(bool finished, Address? only = null)
    {
        if (_standbys.Count == 0) return;
        var (host, port) = _store.Listener();
        var state = new StandbyState(_core.Description.JobId, _core.Keys.Job.ToWire(), host, port, finished);
        foreach (var a in only is null ? _standbys : [only])
            Context.ActorSelection(new RootActorPath(a) / "user" / "standby").Tell(state);
    }

    /// <summary>Opens an idle connection to the shard's data-plane listener; a thread waits for it to close (WatchShardLink).</summary>
    private void WatchLink(WatchShardLink w)
    {
        if (_links.Remove(w.Shard, out var old)) old.Dispose();
        DataPlaneClient link;
        try
        {
            link = _settings.Endpoints.Connect(w.Host, w.Port, JobMapping.CoordinatorWatchSenderId,
                _core.Keys.Peer(_core.ShardSenderId(w.Shard), JobMapping.CoordinatorWatchSenderId));
        }
        catch (IOException e)
        {
            _log.Warning("Cannot watch PS shard {0} at {1}:{2} over the data plane ({3}); its loss is seen when Akka downs its node", w.Shard, w.Host, w.Port, e.Message);
            return;
        }
        _links[w.Shard] = link;
        var self = Self;
        new Thread(() => { link.WaitUntilPeerCloses(); self.Tell(new LinkLost(w.Shard, w.Host, w.Port)); })
            { IsBackground = true, Name = $"watch shard {w.Shard}" }.Start();
    }

    private sealed record DownNode(Address Node, string What, string Listener) : INoSerializationVerificationNeeded;

    /// <summary>Probes the peer's listener off the actor's thread (a bare TCP connect: its data plane sees no peer) and downs
    /// its node when nothing listens there any more.</summary>
    private void DownIfDead(DownIfDead d)
    {
        int slash = d.PeerId.LastIndexOf('/');
        if (!InCluster || slash <= 0) return;
        Address node;
        try { node = Address.Parse(d.PeerId[..slash]); }
        catch (UriFormatException) { return; }
        if (node.Equals(Akka.Cluster.Cluster.Get(Context.System).SelfAddress)) return;
        var self = Self;
        _ = Task.Run(async () =>
        {
            using var probe = new System.Net.Sockets.TcpClient();
            try { await probe.ConnectAsync(d.Host, d.Port).WaitAsync(TimeSpan.FromSeconds(2)); }
            catch (Exception e) when (e is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused })
            {
                self.Tell(new DownNode(node, d.What, $"{d.Host}:{d.Port}"));
            }
            catch (Exception) { } // a timeout or another error proves nothing: the failure detector decides
        });
    }

    private string Key(IActorRef peer)
    {
        if (_keys.TryGetValue(peer, out var key)) return key;
        key = peer.Path.ToSerializationFormat(); // with the uid: a restarted actor is another peer
        _keys[peer] = key;
        _peers[key] = peer;
        return key;
    }

    /// <summary>
    /// Runs the core on one event. An exception would make Akka restart this actor, and a restarted coordinator starts the run
    /// over in a fresh state (its ledger, its metrics.jsonl): the event is logged as refused and the run goes on with the state it has.
    /// </summary>
    private void Safely(object what, Func<IReadOnlyList<Effect>> handle)
    {
        IReadOnlyList<Effect> effects;
        try { effects = handle(); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log.Error(e, "The coordinator refused {0} from {1}: {2}", what.GetType().Name, Sender.Path, e.Message);
            return;
        }
        Run(effects);
    }

    private void Run(IReadOnlyList<Effect> effects)
    {
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case Send s when _peers.TryGetValue(s.To, out var peer): peer.Tell(s.Message); break;
                case Watch w when _peers.TryGetValue(w.Peer, out var peer): Context.Watch(peer); break;
                case Report r: _settings.OnProgress?.Invoke(r.Text); break;
                case Completed c:
                    TellStandbys(finished: true); // before this node leaves: the singleton then moves to a standby that knows it is over
                    _settings.OnCompleted?.Invoke(c.Result);
                    break;
                case WatchShardLink w: WatchLink(w); break;
                case DownIfDead d: DownIfDead(d); break;
                default: ActorEffects.RunShared(effect, Context, Timers, _log, null); break;
            }
        }
    }
}

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
    /// Sync mode only: async and local-sgd runs write the final model alone.</summary>
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
    /// <summary>Sync: keep the shards' state of every this many steps in memory (DistTrainSettings.ReplicateEvery); 0 = off.</summary>
    public long ReplicateEvery { get; init; }
    /// <summary>Faults a test injects (null in production).</summary>
    public ICoordinatorFaults? Faults { get; init; }
    /// <summary>Sync: this seeded fraction of micro-batches is also computed by a second worker, and the shards compare the two
    /// copies' checksums (the determinism audit; `--verify-fraction`). 0 = only copies that faults make anyway are compared.</summary>
    public double VerifyFraction { get; init; }
    /// <summary>SHA-256 of the training set (DatasetOps.Fingerprint): workers with other data refuse the job (ClusterNode.DatasetMismatch).</summary>
    public string TrainFingerprint { get; init; } = "";
}

public sealed class CoordinatorActor : ReceiveActor, IWithTimers
{
    private readonly CoordinatorCore _core;
    private readonly CoordinatorSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _peers = [];
    private readonly Dictionary<IActorRef, string> _keys = [];

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Collected(long Version) : INoSerializationVerificationNeeded;
    private sealed record SendFailed(string Why) : INoSerializationVerificationNeeded;
    private sealed record LinkLost(int Shard, string Host, int Port) : INoSerializationVerificationNeeded;
    private readonly Dictionary<int, DataPlaneClient> _links = [];   // per shard: the idle connection that shows its process lives

    public CoordinatorActor(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings)
    {
        _settings = settings;
        Telemetry.RunMeters.Plan(job.TotalSteps(trainCount), DistTrain.Data.Plans.EpochPlan.CountSteps(trainCount, job.BatchSize)); // for progress views
        var self = Self; // the store reports collected snapshots from data-plane threads, where Self is unavailable
        var store = new CoordinatorStore(job, trainCount, parameterCount, settings, v => self.Tell(new Collected(v)), why => self.Tell(new SendFailed(why)));
        try { _core = new CoordinatorCore(job, trainCount, parameterCount, settings, store); }
        catch { store.Dispose(); throw; }
        store.UseKey(DataPlaneKey.FromWire(_core.Description.DataKey)); // the key the job hands to shards and workers
        var gate = new MessageGate(Context, "coordinator", new MessageBounds(settings.Shards, parameterCount));
        Receive<IDistTrainMessage>(m => !gate.Admit(m, Sender), _ => { }); // refused (counted, logged) before the core sees it
        Receive<Collected>(c => Safely(c, () => _core.Collected(c.Version)));
        Receive<SendFailed>(f => _log.Error(f.Why));
        Receive<LinkLost>(l => Safely(l, () => _core.ShardLinkLost(l.Shard, l.Host, l.Port)));
        Receive<ActorEffects.Tick>(t => Safely(t, () => _core.Timer(t.Name)));
        Receive<Terminated>(t => { if (_keys.Remove(t.ActorRef, out var key)) { Safely(t, () => _core.PeerLeft(key)); _peers.Remove(key); } });
        Receive<IDistTrainMessage>(m => Safely(m, () => _core.Handle(Key(Sender), m)));
    }

    public static Props Props(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(job, trainCount, parameterCount, settings));

    protected override void PreStart() => Run(_core.Start());

    protected override void PostStop()
    {
        foreach (var link in _links.Values) link.Dispose();
        _core.Dispose();
    }

    /// <summary>Opens an idle connection to the shard's data-plane listener; a thread waits for it to close (WatchShardLink).</summary>
    private void WatchLink(WatchShardLink w)
    {
        if (_links.Remove(w.Shard, out var old)) old.Dispose();
        DataPlaneClient link;
        try
        {
            link = (_settings.Endpoints with { Key = DataPlaneKey.FromWire(_core.Description.DataKey) })
                .Connect(w.Host, w.Port, JobMapping.SenderIdOf("coordinator-watch"));
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
                case Completed c: _settings.OnCompleted?.Invoke(c.Result); break;
                case WatchShardLink w: WatchLink(w); break;
                default: ActorEffects.RunShared(effect, Context, Timers, _log, null); break;
            }
        }
    }
}

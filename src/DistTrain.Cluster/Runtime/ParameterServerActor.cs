// A parameter-server shard as an actor: asks the coordinator for its key range and the job, and then routes.
// Frames arrive in its ShardInbox (receive threads, the one lock); the inbox's events come here, where a
// complete step is applied (sync: the sum in micro-batch order; with --clip-norm after the coordinator's
// global norm; local-sgd: the averaged deltas, DeltaAveraging as the optimizer) or each gradient is applied
// as it arrives (async), and ShardPublisher pushes every new version to the workers.
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Runtime;

public sealed class ParameterServerActor : ReceiveActor
{
    private readonly IActorRef _coordinator;
    private readonly string _nodeId;
    private readonly NodeEndpoints _endpoints;
    private readonly Action<string>? _onRefused;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<AsyncApplied> _applied = [];
    private readonly List<SendCheckpoint> _dueCheckpoints = [];   // asked for a version this shard has not reached yet
    private ShardInbox? _inbox;
    private ShardPublisher? _publisher;
    private DataPlaneServer? _server;
    private float _share;                  // async: M/B, a micro-batch's share of a global batch's learning rate
    private bool _async;
    private int _senderId;
    private float _clipNorm;               // sync --clip-norm: a complete step waits for the coordinator's global norm
    private long _normSentFor = -1;        // the step whose NormShare went out
    private ICancelable? _retry;

    private sealed record AskForShard : INoSerializationVerificationNeeded;

    public ParameterServerActor(IActorRef coordinator, string nodeId, NodeEndpoints endpoints, Action<string>? onRefused = null)
    {
        (_coordinator, _nodeId, _endpoints, _onRefused) = (coordinator, nodeId, endpoints, onRefused);
        Receive<AskForShard>(_ => _coordinator.Tell(new RequestShard(_nodeId, WireProtocol.Version)));
        Receive<ShardAssignment>(OnAssignment);
        Receive<CoordinatorMessages.RegisterRejected>(r => { _log.Error("PS {0} refused: {1}", _nodeId, r.Reason); _onRefused?.Invoke(r.Reason); Context.Stop(Self); });
        Receive<WorkerEndpoint>(OnWorker);
        Receive<WorkerGone>(OnWorkerGone);
        Receive<ApplyClipped>(c => { if (_inbox is { } i && _clipNorm > 0 && c.Step == i.Shard.Version && _normSentFor == c.Step) Apply(i, _clipNorm, c.GlobalNorm); });
        Receive<ShardInbox.GradientArrived>(OnGradient);
        Receive<ShardInbox.GradientDropped>(d => _coordinator.Tell(new GradientRejected(_inbox?.Shard.Shard ?? -1, d.SenderId.ToString(), d.Step, d.MicroBatch, d.Reason)));
        Receive<SendCheckpoint>(OnSendCheckpoint);
        Receive<ShardInbox.RestoreComplete>(_ => OnRestored());
        Receive<CoordinatorMessages.TrainingDone>(_ => Context.Stop(Self));
    }

    public static Props Props(IActorRef coordinator, string nodeId, NodeEndpoints endpoints, Action<string>? onRefused = null) =>
        Akka.Actor.Props.Create(() => new ParameterServerActor(coordinator, nodeId, endpoints, onRefused));

    // The coordinator singleton may not be up yet: ask until it answers.
    protected override void PreStart() =>
        _retry = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.Zero, TimeSpan.FromSeconds(1), Self, new AskForShard(), Self);

    protected override void PostStop()
    {
        _retry?.Cancel();
        _server?.Dispose();
        _publisher?.Dispose();
    }

    private void OnAssignment(ShardAssignment a)
    {
        if (_inbox is not null) return;
        _retry?.Cancel();
        var job = JobMapping.ToTrainJob(a.Job);
        var model = job.Spec().Build((ulong)(uint)job.Seed); // the same initial weights on every node
        var range = new KeyRange((int)a.Offset, a.Length);
        int microBatches = JobMapping.MicroBatchesPerStep(a.Job), trainCount = a.Job.Dataset.TrainSamples;
        var mode = JobMapping.ModeOf(a.Job);
        var optimizer = mode.Mode == TrainingMode.LocalSgd ? new DeltaAveraging(range.Length, microBatches) : job.CreateOptimizer(range.Length);
        var shard = new ParameterShard(a.Shard, range, model.Store.Values.AsSpan(range.Offset, range.Length), optimizer, job.CreateSchedule(trainCount), microBatches);
        shard.BeginStep(0, microBatches);
        _async = mode.Mode == TrainingMode.Async;
        _share = (float)a.Job.Hyper.MicroBatchSize / a.Job.Hyper.BatchSize;
        // Async and local-sgd clip on the worker, where each update's whole gradient is; sync needs every shard's share.
        _clipNorm = mode.Mode == TrainingMode.Sync ? a.Job.Hyper.ClipNorm : 0f;
        var self = Self; // the inbox posts from receive threads, where Self is unavailable
        _inbox = new ShardInbox(shard, _async ? new AsyncGradientQueue(range.Length, job.TotalSteps(trainCount), microBatches) : null,
            new ShardCheckpointing(shard, model, microBatches, mode, job.TotalSteps(trainCount)), microBatches, m => self.Tell(m));
        _senderId = JobMapping.SenderIdOf($"{_nodeId}/ps{a.Shard}");
        _publisher = new ShardPublisher(_endpoints, _senderId)
        {
            Chunks = mode.Mode == TrainingMode.Sync
                ? KeyRanges.PushChunks(range, Enumerable.Range(0, model.Layers.Count).Select(model.ParameterRunStart), _endpoints.GradientChunkFloats)
                : [range],
        };
        _server = _endpoints.Listen(_inbox);
        _coordinator.Tell(new RegisterShard(a.Shard, a.Offset, a.Length, _nodeId, _endpoints.AdvertisedHost, _server.Port, WireProtocol.Version));
        _log.Info("PS shard {0}/{1} owns {2}, data plane on {3}:{4}", a.Shard, a.ShardCount, range, _endpoints.AdvertisedHost, _server.Port);
    }

    private void OnWorker(WorkerEndpoint w)
    {
        if (_inbox is null) return;
        try { _publisher!.Add(w.WorkerId, w.DataHost, w.DataPort, _inbox.Shard); }
        catch (IOException e) { _log.Warning("PS {0}: cannot reach worker {1}: {2}", _inbox.Shard.Shard, w.WorkerId, e.Message); }
    }

    /// <summary>
    /// The worker left the cluster: stop pushing to it and close its gradient connections here too. A frame it was
    /// sending when its link was cut holds its chunk's slot (Rent) until the connection ends, and a cut link never
    /// ends one by itself: the worker that redoes the micro-batch would find that chunk "Duplicate" every time.
    /// Closing fails the frame in flight, which frees the slot (OnDropped, ConnectionLost).
    /// </summary>
    private void OnWorkerGone(WorkerGone g)
    {
        _publisher?.Remove(g.WorkerId);
        int closed = _server?.Close(JobMapping.SenderIdOf(g.WorkerId)) ?? 0;
        if (closed > 0) _log.Info("PS {0}: closed {1} data-plane connection(s) of worker {2}, which left", _inbox?.Shard.Shard, closed, g.WorkerId);
    }

    private void OnGradient(ShardInbox.GradientArrived g)
    {
        var inbox = _inbox!;
        if (_async) { ApplyArrivals(inbox); return; }
        _coordinator.Tell(new GradientAccepted(inbox.Shard.Shard, g.SenderId.ToString(), g.Step, g.MicroBatch));
        if (_clipNorm <= 0) { Apply(inbox, 0f, double.NaN); return; }
        // Clipping: the coordinator gets this range's exact Σ g² and answers every shard with the global norm (ApplyClipped).
        if (inbox.NormShare(_normSentFor) is not { } share) return;
        _normSentFor = share.Step;
        _coordinator.Tell(new NormShare(inbox.Shard.Shard, share.Step, share.Digits));
    }

    private void Apply(ShardInbox inbox, float maxNorm, double globalNorm)
    {
        if (!inbox.TryApplyStep(maxNorm, globalNorm)) return;
        var shard = inbox.Shard;
        Published(shard);
        _coordinator.Tell(new VersionPublished(shard.Shard, shard.Version, shard.Version - 1));
    }

    /// <summary>
    /// Async: applies every gradient that has arrived, in arrival order, one optimizer update each, then pushes the
    /// newest values once. Gradients that arrive while a push is under way wait for the next call, so a busy shard
    /// pushes less often instead of falling behind. The coordinator hears of each update after the push that carries it.
    /// </summary>
    private void ApplyArrivals(ShardInbox inbox)
    {
        var shard = inbox.Shard;
        _applied.Clear();
        while (inbox.TryDequeue(out var a, out var gradient))
        {
            long staleness = shard.ApplyMicroBatch(gradient, a.Step, _share, a.Version);
            inbox.Applied(a);
            _applied.Add(new AsyncApplied(shard.Shard, a.Step, a.MicroBatch, shard.Version, staleness));
        }
        if (_applied.Count == 0) return;
        Published(shard);
        foreach (var m in _applied) _coordinator.Tell(m);
    }

    /// <summary>A new version: push it, then send the checkpoints asked for it before anything can move it on.</summary>
    private void Published(ParameterShard shard)
    {
        _publisher!.PushAll(shard);
        for (int i = _dueCheckpoints.Count - 1; i >= 0; i--)
        {
            if (_dueCheckpoints[i].Version > shard.Version) continue;
            var due = _dueCheckpoints[i];
            _dueCheckpoints.RemoveAt(i);
            OnSendCheckpoint(due);
        }
    }

    private void OnSendCheckpoint(SendCheckpoint s)
    {
        if (_inbox is not { } inbox) return;
        var shard = inbox.Shard;
        if (s.Version > shard.Version) { _dueCheckpoints.Add(s); return; } // sent the moment the shard gets there
        if (s.Version < shard.Version)
        {
            _log.Warning("PS shard {0} is at version {1}; the checkpoint of version {2} was asked for too late and is skipped", shard.Shard, shard.Version, s.Version);
            return;
        }
        try
        {
            using var client = _endpoints.Connect(s.DataHost, s.DataPort, _senderId);
            inbox.SendCheckpoint(client, s.Version);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            _log.Error("PS shard {0}: checkpoint of version {1} not sent: {2}", shard.Shard, s.Version, e.Message);
        }
    }

    private void OnRestored()
    {
        var inbox = _inbox!;
        long version = inbox.ApplyRestore();
        _publisher!.ResendAll(inbox.Shard);
        _log.Info("PS shard {0} restored at version {1}", inbox.Shard.Shard, version);
        _coordinator.Tell(new ShardRestored(inbox.Shard.Shard, version));
    }
}

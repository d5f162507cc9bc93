// A parameter-server shard as an actor: asks the coordinator for its key range and the job, receives
// micro-batch gradients over the data plane straight into its aggregator's slots, applies the optimizer
// when a step is complete (sum in micro-batch order) and pushes the new version to every worker.
// Async mode applies each gradient as it arrives (AsyncGradientQueue); local-sgd averages the workers'
// parameter deltas with the same aggregator (DeltaAveraging as the optimizer).
// The pure state lives in ParameterShard; this class only wires messages, sockets and timers.
using System.Net;
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;
using TrainingDrop = DistTrain.Cluster.Training.GradientDrop;
using WireDrop = DistTrain.Cluster.DataPlane.DropReason;

namespace DistTrain.Cluster.Runtime;

public sealed class ParameterServerActor : ReceiveActor, IFrameHandler
{
    private readonly IActorRef _coordinator;
    private readonly string _nodeId;
    private readonly NodeEndpoints _endpoints;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _self;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, DataPlaneClient> _workers = [];
    private ParameterShard? _shard;
    private AsyncGradientQueue? _async;    // async mode only
    private float _share;                  // async: M/B, a micro-batch's share of a global batch's learning rate
    private readonly List<AsyncApplied> _applied = [];
    private ShardCheckpointing? _extras;    // BatchNorm statistics, checkpoint and restore (ShardCheckpointing.cs)
    private readonly List<SendCheckpoint> _dueCheckpoints = [];   // asked for a version this shard has not reached yet
    private DataPlaneServer? _server;
    private int _microBatches;
    private KeyRange[] _pushChunks = [];   // sync: a new version goes out in these frames, first layers first
    private int _senderId;
    private ICancelable? _retry;
    private float _clipNorm;               // sync --clip-norm: a complete step waits for the coordinator's global norm
    private long _normSentFor = -1;        // the step whose NormShare went out

    private sealed record GradientArrived(int SenderId, long Step, int MicroBatch) : INoSerializationVerificationNeeded;
    private sealed record GradientDropped(int SenderId, long Step, int MicroBatch, string Reason) : INoSerializationVerificationNeeded;
    private sealed record AskForShard : INoSerializationVerificationNeeded;
    private sealed record RestoreComplete : INoSerializationVerificationNeeded;

    private readonly Action<string>? _onRefused;

    public ParameterServerActor(IActorRef coordinator, string nodeId, NodeEndpoints endpoints, Action<string>? onRefused = null)
    {
        _onRefused = onRefused;
        _coordinator = coordinator;
        _nodeId = nodeId;
        _self = Self; // frame handlers run on data-plane threads, where Self is unavailable
        _endpoints = endpoints;
        _senderId = JobMapping.SenderIdOf(nodeId);
        Receive<AskForShard>(_ => _coordinator.Tell(new RequestShard(_nodeId, WireProtocol.Version)));
        Receive<ShardAssignment>(OnAssignment);
        Receive<CoordinatorMessages.RegisterRejected>(r => { _log.Error("PS {0} refused: {1}", _nodeId, r.Reason); _onRefused?.Invoke(r.Reason); Context.Stop(Self); });
        Receive<WorkerEndpoint>(OnWorker);
        Receive<WorkerGone>(OnWorkerGone);
        Receive<ApplyClipped>(OnApplyClipped);
        Receive<GradientArrived>(OnGradient);
        Receive<GradientDropped>(d => _coordinator.Tell(new GradientRejected(_shard?.Shard ?? -1, d.SenderId.ToString(), d.Step, d.MicroBatch, d.Reason)));
        Receive<SendCheckpoint>(OnSendCheckpoint);
        Receive<RestoreComplete>(_ => OnRestored());
        Receive<CoordinatorMessages.TrainingDone>(_ => Context.Stop(Self));
    }

    public static Props Props(IActorRef coordinator, string nodeId, NodeEndpoints endpoints, Action<string>? onRefused = null) =>
        Akka.Actor.Props.Create(() => new ParameterServerActor(coordinator, nodeId, endpoints, onRefused));

    protected override void PreStart()
    {
        // The coordinator singleton may not be up yet: ask until it answers.
        _retry = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.Zero, TimeSpan.FromSeconds(1), Self, new AskForShard(), Self);
    }

    protected override void PostStop()
    {
        _retry?.Cancel();
        _server?.Dispose();
        foreach (var c in _workers.Values) c.Dispose();
    }

    private void OnAssignment(ShardAssignment a)
    {
        if (_shard is not null) return;
        _retry?.Cancel();
        var job = JobMapping.ToTrainJob(a.Job);
        var model = job.Spec().Build((ulong)(uint)job.Seed); // the same initial weights on every node
        var range = new KeyRange((int)a.Offset, a.Length);
        _microBatches = JobMapping.MicroBatchesPerStep(a.Job);
        int trainCount = a.Job.Dataset.TrainSamples;
        var mode = JobMapping.ModeOf(a.Job);
        var optimizer = mode.Mode == TrainingMode.LocalSgd ? new DeltaAveraging(range.Length, _microBatches) : job.CreateOptimizer(range.Length);
        _shard = new ParameterShard(a.Shard, range, model.Store.Values.AsSpan(range.Offset, range.Length),
            optimizer, job.CreateSchedule(trainCount), _microBatches);
        if (mode.Mode == TrainingMode.Async)
        {
            _async = new AsyncGradientQueue(range.Length, job.TotalSteps(trainCount), _microBatches);
            _share = (float)a.Job.Hyper.MicroBatchSize / a.Job.Hyper.BatchSize;
        }
        _shard.BeginStep(0, _microBatches);
        // Async and local-sgd clip on the worker, where each update's whole gradient is; sync needs every shard's share.
        _clipNorm = mode.Mode == TrainingMode.Sync ? a.Job.Hyper.ClipNorm : 0f;
        _pushChunks = mode.Mode == TrainingMode.Sync
            ? Training.KeyRanges.PushChunks(range, Enumerable.Range(0, model.Layers.Count).Select(model.ParameterRunStart), _endpoints.GradientChunkFloats)
            : [range];
        _extras = new ShardCheckpointing(_shard, model, _microBatches, mode, job.TotalSteps(trainCount));
        _senderId = JobMapping.SenderIdOf($"{_nodeId}/ps{a.Shard}");
        _server = _endpoints.Listen(this);
        _coordinator.Tell(new RegisterShard(a.Shard, a.Offset, a.Length, _nodeId, _endpoints.AdvertisedHost, _server.Port, WireProtocol.Version));
        _log.Info("PS shard {0}/{1} owns {2}, data plane on {3}:{4}", a.Shard, a.ShardCount, range, _endpoints.AdvertisedHost, _server.Port);
    }

    private void OnWorker(WorkerEndpoint w)
    {
        if (_shard is null) return;
        try
        {
            var client = _endpoints.Connect(w.DataHost, w.DataPort, _senderId);
            if (_workers.Remove(w.WorkerId, out var old)) old.Dispose();
            _workers[w.WorkerId] = client;
            Push(client, _shard);
        }
        catch (IOException e) { _log.Warning("PS {0}: cannot reach worker {1}: {2}", _shard.Shard, w.WorkerId, e.Message); }
    }

    /// <summary>
    /// The worker left the cluster: stop pushing to it and close its gradient connections here too. A frame it was
    /// sending when its link was cut holds its chunk's slot (Rent) until the connection ends, and a cut link never
    /// ends one by itself: the worker that redoes the micro-batch would find that chunk "Duplicate" every time.
    /// Closing fails the frame in flight, which frees the slot (OnDropped, ConnectionLost).
    /// </summary>
    private void OnWorkerGone(WorkerGone g)
    {
        if (_workers.Remove(g.WorkerId, out var c)) c.Dispose();
        int closed = _server?.Close(JobMapping.SenderIdOf(g.WorkerId)) ?? 0;
        if (closed > 0) _log.Info("PS {0}: closed {1} data-plane connection(s) of worker {2}, which left", _shard?.Shard, closed, g.WorkerId);
    }

    private void OnGradient(GradientArrived g)
    {
        if (_async is not null) { ApplyArrivals(); return; }
        var shard = _shard!;
        _coordinator.Tell(new GradientAccepted(shard.Shard, g.SenderId.ToString(), g.Step, g.MicroBatch));
        if (_clipNorm > 0) { SendNormShare(shard); return; }
        Apply(shard, 0f, double.NaN);
    }

    /// <summary>Sync with clipping: once the step's sum is complete, the coordinator gets this range's exact Σ g² and answers
    /// every shard with the global norm (ApplyClipped); the step is applied then.</summary>
    private void SendNormShare(ParameterShard shard)
    {
        uint[] digits;
        long step;
        lock (_gate)
        {
            if (!shard.StepComplete || _normSentFor == shard.Version) return;
            step = shard.Version;
            digits = new uint[DistTrain.Nn.Optimizers.ExactSquareSum.SerializedLength];
            shard.SquareSum().CopyTo(digits);
        }
        _normSentFor = step;
        _coordinator.Tell(new NormShare(shard.Shard, step, digits));
    }

    private void OnApplyClipped(ApplyClipped c)
    {
        if (_shard is not { } shard || _clipNorm <= 0 || c.Step != shard.Version || _normSentFor != c.Step) return; // stale or unasked
        Apply(shard, _clipNorm, c.GlobalNorm);
    }

    private void Apply(ParameterShard shard, float maxNorm, double globalNorm)
    {
        bool applied;
        lock (_gate)
        {
            applied = shard.TryApply(maxNorm, globalNorm);
            if (applied) { shard.BeginStep(shard.Version, _microBatches); _extras!.StepApplied(); }
        }
        if (!applied) return;
        PushAll(shard);
        _coordinator.Tell(new VersionPublished(shard.Shard, shard.Version, shard.Version - 1));
    }

    /// <summary>
    /// Async: applies every gradient that has arrived, in arrival order, one optimizer update each, then pushes the
    /// newest values once. Gradients that arrive while a push is under way wait for the next call, so a busy shard
    /// pushes less often instead of falling behind. The coordinator hears of each update after the push that carries it.
    /// </summary>
    private void ApplyArrivals()
    {
        var shard = _shard!;
        var queue = _async!;
        _applied.Clear();
        while (true)
        {
            AsyncGradientQueue.Arrival a;
            ReadOnlySpan<float> gradient;
            lock (_gate)
            {
                if (!queue.TryDequeue(out a)) break;
                gradient = queue.Gradient(a);
            }
            long staleness = shard.ApplyMicroBatch(gradient, a.Step, _share, a.Version);
            lock (_gate) { queue.Release(a); _extras!.MicroBatchApplied(a.Step, a.MicroBatch); }
            _applied.Add(new AsyncApplied(shard.Shard, a.Step, a.MicroBatch, shard.Version, staleness));
        }
        if (_applied.Count == 0) return;
        PushAll(shard);
        foreach (var m in _applied) _coordinator.Tell(m);
    }

    private void PushAll(ParameterShard shard)
    {
        List<string>? failed = null;
        // Each frame to every worker before the next frame: the first layers' values reach all of them first.
        foreach (var chunk in _pushChunks)
        {
            ReadOnlySpan<float> values = shard.Values.AsSpan(chunk.Offset - shard.Range.Offset, chunk.Length);
            ulong checksum = DataPlaneClient.Checksum(values); // the same bytes go to every worker: hash them once
            var header = new FrameHeader(FrameKind.Parameters, shard.Version, 0, shard.Version, shard.Shard, chunk.Offset, chunk.Length, 0, 0);
            foreach (var (id, client) in _workers)
            {
                if (failed?.Contains(id) == true) continue;
                try { client.Send(header, values, checksum); }
                catch (IOException) { (failed ??= []).Add(id); }
            }
        }
        if (failed is not null)
            foreach (var id in failed) if (_workers.Remove(id, out var c)) c.Dispose();
        if (_dueCheckpoints.Count > 0) SendDueCheckpoints(); // after the push: workers go on meanwhile, the version cannot move here
    }

    private void OnSendCheckpoint(SendCheckpoint s)
    {
        if (_shard is null) return;
        if (s.Version > _shard.Version) { _dueCheckpoints.Add(s); return; } // sent the moment the shard gets there
        if (s.Version < _shard.Version)
        {
            _log.Warning("PS shard {0} is at version {1}; the checkpoint of version {2} was asked for too late and is skipped", _shard.Shard, _shard.Version, s.Version);
            return;
        }
        try
        {
            using var client = _endpoints.Connect(s.DataHost, s.DataPort, _senderId);
            lock (_gate) _extras!.Send(client, s.Version);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            _log.Error("PS shard {0}: checkpoint of version {1} not sent: {2}", _shard.Shard, s.Version, e.Message);
        }
    }

    /// <summary>After applying a step: send the checkpoints asked for this version before anything can move it on.</summary>
    private void SendDueCheckpoints()
    {
        for (int i = _dueCheckpoints.Count - 1; i >= 0; i--)
        {
            if (_dueCheckpoints[i].Version > _shard!.Version) continue;
            var due = _dueCheckpoints[i];
            _dueCheckpoints.RemoveAt(i);
            OnSendCheckpoint(due);
        }
    }

    private void OnRestored()
    {
        var shard = _shard!;
        long version;
        lock (_gate) version = _extras!.ApplyRestore();
        foreach (var (id, client) in _workers.ToArray())
        {
            try { Push(client, shard); }
            catch (IOException) { _workers.Remove(id); client.Dispose(); }
        }
        _log.Info("PS shard {0} restored at version {1}", shard.Shard, version);
        _coordinator.Tell(new ShardRestored(shard.Shard, version));
    }

    private static void Push(DataPlaneClient client, ParameterShard shard) => Push(client, shard, DataPlaneClient.Checksum(shard.Values));

    private static void Push(DataPlaneClient client, ParameterShard shard, ulong checksum) =>
        client.Send(new FrameHeader(FrameKind.Parameters, shard.Version, 0, shard.Version, shard.Shard, shard.Range.Offset, shard.Range.Length, 0, 0),
            shard.Values, checksum);

    // ---- data plane (called on receive threads) ----

    WireDrop? IFrameHandler.Rent(FrameHeader header, out Span<float> destination)
    {
        destination = Span<float>.Empty;
        var shard = _shard;
        if (shard is null) return WireDrop.Rejected;
        if (header.Kind != FrameKind.Gradient) return RentOther(header, out destination);
        if (header.Shard != shard.Shard || header.Offset < shard.Range.Offset || _async is not null && header.Offset != shard.Range.Offset)
            return WireDrop.Rejected;
        // Sync: a micro-batch's gradient may come as several chunks of the range (sent during the worker's backward).
        int chunkOffset = (int)Math.Min(header.Offset - shard.Range.Offset, int.MaxValue);
        lock (_gate)
        {
            // (An async copy of a micro-batch already applied goes on to be refused as the Duplicate it is.)
            if (!_extras!.StatisticsReady(header.Step, header.MicroBatch) && _async?.IsAppliedOrUnknown(header.Step, header.MicroBatch) != true)
            {
                _self.Tell(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, "its BatchNorm statistics did not arrive first"));
                return WireDrop.Rejected;
            }
            destination = _async is { } q ? q.Reserve(header.Step, header.MicroBatch, header.Version, header.Length, out var reason)
                : shard.Aggregator.Reserve(header.Step, header.MicroBatch, chunkOffset, header.Length, out reason);
            if (reason == TrainingDrop.None) return null;
            _self.Tell(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, reason.ToString()));
            return WireDrop.Rejected; // reported above with the precise reason
        }
    }

    /// <summary>Statistics (worker → shard 0) and restore frames (coordinator → shard): staged by ShardCheckpointing.</summary>
    private WireDrop? RentOther(FrameHeader header, out Span<float> destination)
    {
        lock (_gate)
        {
            if (header.Kind == FrameKind.Statistics)
            {
                // Async: statistics of a micro-batch already applied (a re-executed copy) would never be folded.
                var reason = TrainingDrop.Duplicate;
                destination = _async is { } q && q.IsAppliedOrUnknown(header.Step, header.MicroBatch) ? Span<float>.Empty
                    : _extras!.RentStatistics(header, out reason);
                if (reason == TrainingDrop.None) return null;
                if (reason != TrainingDrop.Duplicate)
                    _self.Tell(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, $"statistics: {reason}"));
                return WireDrop.Rejected;
            }
            destination = header.Kind is FrameKind.Parameters or FrameKind.OptimizerState or FrameKind.Buffers
                ? _extras!.RentRestore(header) : Span<float>.Empty;
            return destination.IsEmpty && header.Length > 0 ? WireDrop.Rejected : null;
        }
    }

    void IFrameHandler.OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
    {
        if (header.Kind == FrameKind.Statistics) { lock (_gate) _extras!.StatisticsArrived(header); return; }
        if (header.Kind != FrameKind.Gradient)
        {
            bool complete;
            lock (_gate) complete = _extras!.RestoreArrived(header);
            if (complete) _self.Tell(new RestoreComplete());
            return;
        }
        ChunkCommit result;
        lock (_gate)
            result = _async is { } q ? (q.Commit(header.Step, header.MicroBatch) ? ChunkCommit.Completed : ChunkCommit.NotFinite)
                : _shard!.Aggregator.Commit(header.Step, header.MicroBatch, ChunkOffset(header), header.Length);
        if (result == ChunkCommit.Stored) return; // more chunks of this micro-batch to come
        _self.Tell(result == ChunkCommit.Completed ? new GradientArrived(header.SenderId, header.Step, header.MicroBatch)
                     : new GradientDropped(header.SenderId, header.Step, header.MicroBatch, $"gradient chunk {header.Offset}+{header.Length} is not finite (NaN or infinity)"));
    }

    private int ChunkOffset(in FrameHeader header) => (int)(header.Offset - _shard!.Range.Offset);

    void IFrameHandler.OnDropped(in FrameHeader header, WireDrop reason)
    {
        if (reason == WireDrop.Rejected) return; // Rent refused it and reported why
        if (header.Kind == FrameKind.Statistics) { lock (_gate) _extras?.StatisticsDropped(header); return; }
        if (header.Kind != FrameKind.Gradient) return; // a restore frame: the coordinator's send fails and it says so
        // A frame that failed after Rent (checksum, lost connection) frees its slot so it can arrive again.
        if (reason is WireDrop.BadChecksum or WireDrop.ConnectionLost)
            lock (_gate)
            {
                if (_async is not null) _async.Abort(header.Step, header.MicroBatch, TrainingDrop.Corrupt);
                else _shard?.Aggregator.Abort(header.Step, header.MicroBatch, ChunkOffset(header), header.Length, TrainingDrop.Corrupt);
            }
        _self.Tell(new GradientDropped(header.SenderId, header.Step, header.MicroBatch, reason.ToString()));
    }
}

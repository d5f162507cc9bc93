// A worker as an actor: fetches the job from the coordinator, builds its model replica and loads its
// node's copy of the dataset, then pulls micro-batches. For each it waits until it holds exactly the
// assigned parameter version (pushed by every shard over the data plane), computes the gradient and
// sends each shard its range. In sync mode it never computes on a mix of versions (DESIGN contracts 2, 3).
// Async: it refreshes to the newest pushed values before each micro-batch and waits only when they are
// older than the assignment's minimum; local-sgd: it runs a chunk of local steps (LocalSgdChunk) and
// sends the parameter delta instead of a gradient (DESIGN contract 5).
using System.Diagnostics;
using System.Net;
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Data;
using DistTrain.Data.Plans;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Runtime;

public sealed class WorkerActor : ReceiveActor, IWithUnboundedStash
{
    private readonly IActorRef _coordinator;
    private readonly string _workerId;
    private readonly NodeEndpoints _endpoints;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _self;
    private readonly int _senderId;
    private JobDescription? _job;
    private Trainer? _trainer;
    private Dataset? _train;
    private DataPlaneServer? _server;
    private ParameterServerMessages.ShardInfo[] _shards = [];
    private DataPlaneClient?[] _clients = [];
    private readonly ParameterInbox _inbox;   // the shards' pushes arrive there (receive threads)
    // Sync: the version the forward is taking layer by layer as its frames arrive (Sequential.ParametersNeeded),
    // and how far the model's values hold it; -1 when the model holds one whole version (or in other modes).
    private long _gateVersion = -1;
    private int _copiedTo;
    private long _gateWaitTicks;
    private bool _gated;
    private static readonly TimeSpan ParameterWaitLimit = TimeSpan.FromMinutes(2);
    private long _modelVersion = -1;
    private ModeOptions _mode = ModeOptions.Sync;
    private long[] _modelShardVersion = [];   // async: the version of each shard's range the model holds
    private LocalSgdChunk? _local;
    private EpochPlan? _plan;
    private RunningStatistics? _statistics;   // BatchNorm batch statistics, sent to shard 0 with each micro-batch
    private float[] _statisticsBuffer = [];
    private ICancelable? _retry;
    // Sync: the micro-batch whose gradient goes out while the backward still runs (OnGradientReady), and per shard the
    // start of the part of its range sent so far; a shard's range goes in chunks of at least _endpoints.GradientChunkFloats.
    private WorkAssignment? _streaming;
    private long[] _sentFrom = [];
    private bool _statisticsSent;
    private long _streamedBytes;
    private long _streamTicks;
    private double _waitMs;
    private long _waitStarted;

    public IStash Stash { get; set; } = null!;

    private sealed record AskForJob : INoSerializationVerificationNeeded;
    private sealed record ParametersArrived : INoSerializationVerificationNeeded;

    private readonly Action<string>? _onRefused;

    public WorkerActor(IActorRef coordinator, string workerId, NodeEndpoints endpoints, Action<string>? onRefused = null)
    {
        _onRefused = onRefused;
        _coordinator = coordinator;
        _workerId = workerId;
        _self = Self; // frame handlers run on data-plane threads, where Self is unavailable
        _endpoints = endpoints;
        _senderId = JobMapping.SenderIdOf(workerId);
        var self = Self; // the inbox calls back on receive threads, where Self is unavailable
        _inbox = new ParameterInbox(() => self.Tell(new ParametersArrived()));
        Receive<AskForJob>(_ => _coordinator.Tell(new RequestJob(_workerId, WireProtocol.Version)));
        Receive<JobDescription>(OnJob);
        Receive<RegisterRejected>(r => { _log.Error("Worker {0} refused by the coordinator: {1}", _workerId, r.Reason); _onRefused?.Invoke(r.Reason); Context.Stop(Self); });
        Receive<RegisterAccepted>(OnAccepted);
        Receive<WorkAssignment>(OnAssignment);
        Receive<ParametersArrived>(_ => Stash.UnstashAll());
        Receive<TrainingDone>(_ => Context.Stop(Self));
    }

    public static Props Props(IActorRef coordinator, string workerId, NodeEndpoints endpoints, Action<string>? onRefused = null) =>
        Akka.Actor.Props.Create(() => new WorkerActor(coordinator, workerId, endpoints, onRefused));

    protected override void PreStart() =>
        _retry = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.Zero, TimeSpan.FromSeconds(1), Self, new AskForJob(), Self);

    protected override void PostStop()
    {
        _retry?.Cancel();
        _server?.Dispose();
        foreach (var c in _clients) c?.Dispose();
    }

    private void OnJob(JobDescription job)
    {
        if (_job is not null) return;
        _retry?.Cancel();
        _job = job;
        var train = JobMapping.ToTrainJob(job);
        var spec = train.Spec();
        _train = DistTrain.Data.Sources.DatasetSpec.Parse(train.Dataset).Load().Train;
        if (ClusterNode.DatasetMismatch(job.Dataset, _train) is { } other) { _log.Error("Worker {0}: {1}", _workerId, other); _onRefused?.Invoke(other); Context.Stop(Self); return; }
        var model = spec.Build((ulong)(uint)train.Seed);
        _trainer = train.CreateTrainer(_train.Count, model);
        _mode = JobMapping.ModeOf(job);
        if (_mode.Mode == TrainingMode.LocalSgd)
            _local = new LocalSgdChunk(_trainer, _train, _mode, train.Seed, job.Hyper.BatchSize, job.Hyper.MicroBatchSize,
                train.TotalSteps(_train.Count), train.CreateSchedule(_train.Count));
        _statistics = new RunningStatistics(model);
        if (_mode.Mode == TrainingMode.Sync && _endpoints.GradientChunkFloats > 0)
        {
            model.GradientReady = OnGradientReady;
            model.ParametersNeeded = OnParametersNeeded;
            _gated = true;
        }
        // Every mode: shard 0 folds them in the order its mode applies work (ShardCheckpointing.cs).
        _statisticsBuffer = new float[ShardCheckpointing.FrameLength(_statistics, _mode)];
        _server = _endpoints.Listen(_inbox);
        _coordinator.Tell(new RegisterWorker(_workerId, Self.Path.Address.ToString(), _endpoints.AdvertisedHost, _server.Port,
            WireProtocol.Version, spec.Hash));
    }

    private void OnAccepted(RegisterAccepted a)
    {
        if (a.Layout.TilingError() is { } bad)
        {
            string why = $"the shard layout does not cover the parameter vector: {bad}";
            _log.Error("Worker {0} refused the coordinator's layout: {1}", _workerId, why);
            _onRefused?.Invoke(why);
            Context.Stop(Self);
            return;
        }
        var shards = a.Layout.Shards;
        _shards = shards;
        _inbox.Configure(shards, a.Layout.ParameterCount);
        _modelShardVersion = shards.Select(_ => -1L).ToArray();
        _sentFrom = shards.Select(s => s.Offset + s.Length).ToArray();
        _clients = shards.Select(s => (DataPlaneClient?)_endpoints.Connect(s.DataHost, s.DataPort, _senderId)).ToArray();
        _log.Info("Worker {0} registered: {1}", _workerId, a.Layout);
        _coordinator.Tell(new RequestWork(_workerId, _modelVersion));
    }

    private void OnAssignment(WorkAssignment w)
    {
        if (_mode.Mode == TrainingMode.Async) { OnAsyncAssignment(w); return; }
        if (!(_gated && _local is null ? TryBeginVersion(w.Version, out bool stale) : TryTakeVersion(w.Version, out stale)))
        {
            if (stale) { _coordinator.Tell(new RequestWork(_workerId, _modelVersion)); return; }
            if (_waitStarted == 0) _waitStarted = Stopwatch.GetTimestamp();
            Stash.Stash(); // wait for the shards' push of this version
            return;
        }
        EndWait();
        if (_local is not null) { RunLocalChunk(w); return; }
        ComputeAndSend(w, async: false);
    }

    /// <summary>
    /// Computes micro-batch w.MicroBatch of step w.Step on the values the model holds and sends it. Sync: the gradient is
    /// this micro-batch's share of the step's mean (sum over 1/B). Async: the micro-batch mean (sum over 1/M); the shard
    /// applies it with the rate scaled by M/B (ParameterShard.ApplyMicroBatch).
    /// </summary>
    private void ComputeAndSend(WorkAssignment w, bool async)
    {
        var job = _job!;
        var t0 = Stopwatch.GetTimestamp();
        int stepsPerEpoch = EpochPlan.CountSteps(_train!.Count, job.Hyper.BatchSize);
        var (epoch, stepInEpoch) = EpochPlan.Locate(w.Step, stepsPerEpoch);
        if (_plan is null || _plan.Epoch != epoch)
            _plan = EpochPlan.Create((int)job.Hyper.Seed, epoch, _train.Count, job.Hyper.BatchSize, job.Hyper.MicroBatchSize);
        var mb = _plan.MicroBatches(stepInEpoch)[w.MicroBatch];
        float scale = async ? 1f / job.Hyper.MicroBatchSize : 1f / _plan.StepSize(stepInEpoch);
        BeginGradient(async ? null : w);
        _gateWaitTicks = 0;
        var (loss, correct) = _trainer!.ComputeGradient(_train, _plan.Indices(mb), scale, w.Step, w.MicroBatch);
        // Async --clip-norm: each micro-batch is its own update, and its whole gradient is here (sync clips on the shards).
        if (async && _trainer.Options.ClipNorm > 0) DistTrain.Nn.Optimizers.GradientClipping.ClipByGlobalNorm(_trainer.Model.Store.Grads, _trainer.Options.ClipNorm);
        _streaming = null;
        if (_gateVersion >= 0) EndVersion();
        _waitMs += Stopwatch.GetElapsedTime(0, _gateWaitTicks).TotalMilliseconds;
        double computeMs = (Stopwatch.GetElapsedTime(t0) - Stopwatch.GetElapsedTime(0, _streamTicks + _gateWaitTicks)).TotalMilliseconds;
        SendAndReport(w, loss, mb.Size, correct, computeMs, perShardVersion: async);
    }

    private void EndWait()
    {
        if (_waitStarted != 0) { _waitMs += Stopwatch.GetElapsedTime(_waitStarted).TotalMilliseconds; _waitStarted = 0; }
    }

    /// <summary>Asks for more work, sends the gradient buffer to every shard (each its range) and reports the micro-batch.</summary>
    private void SendAndReport(WorkAssignment w, double loss, int samples, int correct, double computeMs, bool perShardVersion)
    {
        // Ask for the next micro-batch before sending: the coordinator's answer (a remote round trip) then travels while
        // the gradient does, instead of after it. In sync mode it must be here before the shards' push of the next
        // version, or the worker idles on it; traced under load, it came after the push for a third of the micro-batches.
        _coordinator.Tell(new RequestWork(_workerId, _modelVersion));
        var t1 = Stopwatch.GetTimestamp();
        long bytes = SendGradient(w, perShardVersion, 0, final: true) + _streamedBytes;
        double commMs = (Stopwatch.GetElapsedTime(t1) + Stopwatch.GetElapsedTime(0, _streamTicks)).TotalMilliseconds;
        _coordinator.Tell(new MicroBatchDone(_workerId, w.Step, w.MicroBatch, loss, samples, correct, computeMs, commMs, _waitMs, bytes));
        _waitMs = 0;
        BeginGradient(null);
    }

    /// <summary>Resets the per-micro-batch send state; with <paramref name="streamed"/> set, the backward's progress
    /// (OnGradientReady) sends that micro-batch's gradient chunks as they become final.</summary>
    private void BeginGradient(WorkAssignment? streamed)
    {
        _streaming = streamed;
        for (int s = 0; s < _shards.Length; s++) _sentFrom[s] = _shards[s].Offset + _shards[s].Length;
        _statisticsSent = false;
        _streamedBytes = 0;
        _streamTicks = 0;
    }

    /// <summary>Sequential.GradientReady (compute thread, during the backward): the gradient from <paramref name="finalFrom"/>
    /// to the end is final. Sends it (chunks of at least GradientChunkFloats) so the shard receives and checks it meanwhile.</summary>
    private void OnGradientReady(int finalFrom)
    {
        if (_streaming is not { } w) return; // async, local-sgd, or not computing for the cluster
        var t0 = Stopwatch.GetTimestamp();
        _streamedBytes += SendGradient(w, perShardVersion: false, finalFrom, final: false);
        _streamTicks += Stopwatch.GetTimestamp() - t0;
    }

    /// <summary>
    /// Sends each shard the unsent part of its range from <paramref name="finalFrom"/> on (final: all of it, at least one frame
    /// per shard even for an empty range; else only parts of at least GradientChunkFloats), the BatchNorm statistics before the
    /// first frame. Returns the bytes sent.
    /// </summary>
    private long SendGradient(WorkAssignment w, bool perShardVersion, long finalFrom, bool final)
    {
        long bytes = 0;
        var grads = _trainer!.Model.Store.Grads;
        for (int s = 0; s < _shards.Length; s++)
        {
            var info = _shards[s];
            long end = info.Offset + info.Length, lo = Math.Max(finalFrom, info.Offset), hi = _sentFrom[s];
            bool nothingSent = hi == end;
            if (final ? lo >= hi && !nothingSent : hi - lo < _endpoints.GradientChunkFloats) continue;
            if (!_statisticsSent) { bytes += SendStatistics(w); _statisticsSent = true; }
            // Async: the header carries the version of this shard's range the gradient was computed on (for its staleness).
            long version = perShardVersion ? _modelShardVersion[s] : w.Version;
            var h = new FrameHeader(FrameKind.Gradient, w.Step, w.MicroBatch, version, info.Shard, lo, (int)(hi - lo), 0, 0);
            _clients[s]!.Send(h, grads.AsSpan((int)lo, (int)(hi - lo)));
            bytes += (hi - lo) * sizeof(float);
            _sentFrom[s] = lo;
        }
        return bytes;
    }

    /// <summary>Local-sgd: chunk w.MicroBatch of round w.Step from the round's parameters; sends δ = θ_local − θ_r.</summary>
    private void RunLocalChunk(WorkAssignment w)
    {
        var t0 = Stopwatch.GetTimestamp();
        var (loss, correct, samples) = _local!.Run(w.Step, w.MicroBatch, _statistics, _statisticsBuffer);
        double computeMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        _modelVersion = -1; // the replica now holds θ_local: the next chunk starts again from the pushed θ_r
        SendAndReport(w, loss, samples, correct, computeMs, perShardVersion: false);
    }

    /// <summary>
    /// Async: refresh to the newest pushed values; if any shard's is older than w.Version (the coordinator's newest
    /// minus the staleness bound) wait for its push first. Then compute and send without a step barrier.
    /// </summary>
    private void OnAsyncAssignment(WorkAssignment w)
    {
        if (!TryRefresh(w.Version))
        {
            if (_waitStarted == 0) _waitStarted = Stopwatch.GetTimestamp();
            Stash.Stash();
            return;
        }
        EndWait();
        ComputeAndSend(w, async: true);
    }

    /// <summary>Async: copies every shard's newest pushed range into the model when all are at least <paramref name="minVersion"/>.</summary>
    private bool TryRefresh(long minVersion)
    {
        long oldest = _inbox.TryRefresh(minVersion, _trainer!.Model.Store.Values, _modelShardVersion);
        if (oldest < 0) return false;
        _modelVersion = oldest;
        return true;
    }

    /// <summary>
    /// Sends the micro-batch's BatchNorm statistics to shard 0 ahead of its gradient on the same connection, so the shard
    /// holds them whenever it holds the gradient and folds them in micro-batch order (ShardCheckpointing.cs).
    /// </summary>
    private long SendStatistics(WorkAssignment w)
    {
        if (_statisticsBuffer.Length == 0) return 0;
        if (_local is null) _statistics!.Gather(_statisticsBuffer); // local-sgd: the chunk gathered one vector per local step
        int s = ShardIndex(0);
        var h = new FrameHeader(FrameKind.Statistics, w.Step, w.MicroBatch, w.Version, 0, 0, _statisticsBuffer.Length, 0, 0);
        _clients[s]!.Send(h, _statisticsBuffer);
        return (long)_statisticsBuffer.Length * sizeof(float);
    }

    /// <summary>
    /// Sync, gated: true when every shard has begun pushing exactly <paramref name="version"/> (or the model holds it);
    /// the forward then takes each layer's values as they arrive (OnParametersNeeded) instead of waiting for all of them.
    /// </summary>
    private bool TryBeginVersion(long version, out bool stale)
    {
        stale = false;
        if (_modelVersion == version) return true;
        if (!_inbox.AllBegun(version, out stale)) return false;
        _gateVersion = version;
        _copiedTo = 0;
        _modelVersion = -1; // the model is a mix until EndVersion: nothing but the gated forward may read it
        return true;
    }

    /// <summary>Sequential.ParametersNeeded (compute thread, before a layer's forward): the values below
    /// <paramref name="to"/> must be those of the version being computed on; waits for their frames if need be.</summary>
    private void OnParametersNeeded(int to)
    {
        if (_gateVersion < 0 || to <= _copiedTo) return;
        TakeArrived(_copiedTo, to);
        _copiedTo = to;
    }

    /// <summary>After the gated forward: the rest of the version (layers after the last one with parameters: none), then the
    /// model holds that version whole.</summary>
    private void EndVersion()
    {
        int count = _inbox.Length;
        if (_copiedTo < count) TakeArrived(_copiedTo, count);
        _modelVersion = _gateVersion;
        _gateVersion = -1;
    }

    private void TakeArrived(int from, int to)
    {
        try { _gateWaitTicks += _inbox.TakeRange(_gateVersion, from, to, _trainer!.Model.Store.Values, ParameterWaitLimit); }
        catch (TimeoutException e) { throw new TimeoutException($"Worker {_workerId} {e.Message}", e); }
    }

    /// <summary>Copies the pushed values into the model when every shard has exactly <paramref name="version"/>.</summary>
    private bool TryTakeVersion(long version, out bool stale)
    {
        stale = false;
        if (_modelVersion == version) return true;
        if (!_inbox.TryTakeAll(version, _trainer!.Model.Store.Values, out stale)) return false;
        _modelVersion = version;
        return true;
    }

    private int ShardIndex(int shard)
    {
        for (int i = 0; i < _shards.Length; i++) if (_shards[i].Shard == shard) return i;
        return -1;
    }
}

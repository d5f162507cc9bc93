// The coordinator (a cluster singleton): hands shards their key ranges, admits workers whose protocol
// and model agree, plans steps from the seeded epoch plan, leases micro-batches to workers that ask,
// re-queues the work of workers that leave, and at the end collects the parameters from the shards,
// writes the checkpoint and evaluates. Bookkeeping lives in WorkQueue and StepLog; this wires it.
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
}

public sealed partial class CoordinatorActor : ReceiveActor, IFrameHandler
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
    // checkpoint collection
    private readonly Lock _gate = new();
    private DataPlaneServer? _collector;
    private float[] _collected = [];
    private float[][] _collectStaging = [];
    private bool[] _collectedShard = [];

    private sealed record CollectionArrived : INoSerializationVerificationNeeded;

    public CoordinatorActor(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings)
    {
        _job = job;
        _settings = settings;
        _self = Self; // frame handlers run on data-plane threads, where Self is unavailable
        _description = JobMapping.ToDescription(job, Guid.NewGuid().ToString("N")[..12], parameterCount, settings.Mode);
        _description = _description with { Dataset = _description.Dataset with { TrainSamples = trainCount } };
        _ranges = DistTrain.Cluster.Training.ShardLayout.Split(parameterCount, settings.Shards);
        _shards = new ShardInfo?[settings.Shards];
        _shardRefs = new IActorRef?[settings.Shards];
        _published = new long[settings.Shards];
        _microBatches = JobMapping.MicroBatchesPerStep(_description);
        _stepsPerEpoch = EpochPlan.CountSteps(trainCount, job.BatchSize);
        _planSteps = job.TotalSteps(trainCount);
        _totalSteps = settings.Mode.Units(_planSteps); // work units with a barrier after each: steps, or local-sgd rounds
        _queue = new LookaheadQueue(settings.Shards, settings.LeaseTimeout, _microBatches, _totalSteps);
        _stepLog = new StepLog(Path.Combine(settings.OutDir, "metrics.jsonl"), _microBatches, _stepsPerEpoch, job.CreateSchedule(trainCount))
        {
            StepOfUnit = unit => settings.Mode.LastStepOf(unit, _planSteps),
        };
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
        Receive<MicroBatchDone>(d => _stepLog.Add(d));
        Receive<Terminated>(t => OnWorkerLeft(t.ActorRef));
        Receive<CollectionArrived>(_ => TryFinish());
    }

    public static Props Props(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(job, trainCount, parameterCount, settings));

    protected override void PostStop()
    {
        _collector?.Dispose();
        _stepLog.Dispose();
    }

    private static string VersionMismatch(int theirs) =>
        $"protocol version {theirs} differs from the coordinator's {WireProtocol.Version}; run the same DistTrain build on every node.";

    private void OnRequestShard(RequestShard r)
    {
        if (r.ProtocolVersion != WireProtocol.Version) { Sender.Tell(new RegisterRejected(r.NodeId, VersionMismatch(r.ProtocolVersion))); return; }
        int s = Array.FindIndex(_shardRefs, x => x is not null && x.Equals(Sender));
        if (s < 0) s = Array.FindIndex(_shardRefs, x => x is null);
        if (s < 0) { Sender.Tell(new RegisterRejected(r.NodeId, $"all {_shards.Length} parameter-server shards are taken; start the job with more --ps-shards.")); return; }
        _shardRefs[s] = Sender;
        Context.Watch(Sender);
        Sender.Tell(new ShardAssignment(s, _shards.Length, _ranges[s].Offset, _ranges[s].Length, _description));
    }

    private void OnRegisterShard(RegisterShard r)
    {
        _shards[r.Shard] = new ShardInfo(r.Shard, r.Offset, r.Length, r.OwnerAddress, r.DataHost, r.DataPort);
        if (AllShardsUp) foreach (var (id, w) in _workers) Accept(id, w.Ref);
        MaybeStart();
    }

    private bool AllShardsUp => _shards.All(s => s is not null);

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
        BeginStep(0);
    }

    private void BeginStep(long step)
    {
        if (_async is not null) { BeginAsync(); return; }
        if (step == 0) _queue.Begin(0);
        else _queue.Advance(); // leases already taken on this step stay with their workers
        _step = step;
        _waitingAhead.Clear();
        _stepLog.Begin(step);
        ServeIdle();
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

    private void OnAccepted(GradientAccepted a) => _queue.Acknowledge(a.Step, a.MicroBatch, a.Shard);

    private void OnPublished(VersionPublished p)
    {
        _published[p.Shard] = Math.Max(_published[p.Shard], p.Version);
        if (_published.Any(v => v <= _step)) return; // some shard has not applied this step yet
        _stepLog.End(_step);
        long next = _step + 1;
        if (next % 20 == 0 || next == _totalSteps) _settings.OnProgress?.Invoke(_stepLog.Summary(next, _totalSteps));
        if (next >= _totalSteps) { StartCollection(); return; }
        BeginStep(next);
    }

    private void OnWorkerLeft(IActorRef who)
    {
        if (!_workerByRef.Remove(who, out var id)) return;
        _workers.Remove(id);
        _withEndpoint.Remove(id);
        _waitingAhead.Remove(id);
        int requeued = _async?.WorkerLeft(id) ?? _queue.WorkerLeft(id);
        foreach (var s in _shardRefs) s?.Tell(new WorkerGone(id));
        _log.Warning("Worker {0} left; {1} micro-batch(es) of step {2} re-queued", id, requeued, _step);
        _settings.OnProgress?.Invoke($"worker {id} left; {requeued} micro-batch(es) re-queued, {_workers.Count} worker(s) remain");
        ServeIdle();
        ServeWaitingAhead();
    }

    // ---- end of run: collect every shard's range over the data plane, then save and evaluate ----

    private void StartCollection()
    {
        _finishing = true;
        _collected = new float[_description.ParameterCount];
        _collectStaging = _ranges.Select(r => new float[r.Length]).ToArray();
        _collectedShard = new bool[_ranges.Length];
        _collector = new DataPlaneServer(IPAddress.Parse(_settings.Endpoints.BindAddress), 0, this, _settings.Endpoints.MaxFrameBytes);
        foreach (var s in _shardRefs) s!.Tell(new SendParameters(_settings.Endpoints.AdvertisedHost, _collector.Port, _totalSteps));
    }

    private void TryFinish()
    {
        lock (_gate) if (!_collectedShard.All(x => x)) return;
        RunCompleted result;
        try { result = ModelOutput.SaveAndEvaluate(_job, _collected, _planSteps, _settings.OutDir, _stepLog, _settings.Mode.Metadata()); }
        catch (Exception e) { result = new RunCompleted(_planSteps, null, double.NaN, double.NaN, e.Message); }
        var done = new TrainingDone(_planSteps, _totalSteps, result.Error);
        foreach (var w in _workers.Values) w.Ref.Tell(done);
        foreach (var s in _shardRefs) s?.Tell(done);
        _settings.OnCompleted?.Invoke(result);
    }

    DropReason? IFrameHandler.Rent(FrameHeader header, out Span<float> destination)
    {
        destination = Span<float>.Empty;
        if (header.Kind != FrameKind.Parameters || (uint)header.Shard >= (uint)_ranges.Length) return DropReason.Rejected;
        if (_ranges[header.Shard].Length != header.Length || _ranges[header.Shard].Offset != header.Offset) return DropReason.WrongLength;
        destination = _collectStaging[header.Shard];
        return null;
    }

    void IFrameHandler.OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
    {
        lock (_gate)
        {
            payload.CopyTo(_collected.AsSpan((int)header.Offset, header.Length));
            _collectedShard[header.Shard] = true;
        }
        _self.Tell(new CollectionArrived());
    }
}

// A parameter-server shard as a plain class: asks the coordinator for a key range and the job, then takes the
// events of its inbox (ShardInbox: the frames that arrived) and the coordinator's messages, and returns effects.
// How a gradient becomes an update is the mode's, chosen once at the assignment: with the step barrier (sync;
// local-sgd with the outer optimizer on the deltas, OuterOptimizer.ForShard) a complete step is applied as the sum in micro-batch order (with
// --clip-norm after the coordinator's global norm); async applies each gradient as it arrives. Every new version
// is pushed (ShardPublisher, by the actor) before the checkpoints asked for it are sent.
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Cores;

/// <summary>Start the shard's data-plane server on <paramref name="Inbox"/> and its publisher (pushes in
/// <paramref name="PushChunks"/>, as <paramref name="SenderId"/>); then call the core's Listening(port).</summary>
public sealed record Serve(IFrameHandler Inbox, KeyRange[] PushChunks, int SenderId) : Effect;

/// <summary>Push the shard's current version to every worker (<paramref name="Whole"/>: the whole range at once, after a restore).</summary>
public sealed record Push(bool Whole = false) : Effect;

/// <summary>Connect to a worker's data-plane endpoint (with <paramref name="Key"/>, this shard's key toward it: WorkerEndpoint.Key)
/// and send it the current values; pushes go to it from now on.</summary>
public sealed record AddWorker(string WorkerId, string Host, int Port, byte[] Key) : Effect;

/// <summary>Stop pushing to a worker that left and close its gradient connections (a cut link never ends them itself).</summary>
public sealed record RemoveWorker(string WorkerId) : Effect;

/// <summary>Close the data-plane connections of <paramref name="SenderId"/> (a frame it left half-sent then gives its slot back).</summary>
public sealed record Disconnect(int SenderId, string Why) : Effect;

/// <summary>Stop pushing to every worker and close their gradient connections (a coordinator that took over rolled the shard
/// back: the workers connect again once they hold the layout it gives them).</summary>
public sealed record RemoveAllWorkers : Effect;

/// <summary>Send the shard's state at <paramref name="Version"/> (its current one) to the coordinator's endpoint.</summary>
public sealed record SendState(string Host, int Port, long Version) : Effect;

public sealed class ShardCore
{
    public const string Coordinator = "coordinator", AskTimer = "ask-for-shard", RejoinTimer = "rejoin";

    private readonly string _nodeId;
    private readonly int _gradientChunkFloats;
    private readonly Action<object> _post;
    private readonly EffectList _out = new();
    private readonly List<SendCheckpoint> _due = [];   // asked for a version this shard has not reached yet
    private Action<ShardInbox.GradientArrived> _onGradient = _ => { };
    private float _share;                  // async: M/B, a micro-batch's share of a global batch's learning rate
    private float _clipNorm;               // sync --clip-norm: a complete step waits for the coordinator's global norm
    private long _normSentFor = -1;        // the step whose NormShare went out
    private bool _standby;                 // told that every range has an owner: a spare until one is lost
    private string _jobId = "";
    private (string Host, int Port) _listening;
    private bool _rejoining;               // the coordinator died: asking the one that takes over to take this shard back

    /// <param name="post">Delivers the inbox's events (ShardInbox.GradientArrived, ...) to whoever calls Handle: they come on
    /// data-plane threads.</param>
    public ShardCore(string nodeId, int gradientChunkFloats, Action<object> post) =>
        (_nodeId, _gradientChunkFloats, _post) = (nodeId, gradientChunkFloats, post);

    public ShardInbox? Inbox { get; private set; }
    public ParameterShard? Shard => Inbox?.Shard;

    /// <summary>Asks for a shard until the coordinator answers (the singleton may not be up yet).</summary>
    public IReadOnlyList<Effect> Start()
    {
        _out.Add(new StartTimer(AskTimer, TimeSpan.FromSeconds(1)));
        return Timer(AskTimer);
    }

    public IReadOnlyList<Effect> Timer(string name)
    {
        if (name == AskTimer && Inbox is null) _out.Send(Coordinator, new RequestShard(_nodeId, WireProtocol.Version));
        if (name == RejoinTimer && _rejoining) SendRejoin();
        return _out.Take();
    }

    public IReadOnlyList<Effect> Handle(object message)
    {
        switch (message)
        {
            case ShardAssignment a: OnAssignment(a); break;
            case RegisterRejected r:
                _out.Log(Severity.Error, $"PS {_nodeId} refused: {r.Reason}");
                _out.Add(new Stop(r.Reason));
                break;
            case TrainingDone: _out.Add(new Stop()); break;
            case ShardStandby s when Inbox is null && !_standby:
                // Keeps asking (the timer): the first spare to ask after a shard is lost takes its range.
                _standby = true;
                _out.Log(Severity.Info, $"PS {_nodeId} waits as a spare: {s.Reason}");
                break;
            case var _ when Inbox is null: break;
            case WorkerEndpoint w: Inbox!.WorkerRegistered(w.SenderId); _out.Add(new AddWorker(w.WorkerId, w.DataHost, w.DataPort, w.Key)); break;
            case WorkerGone g: Inbox!.WorkerLeft(JobMapping.SenderIdOf(g.WorkerId)); _out.Add(new RemoveWorker(g.WorkerId)); break;
            case LeaseMoved m when Inbox.IsReceiving(JobMapping.SenderIdOf(m.FromWorker), m.Step, m.MicroBatch):
                _out.Add(new Disconnect(JobMapping.SenderIdOf(m.FromWorker),
                    $"its lease on step {m.Step} micro-batch {m.MicroBatch} ran out with a frame of it half-sent"));
                break;
            case RollBack b: OnRollBack(b.Version); break;
            case ApplyClipped c when _clipNorm > 0 && c.Step == Shard!.Version && _normSentFor == c.Step: Apply(_clipNorm, c.GlobalNorm); break;
            case ShardInbox.GradientArrived g: _onGradient(g); break;
            case ShardInbox.GradientDropped d:
                _out.Send(Coordinator, new GradientRejected(Shard!.Shard, d.SenderId.ToString(), d.Step, d.MicroBatch, d.Reason));
                break;
            case SendCheckpoint s: OnSendCheckpoint(s); break;
            case ShardInbox.CopiesDiffer d:
                _out.Send(Coordinator, new GradientMismatch(Shard!.Shard, d.KeptSender, d.OtherSender, d.Step, d.MicroBatch, d.Offset));
                break;
            case ShardInbox.PeerDisconnected d: _out.Send(Coordinator, new PeerConnectionLost(Shard!.Shard, d.SenderId)); break;
            case ShardInbox.RestoreComplete: OnRestored(); break;
        }
        return _out.Take();
    }

    /// <summary>
    /// The coordinator this shard registered with is gone (its node died): a standby takes over as the cluster singleton and
    /// knows nothing of this shard. Asks it every second to take the shard back, naming the versions the shard can roll back
    /// to, until it answers RollBack. Without a standby nobody answers and the node exits (ClusterNode.WhenOrphaned).
    /// </summary>
    public IReadOnlyList<Effect> CoordinatorLost()
    {
        if (Inbox is null || _rejoining) return _out.Take(); // not assigned yet: the RequestShard timer reaches whoever takes over
        _rejoining = true;
        _due.Clear(); // asked for by the coordinator that died, to its listener
        _out.Log(Severity.Warning, $"PS shard {Shard!.Shard}: the coordinator is gone; asking the one that takes over to take this shard back");
        _out.Add(new StartTimer(RejoinTimer, TimeSpan.FromSeconds(1)));
        SendRejoin();
        return _out.Take();
    }

    private void SendRejoin()
    {
        var shard = Shard!;
        _out.Send(Coordinator, new RejoinShard(_jobId, shard.Shard, shard.Range.Offset, shard.Range.Length, _nodeId, _listening.Host, _listening.Port,
            shard.Version, Inbox!.RollBackVersions(), WireProtocol.Version));
    }

    /// <summary>The coordinator that took over chose the version every shard goes back to (RejoinShard).</summary>
    private void OnRollBack(long version)
    {
        if (_rejoining) { _rejoining = false; _out.Add(new StopTimer(RejoinTimer)); }
        if (!Inbox!.RollBack(version))
        {
            _out.Log(Severity.Error, $"PS shard {Shard!.Shard} cannot roll back to version {version}: it holds {string.Join(", ", Inbox.RollBackVersions())}");
            return;
        }
        _out.Add(new RemoveAllWorkers());
        _due.Clear();
        _normSentFor = -1;
        _out.Log(Severity.Info, $"PS shard {Shard!.Shard} rolled back to version {version}");
        _out.Send(Coordinator, new ShardRestored(Shard.Shard, version));
    }

    /// <summary>The data-plane server of the Serve effect listens on <paramref name="port"/>: register with the coordinator.</summary>
    public IReadOnlyList<Effect> Listening(string host, int port)
    {
        var shard = Shard!;
        _listening = (host, port);
        _out.Send(Coordinator, new RegisterShard(shard.Shard, shard.Range.Offset, shard.Range.Length, _nodeId, host, port, WireProtocol.Version));
        _out.Log(Severity.Info, $"PS shard {shard.Shard} owns {shard.Range}, data plane on {host}:{port}");
        return _out.Take();
    }

    private void OnAssignment(ShardAssignment a)
    {
        if (Inbox is not null) return;
        _out.Add(new StopTimer(AskTimer));
        _jobId = a.Job.JobId;
        var job = JobMapping.ToTrainJob(a.Job);
        var model = job.Spec().Build((ulong)(uint)job.Seed); // the same initial weights on every node
        var range = new KeyRange((int)a.Offset, a.Length);
        int microBatches = JobMapping.MicroBatchesPerStep(a.Job), trainCount = a.Job.Dataset.TrainSamples;
        var mode = JobMapping.ModeOf(a.Job);
        var optimizer = OuterOptimizer.ForShard(job, mode, range.Length, microBatches);
        var shard = new ParameterShard(a.Shard, range, model.Store.Values.AsSpan(range.Offset, range.Length), optimizer, job.CreateSchedule(trainCount), microBatches);
        shard.BeginStep(0, microBatches);
        bool async = mode.Mode == TrainingMode.Async;
        _share = (float)a.Job.Hyper.MicroBatchSize / a.Job.Hyper.BatchSize;
        // Async and local-sgd clip on the worker, where each update's whole gradient is; sync needs every shard's share.
        _clipNorm = mode.Mode == TrainingMode.Sync ? a.Job.Hyper.ClipNorm : 0f;
        _onGradient = async ? _ => ApplyArrivals() : StepGradient;
        Inbox = new ShardInbox(shard, async ? new AsyncGradientQueue(range.Length, job.TotalSteps(trainCount), microBatches) : null,
            new ShardCheckpointing(shard, model, microBatches, mode, job.TotalSteps(trainCount)), microBatches, _post);
        KeyRange[] chunks = mode.Mode == TrainingMode.Sync
            ? KeyRanges.PushChunks(range, Enumerable.Range(0, model.Layers.Count).Select(model.ParameterRunStart), _gradientChunkFloats)
            : [range];
        _out.Add(new Serve(Inbox, chunks, JobMapping.ShardSenderId(_nodeId, a.Shard)));
    }

    /// <summary>Step barrier: a micro-batch's gradient is all here; apply the step once it is complete.</summary>
    private void StepGradient(ShardInbox.GradientArrived g)
    {
        _out.Send(Coordinator, new GradientAccepted(Shard!.Shard, g.SenderId.ToString(), g.Step, g.MicroBatch));
        if (_clipNorm <= 0) { Apply(0f, double.NaN); return; }
        // Clipping: the coordinator gets this range's exact Σ g² and answers every shard with the global norm (ApplyClipped).
        if (Inbox!.NormShare(_normSentFor) is not { } share) return;
        _normSentFor = share.Step;
        _out.Send(Coordinator, new NormShare(Shard.Shard, share.Step, share.Digits));
    }

    private void Apply(float maxNorm, double globalNorm)
    {
        if (!Inbox!.TryApplyStep(maxNorm, globalNorm)) return;
        var shard = Shard!;
        Published();
        _out.Send(Coordinator, new VersionPublished(shard.Shard, shard.Version, shard.Version - 1));
    }

    /// <summary>
    /// Async: applies every gradient that has arrived, in arrival order, one optimizer update each, then pushes the newest
    /// values once. Gradients that arrive while a push is under way wait for the next call, so a busy shard pushes less
    /// often instead of falling behind. The coordinator hears of each update after the push that carries it.
    /// </summary>
    private void ApplyArrivals()
    {
        var (inbox, shard) = (Inbox!, Shard!);
        List<AsyncApplied>? applied = null;
        while (inbox.TryDequeue(out var a, out var gradient))
        {
            long staleness = shard.ApplyMicroBatch(gradient, a.Step, _share, a.Version);
            inbox.Applied(a);
            (applied ??= []).Add(new AsyncApplied(shard.Shard, a.Step, a.MicroBatch, shard.Version, staleness));
        }
        if (applied is null) return;
        Published();
        foreach (var m in applied) _out.Send(Coordinator, m);
    }

    /// <summary>A new version: push it, then send the checkpoints asked for it before anything can move it on.</summary>
    private void Published()
    {
        _out.Add(new Push());
        for (int i = _due.Count - 1; i >= 0; i--)
        {
            if (_due[i].Version > Shard!.Version) continue;
            var due = _due[i];
            _due.RemoveAt(i);
            OnSendCheckpoint(due);
        }
    }

    private void OnSendCheckpoint(SendCheckpoint s)
    {
        var shard = Shard!;
        if (s.Version > shard.Version) { _due.Add(s); return; } // sent the moment the shard gets there
        if (s.Version < shard.Version)
            _out.Log(Severity.Warning, $"PS shard {shard.Shard} is at version {shard.Version}; the checkpoint of version {s.Version} was asked for too late and is skipped");
        else _out.Add(new SendState(s.DataHost, s.DataPort, s.Version));
    }

    private void OnRestored()
    {
        long version = Inbox!.ApplyRestore();
        // A roll-back (another shard was replaced): the checkpoints asked for later versions are asked for again.
        _due.Clear();
        _normSentFor = -1;
        _out.Add(new Push(Whole: true));
        _out.Log(Severity.Info, $"PS shard {Shard!.Shard} restored at version {version}");
        _out.Send(Coordinator, new ShardRestored(Shard.Shard, version));
    }
}

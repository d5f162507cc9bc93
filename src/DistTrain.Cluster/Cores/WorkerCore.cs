// A worker as a plain class: asks the coordinator for the job, has its replica build the model and register,
// then pulls micro-batches and computes them one at a time, in the order they came among those ready. An
// assignment waits until the replica can compute it (it holds, or is receiving, the parameter version it names);
// one that names a version the shards have passed is dropped and new work asked for. The compute itself and what the data plane carries
// are the replica's (IReplica, WorkerReplica); this is the protocol, and it runs in tests with a fake replica.
using DistTrain.Cluster.Messages;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;

namespace DistTrain.Cluster.Cores;

/// <summary>Send the rest of <paramref name="Work"/>'s gradient (or local-sgd delta) to the shards and report the
/// micro-batch to the coordinator (IReplica.Flush).</summary>
public sealed record Flush(WorkAssignment Work) : Effect;

/// <summary>Give the core another turn (its Next()) once the effects before this one are done: more work may be ready.</summary>
public sealed record Continue : Effect;

/// <summary>The worker's model replica and its data plane, as the core drives it.</summary>
public interface IReplica
{
    /// <summary>Builds the job's model, loads the node's copy of its data and listens; returns the registration.</summary>
    RegisterWorker Build(JobDescription job);

    /// <summary>Connects to the shards of <paramref name="layout"/>; null, or why the layout cannot be used.</summary>
    string? Connect(ShardLayout layout);

    /// <summary>The parameter version the model holds whole (-1: none, or a mix while a version is taken in).</summary>
    long ModelVersion { get; }

    /// <summary>Whether <paramref name="work"/> can be computed now; <paramref name="stale"/> when a shard is past its version.</summary>
    bool Ready(WorkAssignment work, out bool stale);

    /// <summary>Computes <paramref name="work"/> (sending what of its gradient is final as the backward goes).</summary>
    void Compute(WorkAssignment work);

    /// <summary>Sends the rest of the computed gradient; returns the micro-batch's report, or null when it was given up (a
    /// shard was lost while it was computed: the coordinator hands it out again).</summary>
    MicroBatchDone? Flush(WorkAssignment work);
}

public sealed class WorkerCore(string workerId, IReplica replica)
{
    public const string Coordinator = "coordinator", AskTimer = "ask-for-job", RejoinTimer = "rejoin";

    private readonly EffectList _out = new();
    private readonly List<WorkAssignment> _work = [];   // in the order they came
    private JobDescription? _job;
    private bool _accepted;
    private RegisterWorker? _registration;
    private bool _rejoining;    // the coordinator died: registering with the one that takes over

    public IReadOnlyList<Effect> Start()
    {
        _out.Add(new StartTimer(AskTimer, TimeSpan.FromSeconds(1)));
        return Timer(AskTimer);
    }

    /// <summary>Asks for the job until the coordinator answers (the singleton may not be up yet).</summary>
    public IReadOnlyList<Effect> Timer(string name)
    {
        if (name == AskTimer && _job is null) _out.Send(Coordinator, new RequestJob(workerId, WireProtocol.Version));
        if (name == RejoinTimer && _rejoining) _out.Send(Coordinator, _registration!);
        return _out.Take();
    }

    public IReadOnlyList<Effect> Handle(object message)
    {
        switch (message)
        {
            case JobDescription job when _job is null:
                _job = job;
                _out.Add(new StopTimer(AskTimer));
                try { _out.Send(Coordinator, _registration = replica.Build(job)); }
                catch (DistTrain.Cluster.Runtime.DatasetMismatchException e) { Refuse($"Worker {workerId}: {e.Message}", e.Message); }
                break;
            case RegisterRejected r: Refuse($"Worker {workerId} refused by the coordinator: {r.Reason}", r.Reason); break;
            case RegisterAccepted a when _job is not null:
                // Again, after a shard was replaced or a coordinator took over: every shard rolled back, and the work handed
                // out before is handed out anew.
                if (_rejoining) { _rejoining = false; _out.Add(new StopTimer(RejoinTimer)); }
                _work.Clear();
                OnAccepted(a);
                break;
            case WorkAssignment w when _accepted:
                _work.Add(w);
                TakeReady();
                break;
            case TrainingDone: _out.Add(new Stop()); break;
        }
        return _out.Take();
    }

    /// <summary>
    /// The coordinator is gone (its node died). Its leases die with it: a standby that takes over hands the work out again.
    /// Registers with whoever answers as the coordinator from now on, every second until accepted.
    /// </summary>
    public IReadOnlyList<Effect> CoordinatorLost()
    {
        if (_registration is null || _rejoining) return _out.Take(); // no job yet: the RequestJob timer reaches whoever takes over
        _rejoining = true;
        _work.Clear();
        _out.Log(Severity.Warning, $"Worker {workerId}: the coordinator is gone; registering with the one that takes over");
        _out.Add(new StartTimer(RejoinTimer, TimeSpan.FromSeconds(1)));
        _out.Send(Coordinator, _registration);
        return _out.Take();
    }

    /// <summary>The shards' pushes moved on (ParameterInbox), or a Continue: take the next assignment that is ready.</summary>
    public IReadOnlyList<Effect> Next()
    {
        TakeReady();
        return _out.Take();
    }

    /// <summary>
    /// Computes the first assignment, in the order they came, whose version the replica can take. Not only the oldest: a
    /// worker that waits with a lease of the next step can be handed requeued work of the current one, which must not wait
    /// behind it (the next version cannot exist before that work is done).
    /// </summary>
    private void TakeReady()
    {
        for (int i = 0; i < _work.Count; i++)
        {
            var w = _work[i];
            if (!replica.Ready(w, out bool stale))
            {
                if (!stale) continue; // wait for the shards' push of its version
                _work.RemoveAt(i--);
                _out.Send(Coordinator, new RequestWork(workerId, replica.ModelVersion));
                continue;
            }
            _work.RemoveAt(i);
            replica.Compute(w);
            // Ask for the next micro-batch before the rest of the gradient goes: the coordinator's answer (a remote round
            // trip) then travels while the gradient does. In sync mode it must be here before the shards' push of the
            // next version, or the worker idles on it.
            _out.Send(Coordinator, new RequestWork(workerId, replica.ModelVersion));
            _out.Add(new Flush(w));
            if (_work.Count > 0) _out.Add(new Continue());
            return;
        }
    }

    private void OnAccepted(RegisterAccepted a)
    {
        if (replica.Connect(a.Layout) is { } bad)
        {
            string why = $"the shard layout does not cover the parameter vector: {bad}";
            Refuse($"Worker {workerId} refused the coordinator's layout: {why}", why);
            return;
        }
        _out.Log(Severity.Info, _accepted ? $"Worker {workerId} continues from version {a.CurrentVersion} with {a.Layout}" : $"Worker {workerId} registered: {a.Layout}");
        _accepted = true;
        _out.Send(Coordinator, new RequestWork(workerId, replica.ModelVersion));
    }

    private void Refuse(string log, string reason)
    {
        _out.Log(Severity.Error, log);
        _out.Add(new Stop(reason));
    }
}

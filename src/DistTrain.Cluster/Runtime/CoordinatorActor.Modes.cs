// The coordinator's part in the non-sync modes (DESIGN contract 5). Local-sgd needs nothing here beyond
// the unit count (rounds instead of steps, ModeOptions.Units): a round is run exactly like a sync step.
// Async replaces the step barrier: AsyncWorkQueue hands out the run's micro-batches in plan order,
// micro-batch k only once every micro-batch below k − S is done, naming k − S as the oldest version the
// worker may compute on; the shards' AsyncApplied reports complete micro-batches (which lets more work
// out) and feed the staleness statistics. A tick re-serves idle workers so
// an expired lease goes out again even when nothing else happens.
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Data.Plans;
using Akka.Actor;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;

namespace DistTrain.Cluster.Runtime;

public sealed partial class CoordinatorActor : IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record AsyncTick : INoSerializationVerificationNeeded;

    private AsyncWorkQueue? _async;
    private readonly StalenessStats _staleness = new();
    private long _asyncBegun = -1;   // highest step whose metrics entry was opened
    private long _asyncStepsDone;

    private void InitMode()
    {
        var mode = _settings.Mode;
        _stepLog.Record("run", mode.Metadata());
        if (mode.Mode != TrainingMode.Async) return;
        _async = new AsyncWorkQueue(_planSteps, _microBatches, _settings.Shards, _settings.LeaseTimeout);
        Receive<AsyncApplied>(OnAsyncApplied);
        Receive<AsyncTick>(_ => ServeIdle());
    }

    private void BeginAsync()
    {
        _step = 0; // started; in async mode _step only marks that
        if (_async!.Total == 0) { FinishAsync(); return; }
        Timers.StartPeriodicTimer("async-tick", new AsyncTick(), TimeSpan.FromSeconds(1));
        ServeIdle();
    }

    private bool TryAssignAsync(string id, IActorRef worker)
    {
        int s = _settings.Mode.Staleness;
        if (_step < 0 || _finishing || !_async!.TryLease(id, DateTime.UtcNow, s, out long step, out int mb)) return false;
        for (; _asyncBegun < step; _asyncBegun++) _stepLog.Begin(_asyncBegun + 1);
        var (epoch, _) = EpochPlan.Locate(step, _stepsPerEpoch);
        worker.Tell(new WorkAssignment(epoch, step, mb, _microBatches, _async.MinVersion(step, mb, s)));
        return true;
    }

    private void OnAsyncApplied(AsyncApplied a)
    {
        if ((uint)a.Shard >= (uint)_published.Length) return;
        _published[a.Shard] = Math.Max(_published[a.Shard], a.Version);
        if (!_async!.Acknowledge(a.Step, a.MicroBatch, a.Shard, out bool stepDone)) return;
        _staleness.Add(a.Staleness);
        _stepLog.Staleness(a.Step, a.Staleness);
        if (stepDone)
        {
            _stepLog.End(a.Step);
            long done = ++_asyncStepsDone;
            if (done % 20 == 0 || done == _planSteps) _settings.OnProgress?.Invoke($"{_stepLog.Summary(done, _planSteps)}  {_staleness}");
        }
        if (_async.AllDone)
        {
            Timers.Cancel("async-tick");
            _stepLog.Record("staleness", [], [new("bound", _settings.Mode.Staleness), new("mean", _staleness.Mean), new("max", _staleness.Max), new("updates", _staleness.Count)]);
            FinishAsync();
            return;
        }
        ServeIdle(); // an expired lease may be handed out again
    }

    /// <summary>Every micro-batch is applied: collect the shards' final state (version = micro-batches applied), then finish.</summary>
    private void FinishAsync()
    {
        _allApplied = true;
        Snapshot(FinalVersion, Final);
    }
}

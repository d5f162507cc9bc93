// How the coordinator hands out work, chosen once from the mode (DESIGN contract 5). The step barrier (sync, and
// local-sgd, whose rounds run exactly like steps) leases micro-batches of the current step and one step ahead and
// moves on when every shard has published the step. Async replaces the barrier: AsyncWorkQueue hands out the run's
// micro-batches in plan order, micro-batch k only once every one below k − S is done, naming k − S as the oldest
// version the worker may compute on; the shards' AsyncApplied reports complete micro-batches.
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Data.Plans;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Cores;

public sealed partial class CoordinatorCore
{
    public const string AsyncTimer = "async-tick", BackupTimer = "backup-due";

    /// <summary>A step taking longer than this (and than a lease) says what it is waiting for.</summary>
    private static readonly TimeSpan HangAfter = TimeSpan.FromSeconds(2);

    /// <summary>The shortest wait before looking again for a backup copy that is not due yet.</summary>
    private static readonly TimeSpan MinBackupWait = TimeSpan.FromMilliseconds(5);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>How often expired leases are looked for: a fraction of the shortest lease, so one costs little more than itself.</summary>
    private static readonly TimeSpan TickPeriod = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// <paramref name="holder"/>'s lease on (step, micro-batch) ran out and the work went to <paramref name="to"/>: its other leases
    /// (a paused worker holds one of the next step too) go back as well rather than each running out in turn, and it is said.
    /// </summary>
    private void ReportExpired(string? holder, long step, int microBatch, string to)
    {
        if (holder is null) return;
        if (holder != to) _plan.WorkerLeft(holder);
        foreach (var s in _shardPeers) if (s is not null) _out.Send(s, new LeaseMoved(step, microBatch, holder));
        _out.Report($"worker {holder} held step {step} micro-batch {microBatch} longer than its lease ({_lease.Current.TotalSeconds:0.0} s); handed to {to}");
    }

    private long _backupsHanded, _backupsWon;

    /// <summary>A backup copy of (step, micro-batch) went to <paramref name="to"/>: logged, and said for the first few and then
    /// every hundredth (a worker behind a slow link makes one nearly every step; the run's end gives the count).</summary>
    private void BackupHanded(long step, int microBatch, string? holder, TimeSpan held, string to)
    {
        _backupsHanded++;
        string line = $"backup copy: step {step} micro-batch {microBatch} held by {holder} for {held.TotalSeconds:0.000} s " +
            $"(a micro-batch takes {_backup.Median?.TotalSeconds:0.000} s, the median) also goes to {to}";
        _out.Log(Severity.Info, line);
        if (_backupsHanded <= 3 || _backupsHanded % 100 == 0) _out.Report($"{line} ({_backupsHanded} so far)");
    }

    /// <summary>The run's end: how many backup copies went out and how many were complete first.</summary>
    private void ReportBackups()
    {
        if (_backupsHanded == 0) return;
        _out.Report($"backup copies: {_backupsHanded} straggling micro-batch(es) also computed by another worker " +
            $"({_backupsHanded * 100.0 / Math.Max(1, _units * _microBatches):0.#} % of the run's work, disttrain.backup-multiple " +
            $"{_settings.BackupMultiple}); the backup copy completed {_backupsWon} of them first");
    }

    /// <summary>A step (round, async global batch) completed: the lease follows the median step time (LeasePolicy).</summary>
    private void StepTimed() => _plan.LeaseTimeout = _lease.StepCompleted(_clock());

    private interface IWorkPlan
    {
        /// <summary>The shards' version at the end: one per step (sync) or round (local-sgd), one per micro-batch (async).</summary>
        long FinalVersion { get; }
        void Start(long first);
        bool TryAssign(string id, string peer, DateTime now);
        /// <summary>The worker left (or its connection ended): its unfinished leases go back; returns how many.</summary>
        int WorkerLeft(string id);
        /// <summary>Hands requeued work to workers that cannot ask again.</summary>
        void ServeWaiting();
        /// <summary>Puts a leased micro-batch back at once (a shard refused its gradient).</summary>
        bool Release(long step, int microBatch);
        void Handle(object message);
        void Timer(string name);
        WorkLedger Ledger();
        /// <summary>Continues from a snapshot's ledger (CoordinatorCore.Restore): nothing leased, what is not done goes out again.</summary>
        void Restore(WorkLedger ledger);
        /// <summary>Every shard was rolled back to <paramref name="step"/> (a shard was replaced): hand out its work again, nothing leased.</summary>
        void Restart(long step);
        /// <summary>From now on a lease older than this is handed out again.</summary>
        TimeSpan LeaseTimeout { set; }
    }

    /// <summary>--verify-fraction: whether (step, micro-batch) is among the seeded fraction computed twice (the same on every run).</summary>
    private bool Verifies(long step, int microBatch)
    {
        if (_settings.VerifyFraction <= 0 || _settings.Mode.Mode != Messages.TrainingMode.Sync) return false;
        ulong z = (ulong)_job.Seed * 0x9E3779B97F4A7C15UL ^ (ulong)step * 0xBF58476D1CE4E5B9UL ^ (ulong)microBatch * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53)) < _settings.VerifyFraction;
    }

    private void Assign(string peer, long step, int microBatch, long version)
    {
        var (epoch, _) = EpochPlan.Locate(_settings.Mode.FirstStepOf(step), _stepsPerEpoch); // step is a round in local-sgd
        _out.Send(peer, new WorkAssignment(epoch, step, microBatch, _microBatches, version));
    }

    private sealed class BarrierPlan(CoordinatorCore c) : IWorkPlan
    {
        private readonly LookaheadQueue _queue = new(c._settings.Shards, c._settings.LeaseTimeout, c._microBatches, c._units);
        private readonly Dictionary<string, string> _waitingAhead = [];   // workers whose newest lease is of the next step

        public long FinalVersion => c._units;
        public TimeSpan LeaseTimeout { set => _queue.LeaseTimeout = value; }

        public void Start(long first)
        {
            _queue.Begin(first); // step 0, or the checkpoint's step on resume
            // An expired lease (a worker alive but stuck) is handed out again only when someone is served: the idle
            // workers and those waiting ahead are served every tick, so a straggler costs about its lease.
            c._out.Add(new StartTimer(LeaseTimer, TickPeriod));
            Begin(first);
        }

        public void Restart(long step)
        {
            _queue.Begin(step);
            Begin(step);
        }

        private DateTime _begun;          // when the current step began
        private bool _hangReported;

        private void Begin(long step)
        {
            c._step = step;
            (_begun, _hangReported) = (c._clock(), false);
            _waitingAhead.Clear();
            _backups.Clear(); // copies of the step before: the shards drop them as stale
            c._log.Begin(step);
            RequestSnapshots(step);
            c.ServeIdle();
        }

        /// <summary>
        /// Asks the shards, when step t begins, for their state at the next checkpoint, the next replicated version and (once
        /// neither comes first) the end. A shard keeps an ask until it reaches the version and sends it then, so asking early
        /// costs nothing; asking late can miss it: with micro-batches leased ahead, and a coordinator whose messages lag on a
        /// loaded host, the shards can pass a version before its ask arrives. Asking again is a no-op (Snapshot).
        /// </summary>
        private void RequestSnapshots(long step)
        {
            foreach (long v in c.NextSnapshots(step))
            {
                long version = v;
                if (version == c._units) c.Snapshot(version, c.Final);
                else if (c.IsCheckpointStep(version)) c.Snapshot(version, () => c.WriteCheckpoint(version));
                else c.Snapshot(version, () => { }); // kept in memory (Keep) for a roll-back
            }
        }

        public bool TryAssign(string id, string peer, DateTime now)
        {
            if (c._step >= c._units) return false;
            // A worker with nothing left of the current step computes a verification copy before it takes work of the next step,
            // which it could not start before the current step is applied anyway.
            long step = c._step;
            if (!_queue.TryLeaseCurrent(id, now, out int mb))
            {
                if (TryBackup(id, peer, now)) return true;
                if (TryVerify(id, peer)) return true;
                if (!_queue.TryLease(id, now, out step, out mb)) return false;
            }
            c.ReportExpired(_queue.TakeExpiredHolder(), step, mb, id);
            if (step != c._step) _waitingAhead[id] = peer; // it waits for the shards' push of version step
            if (c.Verifies(step, mb)) _toVerify.Add((step, mb, id));
            c.Assign(peer, step, mb, step);
            return true;
        }

        private readonly Dictionary<(long Step, int MicroBatch), string> _backups = [];   // backup copies out, and who computes each
        private readonly Dictionary<string, long> _laggedAt = [];                          // worker -> the last step it was backed up in
        private const long LagMemory = 10;                                                 // steps a backed-up worker computes no backup copies

        /// <summary>A worker with nothing left of the current step also computes the micro-batch another worker has held longest,
        /// once that is BackupPolicy.After or more; one backup copy per micro-batch. The lease stays with its holder: whichever copy
        /// is complete first counts, and the shards check the other against it.</summary>
        private bool TryBackup(string id, string peer, DateTime now)
        {
            if (c._backup.After is not { } after) return false;
            long step = c._step;
            // A worker that was itself backed up lately (behind a slow link, on a slow host) would likely finish a copy last.
            if (_laggedAt.TryGetValue(id, out long lagged) && step - lagged < LagMemory) return false;
            bool Skip(int m) => _backups.ContainsKey((step, m));
            TimeSpan Held(int m) => _queue.Pending(now).First(p => p.MicroBatch == m).Held;
            if (!_queue.TryFindStraggler(id, now, after, Skip, out int mb))
            {
                // Another worker's micro-batch is not due yet: look again when it is, rather than at the next lease tick.
                if (_queue.TryFindStraggler(id, now, TimeSpan.Zero, Skip, out int soon))
                    c._out.Add(new StartTimer(BackupTimer, Max(after - Held(soon), MinBackupWait)));
                return false;
            }
            _backups[(step, mb)] = id;
            var (_, holder, held) = _queue.Pending(now).First(p => p.MicroBatch == mb);
            if (holder is not null) _laggedAt[holder] = step;
            c.BackupHanded(step, mb, holder, held, id);
            c.Assign(peer, step, mb, step);
            return true;
        }

        /// <summary>A shard acknowledged (step, micro-batch): once every shard has it, a backup copy that completed it is counted.</summary>
        private void Acknowledge(GradientAccepted a)
        {
            if (!_queue.Acknowledge(a.Step, a.MicroBatch, a.Shard)) return;
            if (_backups.TryGetValue((a.Step, a.MicroBatch), out var backup) && a.WorkerId == JobMapping.SenderIdOf(backup).ToString()) c._backupsWon++;
        }

        private readonly List<(long Step, int MicroBatch, string First)> _toVerify = [];   // --verify-fraction: copies still to hand out

        /// <summary>A worker with nothing left of the current step computes a second copy of one of its micro-batches that another
        /// worker holds or has done; the shards compare the two (the determinism audit). The copy delays the worker's next-step
        /// work by at most one micro-batch.</summary>
        private bool TryVerify(string id, string peer)
        {
            _toVerify.RemoveAll(v => v.Step < c._step);
            // A worker the audit found in a disagreement is checked by workers it has not been compared with yet: between two
            // workers alone the audit cannot tell which one is faulty, and a third decides it (MaybeExclude).
            int k = _toVerify.FindIndex(v => v.Step == c._step && v.First != id && c.Unrefereed(v.First, id));
            if (k < 0) k = _toVerify.FindIndex(v => v.Step == c._step && v.First != id);
            if (k < 0) return false;
            var (step, mb, _) = _toVerify[k];
            _toVerify.RemoveAt(k);
            c._verified++;
            c.Assign(peer, step, mb, step);
            return true;
        }

        public int WorkerLeft(string id)
        {
            _waitingAhead.Remove(id);
            return _queue.WorkerLeft(id);
        }

        public bool Release(long step, int microBatch) => _queue.Release(step, microBatch);

        /// <summary>Requeued work of the current step goes to workers that hold only a lease ahead: they are idle until
        /// this step is applied, and nobody else may ask again.</summary>
        public void ServeWaiting()
        {
            foreach (var (id, peer) in _waitingAhead)
            {
                if (!c._workers.ContainsKey(id)) continue;
                var now = c._clock();
                if (!_queue.TryLeaseCurrent(id, now, out int mb)) { TryBackup(id, peer, now); continue; }
                c.ReportExpired(_queue.TakeExpiredHolder(), c._step, mb, id);
                c.Assign(peer, c._step, mb, c._step);
            }
        }

        public void Handle(object message)
        {
            switch (message)
            {
                case GradientAccepted a: Acknowledge(a); break;
                case VersionPublished p when c.Published(p.Shard, p.Version): StepApplied(); break;
            }
        }

        private void StepApplied()
        {
            c.ReportRecovery(c._step);
            c._log.End(c._step);
            c.StepTimed();
            long next = c._step + 1;
            if (next % 20 == 0 || next == c._units) c._out.Report(c._log.Summary(next, c._units));
            if (c.Crashed(next)) return;
            if (next >= c._units) { c.AllApplied(); return; }
            _queue.Advance(c._clock()); // leases already taken on the next step stay with their workers
            Begin(next);
        }

        public void Timer(string name)
        {
            if (name == BackupTimer)
            {
                c._out.Add(new StopTimer(BackupTimer)); // started again by TryBackup when another copy will be due
                c.ServeIdle();
                ServeWaiting();
                return;
            }
            if (name != LeaseTimer) return;
            ExplainHang(); // before expired leases move on: what it has been waiting for
            c.ServeIdle();
            ServeWaiting();
        }

        /// <summary>
        /// A step that has taken several times the usual (and at least HangAfter) says once what it waits for: the micro-batches not
        /// done, who holds each and for how long, and the shards that have not applied it.
        /// </summary>
        private void ExplainHang()
        {
            var now = c._clock();
            var waited = now - _begun;
            if (_hangReported || c._step < 0 || c._step >= c._units || waited < HangAfter || waited < c._lease.Current) return;
            _hangReported = true;
            var pending = _queue.Pending(now).Select(p => p.Holder is null ? $"{p.MicroBatch} (not leased)"
                : $"{p.MicroBatch} (held by {p.Holder} for {p.Held.TotalSeconds:0.0} s)").ToList();
            var shards = Enumerable.Range(0, c._published.Length).Where(s => c._published[s] <= c._step).ToList();
            string what = pending.Count > 0 ? $"micro-batch(es) {string.Join(", ", pending)}" : "no micro-batch";
            c._out.Report($"step {c._step} has waited {waited.TotalSeconds:0.0} s for {what}; shard(s) {string.Join(", ", shards)} have not applied it");
        }

        public WorkLedger Ledger()
        {
            var (step, current, next) = _queue.Ledger();
            return new WorkLedger(step, current, next);
        }

        public void Restore(WorkLedger ledger)
        {
            _queue.Restore(ledger.Step, ledger.Acks, ledger.Ahead);
            c._step = ledger.Step;
            c._log.Begin(ledger.Step);
            c._out.Add(new StartTimer(LeaseTimer, TickPeriod));
        }
    }

    private sealed class AsyncPlan(CoordinatorCore c) : IWorkPlan
    {
        private readonly AsyncWorkQueue _queue = new(c._planSteps, c._microBatches, c._settings.Shards, c._settings.LeaseTimeout);
        private readonly StalenessStats _staleness = new();
        private long _begun = -1;   // highest step whose metrics entry was opened
        private long _stepsDone;

        public long FinalVersion => _queue.Total;
        public TimeSpan LeaseTimeout { set => _queue.LeaseTimeout = value; }

        /// <param name="first">Micro-batches already applied: a checkpoint's version (taken at a fence, so exactly the first ones).</param>
        public void Start(long first)
        {
            c._step = 0; // started; in async mode the step only marks that
            if (first > 0)
            {
                _queue.RestoreDone(first);
                _stepsDone = first / _queue.MicroBatches;
                _begun = _stepsDone - 1;
            }
            if (_queue.AllDone) { Finish(); return; }
            SetFence(first);
            c._out.Add(new StartTimer(AsyncTimer, TickPeriod)); // an expired lease goes out again even when nothing else happens
            c.ServeIdle();
        }

        /// <summary>
        /// The next checkpoint after <paramref name="applied"/> micro-batches (an epoch end or --checkpoint-every, in steps) as a
        /// fence: nothing past it goes out, so the shards drain to exactly its micro-batches and their state there is a consistent
        /// cut, the same on every shard, that a resumed run continues from. The workers wait for the drain (the staleness
        /// window's worth of micro-batches) once per checkpoint.
        /// </summary>
        private void SetFence(long applied)
        {
            _queue.Fence = long.MaxValue;
            _collecting = false;
            if (c._settings.CheckpointEvery < 0) return;
            long step = applied / _queue.MicroBatches;
            long boundary = c._settings.Mode.NextUnitAtBoundary(step, c._stepsPerEpoch);
            if (c._settings.CheckpointEvery > 0) boundary = Math.Min(boundary, c._settings.Mode.NextUnitAtBoundary(step, c._settings.CheckpointEvery));
            if (boundary < c._planSteps) _queue.Fence = boundary * _queue.MicroBatches;
        }

        private bool _collecting;   // the shards drained to the fence; their state there is being collected

        /// <summary>Everything before the fence is applied: collect the shards' state there, write it, and move the fence on.</summary>
        private void MaybeCheckpoint()
        {
            long fence = _queue.Fence;
            if (fence == long.MaxValue || _collecting || _queue.LowestUndone < fence) return;
            _collecting = true;
            c.Snapshot(fence, () =>
            {
                c.WriteCheckpoint(fence);
                SetFence(fence);
                c.ServeIdle();
            });
        }

        public bool TryAssign(string id, string peer, DateTime now)
        {
            int s = c._settings.Mode.Staleness;
            if (!_queue.TryLease(id, now, s, out long step, out int mb)) return false;
            c.ReportExpired(_queue.ExpiredHolder, step, mb, id);
            _queue.ExpiredHolder = null;
            for (; _begun < step; _begun++) c._log.Begin(_begun + 1);
            c.Assign(peer, step, mb, _queue.MinVersion(step, mb, s));
            return true;
        }

        public int WorkerLeft(string id) => _queue.WorkerLeft(id);

        public bool Release(long step, int microBatch) => _queue.Release(step, microBatch);

        /// <summary>Every shard was put back to <paramref name="applied"/> (a checkpoint's cut, or the start): the micro-batches
        /// after it go out again, whatever was applied of them before (ShardInbox forgot them too).</summary>
        public void Restart(long applied)
        {
            _queue.RestoreDone(applied);
            _stepsDone = applied / _queue.MicroBatches;
            SetFence(applied);
            c._out.Add(new StartTimer(AsyncTimer, TickPeriod));
            c.ServeIdle();
        }

        public void ServeWaiting() { }

        public void Handle(object message)
        {
            if (message is not AsyncApplied a || (uint)a.Shard >= (uint)c._published.Length) return;
            c.Published(a.Shard, a.Version);
            if (!_queue.Acknowledge(a.Step, a.MicroBatch, a.Shard, out bool stepDone)) return;
            c.ReportRecovery(a.Version);
            _staleness.Add(a.Staleness);
            c._log.Staleness(a.Step, a.Staleness);
            if (stepDone)
            {
                c._log.End(a.Step);
                c.StepTimed();
                long done = ++_stepsDone;
                if (done % 20 == 0 || done == c._planSteps) c._out.Report($"{c._log.Summary(done, c._planSteps)}  {_staleness}");
                if (c.Crashed(a.Step)) return;
            }
            if (_queue.AllDone)
            {
                c._out.Add(new StopTimer(AsyncTimer));
                c._log.Record("staleness", [], [new("bound", c._settings.Mode.Staleness), new("mean", _staleness.Mean), new("max", _staleness.Max),
                    new("updates", _staleness.Count)]);
                Finish();
                return;
            }
            MaybeCheckpoint();
            c.ServeIdle(); // an expired lease may be handed out again
        }

        /// <summary>Every micro-batch is applied: collect the shards' final state (version = micro-batches applied), then finish.</summary>
        private void Finish()
        {
            c._allApplied = true;
            c.Snapshot(FinalVersion, c.Final);
        }

        public void Timer(string name)
        {
            if (name != AsyncTimer) return;
            // A checkpoint whose state never arrived was given up (WatchSnapshots): training goes on past its fence.
            if (_collecting && !c._snapshots.ContainsKey(_queue.Fence)) SetFence(_queue.Fence);
            c.ServeIdle();
        }

        public WorkLedger Ledger()
        {
            var (acks, next) = _queue.Ledger();
            return new WorkLedger(next, acks, null);
        }

        public void Restore(WorkLedger ledger)
        {
            _queue.Restore(ledger.Acks, ledger.Step);
            _stepsDone = _queue.DoneCount / _queue.MicroBatches; // whole steps only when done in order; the count feeds progress lines
            _begun = _queue.LowestUndone / _queue.MicroBatches - 1; // metrics entries of the steps not done are opened again
            c._step = 0;
            SetFence(_queue.LowestUndone);
            if (!_queue.AllDone) c._out.Add(new StartTimer(AsyncTimer, TickPeriod));
        }
    }
}

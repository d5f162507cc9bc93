// The coordinator core without an ActorSystem: a simulated cluster (shards that publish a version once every
// micro-batch of it was accepted, or apply each one at once in async mode, and workers that compute an assignment
// once its version exists) drives it through whole runs in every mode, with workers leaving, checkpoints and
// --clip-norm, and checks the ledger: every micro-batch of every step handed out and applied exactly once, in
// the order the mode promises, and the run finished with the shards' final state.
using DistTrain.Cluster.Cores;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests.Cores;

public class CoordinatorCoreTests
{
    private const int Train = 256, Batch = 64, Micro = 16; // 4 steps an epoch, 4 micro-batches a step

    private static TrainJob Job(int epochs = 2) => new()
    {
        ModelSpecJson = Presets.Json("quadrant"), Dataset = "synthetic:quadrants:n=256", BatchSize = Batch, MicroBatch = Micro, Seed = 3,
        Epochs = epochs, Optimizer = "sgd", Lr = 0.1f,
    };

    private sealed class FakeStore : ICoordinatorStore
    {
        public readonly List<long> Begun = [], Written = [], Released = [];
        public long ModelVersion = -1;
        public SendCheckpoint Begin(long version) { Begun.Add(version); return Ask(version); }
        public SendCheckpoint Ask(long version) => new("coordinator-host", 7000, version);
        public void Release(long version) => Released.Add(version);
        public string WriteCheckpoint(long version) { Written.Add(version); return $"checkpoint/step-{version}"; }
        public RunCompleted WriteModel(long version, long steps, StepLog log) { ModelVersion = version; return new(steps, "model.safetensors", 0.9, 0.1, null); }
        public readonly List<(long Version, int Shard)> Restores = [];
        public void SendRestore(long version, ShardInfo shard) => Restores.Add((version, shard.Shard));
        public readonly Dictionary<int, int> Owners = [];
        public void ShardAssigned(int shard, int senderId) => Owners[shard] = senderId;
        public void Dispose() { }
    }

    /// <summary>Shards and workers as the real ones answer the coordinator, with the core's effects as their only input.</summary>
    private sealed class SimCluster : IDisposable
    {
        public CoordinatorCore Core { get; private set; }
        private readonly CoordinatorSettings _settings;
        private readonly int _epochs;
        private int _workers;
        public readonly FakeStore Store = new();
        public readonly string OutDir = Directory.CreateTempSubdirectory("disttrain-core-").FullName;
        public readonly List<(string Worker, WorkAssignment Work)> Computed = [];
        public readonly List<(string Worker, WorkAssignment Work)> Assigned = [];
        public readonly List<string> Reports = [];
        public readonly List<StartTimer> Timers = [];
        public readonly HashSet<string> Left = [];
        public RunCompleted? Result;
        public DateTime Now = new(2026, 1, 1);
        /// <summary>Workers that compute nothing until taken out again (behind a slow link): alive, registered, holding leases.</summary>
        public readonly HashSet<string> Slow = [];
        /// <summary>How far the clock moves for each micro-batch computed.</summary>
        public TimeSpan MicroBatchTime = TimeSpan.Zero;
        private readonly int _shards;
        private readonly bool _async;
        private readonly Queue<(string To, object Message)> _mail = new();
        private readonly long[] _version;                        // per shard
        private readonly List<HashSet<int>> _accepted = [];       // per shard: micro-batches of its next version
        private readonly Dictionary<string, List<WorkAssignment>> _held = [];
        private readonly Dictionary<long, int> _asked = [];       // snapshot version -> shards asked
        private readonly HashSet<long> _collected = [];
        public readonly List<ApplyClipped> Clipped = [];

        public SimCluster(ModeOptions mode, int shards = 2, int epochs = 2, long checkpointEvery = -1, long replicateEvery = 0, double verifyFraction = 0,
            double backupMultiple = 2)
        {
            _shards = shards;
            _async = mode.Mode == TrainingMode.Async;
            _version = new long[shards];
            for (int s = 0; s < shards; s++) _accepted.Add([]);
            _settings = new CoordinatorSettings(shards, OutDir, NodeEndpoints.Loopback, TimeSpan.FromSeconds(30)) { Mode = mode, CheckpointEvery = checkpointEvery, ReplicateEvery = replicateEvery, VerifyFraction = verifyFraction,
                BackupMultiple = backupMultiple };
            for (int s = 0; s < shards; s++) _peerOf[s] = $"ps{s}";
            _epochs = epochs;
            Steps = Job(epochs).TotalSteps(Train);
            Core = new CoordinatorCore(Job(epochs), Train, parameterCount: 60, _settings, Store, () => Now, jobId: "job");
            Take(Core.Start());
        }

        public long Steps { get; }

        private readonly Dictionary<int, string> _peerOf = [];    // shard -> the peer that holds it
        private int _restoresSeen;

        public void Take(IReadOnlyList<Effect> effects)
        {
            // The store sent a shard its state: the shard takes it (its version and step sum start over) and says so.
            while (_restoresSeen < Store.Restores.Count)
            {
                var (version, shard) = Store.Restores[_restoresSeen++];
                _version[shard] = version;
                _accepted[shard].Clear();
                _mail.Enqueue((_peerOf[shard], new ShardRestored(shard, version)));
            }
            foreach (var e in effects)
            {
                if (e is Send { Message: TrainingDone d }) Done.Add(d);
                if (e is Send { To: null } lost) Assert.Fail($"{lost.Message.GetType().Name} sent to nobody (a shard that was lost?)");
                if (e is Send s) _mail.Enqueue((s.To, s.Message));
                else if (e is Report r) Reports.Add(r.Text);
                else if (e is StartTimer t) Timers.Add(t);
                else if (e is Completed c) Result = c.Result;
            }
        }

        /// <summary>The coordinator is rebuilt from its snapshot (as on another node): what was in flight to or from it is
        /// lost, the workers' unstarted assignments with it, and every shard and worker registers again.</summary>
        public void RestartCoordinator()
        {
            var snapshot = Core.Snapshot();
            var jobKey = Core.Keys.Job.ToWire(); // what the standby heard (StandbyState)
            Core.Dispose();
            _mail.Clear();
            foreach (var held in _held.Values) held.Clear();
            _asked.Clear();
            Core = CoordinatorCore.Restore(snapshot, Job(_epochs), Train, 60, _settings, Store, () => Now);
            Take(Core.Start());
            Join(_workers);
        }

        /// <summary>
        /// The coordinator's node dies and a standby takes over (CoordinatorSettings.TakeOver): what was in flight to or from the
        /// old one is lost, the workers' unstarted assignments with it; every shard rejoins naming its version and the versions it
        /// kept a copy of (0 and every version it sent), every worker registers again. <paramref name="rejoining"/>: the shards
        /// that rejoin (default all).
        /// </summary>
        public void TakeOver(int[]? rejoining = null)
        {
            var jobKey = Core.Keys.Job.ToWire(); // what the standby heard (StandbyState)
            Core.Dispose();
            _mail.Clear();
            foreach (var held in _held.Values) held.Clear();
            var sent = _asked.Keys.ToArray();
            _asked.Clear();
            _collected.Clear();
            Core = new CoordinatorCore(Job(_epochs), Train, 60, _settings with { TakeOver = new TakeOver("job", jobKey) }, Store, () => Now);
            Take(Core.Start());
            var ranges = DistTrain.Training.Steps.KeyRanges.Split(60, _shards);
            foreach (int sh in rejoining ?? Enumerable.Range(0, _shards).ToArray())
            {
                long[] kept = sent.Where(v => v <= _version[sh]).Append(0).Append(_version[sh]).Distinct().Order().ToArray();
                Take(Core.Handle(_peerOf[sh], new RejoinShard("job", sh, ranges[sh].Offset, ranges[sh].Length, $"node/{_peerOf[sh]}", "127.0.0.1", 8000 + sh,
                    _version[sh], kept, WireProtocol.Version)));
            }
            for (int w = 0; w < _workers; w++) AddWorker($"w{w}");
        }

        /// <summary>Whether a micro-batch's gradient never reaches a shard (its worker died while sending).</summary>
        public Func<int, WorkAssignment, bool> LostOnTheWay = (_, _) => false;

        public long VersionOf(int shard) => _version[shard];

        public void Join(int workers)
        {
            _workers = workers;
            for (int s = 0; s < _shards; s++) Take(Core.Handle($"ps{s}", new RequestShard($"node/ps{s}", WireProtocol.Version)));
            for (int w = 0; w < workers; w++) AddWorker($"w{w}");
        }

        public void AddWorker(string id)
        {
            _held[id] = [];
            Take(Core.Handle(id, new RegisterWorker(id, "addr", "127.0.0.1", 9000, WireProtocol.Version, Job().Spec().Hash)));
        }

        /// <summary>The worker's process died: what it held is gone, its mail is lost, and Akka has not noticed yet (no PeerLeft).</summary>
        public void Vanish(string id)
        {
            Left.Add(id);
            _held.Remove(id);
        }

        /// <summary><paramref name="reporter"/> says a data-plane connection of <paramref name="worker"/> to shard 0 ended.</summary>
        public void ConnectionLost(string reporter, string worker, int shard) =>
            Take(Core.Handle(reporter, new PeerConnectionLost(shard, JobMapping.SenderIdOf(worker))));

        /// <summary>Shard <paramref name="shard"/>'s process died: its mail is lost and the coordinator hears of it.</summary>
        public void ShardDies(int shard)
        {
            Left.Add(_peerOf[shard]);
            Take(Core.ShardLinkLost(shard, "127.0.0.1", 8000 + shard));
        }

        /// <summary>A worker asks for work (as after each micro-batch it computes).</summary>
        public void WorkerAsks(string id) => Take(Core.Handle(id, new RequestWork(id, -1)));

        /// <summary>A `ps` actor that asks for a range (as a spare's timer does every second).</summary>
        public void PsAsks(string peer) => Take(Core.Handle(peer, new RequestShard($"node/{peer}", WireProtocol.Version)));

        public void WorkerLeaves(string id)
        {
            Left.Add(id);
            _held.Remove(id);
            Take(Core.PeerLeft(id));
        }

        /// <summary>Delivers mail and lets workers compute until the run is over or nothing moves; <paramref name="until"/> stops early.</summary>
        public void Run(Func<bool>? until = null, int limit = 100_000)
        {
            for (int i = 0; i < limit && Result is null && until?.Invoke() != true; i++)
            {
                if (_mail.TryDequeue(out var m)) { Deliver(m.To, m.Message); continue; }
                if (!ComputeOne()) return;
            }
        }

        private void Deliver(string to, object message)
        {
            if (Left.Contains(to)) return;
            switch (message)
            {
                case ShardAssignment a:
                    _peerOf[a.Shard] = to;
                    Take(Core.Handle(to, new RegisterShard(a.Shard, a.Offset, a.Length, $"node/{to}", "127.0.0.1", 8000 + a.Shard, WireProtocol.Version)));
                    break;
                case ShardRestored r: Take(Core.Handle(to, r)); break;
                case RollBack b:
                    int shard = _peerOf.First(p => p.Value == to).Key;
                    _version[shard] = b.Version;
                    _accepted[shard].Clear();
                    Take(Core.Handle(to, new ShardRestored(shard, b.Version)));
                    break;
                case RegisterAccepted:
                    if (_held.TryGetValue(to, out var held)) held.Clear(); // a new layout: what it held was handed out anew
                    Take(Core.Handle(to, new RequestWork(to, -1)));
                    break;
                case WorkAssignment w: _held[to].Add(w); Assigned.Add((to, w)); break;
                case SendCheckpoint c: _asked[c.Version] = _asked.GetValueOrDefault(c.Version) + 1; CollectIfDue(); break;
                case ApplyClipped c: Clipped.Add(c); ApplyStep(int.Parse(to[2..])); break;
            }
        }

        /// <summary>A worker computes its oldest assignment whose parameters exist: the step's version on every shard (barrier),
        /// at least the assignment's minimum (async).</summary>
        /// <summary>Workers take turns (the one after the last to compute goes first), as parallel workers would; otherwise the
        /// first worker with work ready always computes and a worker after it runs only when the first waits.</summary>
        public bool TakeTurns;
        private int _turn;

        private bool ComputeOne()
        {
            var order = _held.ToList();
            if (TakeTurns) order = [.. order.Skip(_turn % Math.Max(1, order.Count)), .. order.Take(_turn % Math.Max(1, order.Count))];
            _turn++;
            foreach (var (id, held) in order)
            {
                if (Slow.Contains(id)) continue;
                // An assignment whose version the shards have passed (another copy completed its step) is dropped and new work
                // asked for, as WorkerCore does.
                int gone = _async ? -1 : held.FindIndex(w => _version.Any(v => v > w.Version));
                if (gone >= 0)
                {
                    var stale = held[gone];
                    held.RemoveAt(gone);
                    Take(Core.Handle(id, new RequestWork(id, stale.Version)));
                    return true;
                }
                int k = held.FindIndex(w => _async ? _version.All(v => v >= w.Version) : _version.All(v => v == w.Version));
                if (k < 0) continue;
                var w = held[k];
                held.RemoveAt(k);
                Now += MicroBatchTime;
                Computed.Add((id, w));
                Take(Core.Handle(id, new RequestWork(id, w.Version)));
                for (int s = 0; s < _shards; s++) Arrive(s, id, w);
                // What the worker says the micro-batch cost it (compute and sending): what backup copies are timed by.
                Take(Core.Handle(id, new MicroBatchDone(id, w.Step, w.MicroBatch, 1.0, Micro, 8, Math.Max(1, MicroBatchTime.TotalMilliseconds - 1), 1, 0, 100)));
                return true;
            }
            return false;
        }

        /// <summary>Whether a worker's copy of a micro-batch comes out not finite (the shards then refuse it).</summary>
        public Func<string, WorkAssignment, bool> NonFinite = (_, _) => false;
        public readonly List<TrainingDone> Done = [];

        private void Arrive(int s, string worker, WorkAssignment w)
        {
            if (LostOnTheWay(s, w)) return;
            if (NonFinite(worker, w))
            {
                Take(Core.Handle($"ps{s}", new GradientRejected(s, JobMapping.SenderIdOf(worker).ToString(), w.Step, w.MicroBatch,
                    "gradient chunk 0+32 is not finite (NaN or infinity)")));
                return;
            }
            if (_async)
            {
                long staleness = _version[s] - w.Version;
                _version[s]++;
                Take(Core.Handle($"ps{s}", new AsyncApplied(s, w.Step, w.MicroBatch, _version[s], staleness)));
                CollectIfDue();
                return;
            }
            if (!_accepted[s].Add(w.MicroBatch)) return; // a duplicate: the real shard drops it
            Take(Core.Handle($"ps{s}", new GradientAccepted(s, JobMapping.SenderIdOf(worker).ToString(), w.Step, w.MicroBatch)));
            if (_accepted[s].Count < w.MicroBatchCount) return;
            if (_clipNorm) { Take(Core.Handle($"ps{s}", new NormShare(s, _version[s], Digits(s)))); return; }
            ApplyStep(s);
        }

        private bool _clipNorm;
        public SimCluster Clipping() { _clipNorm = true; return this; }

        /// <summary>Shard s's exact Σ g² of a step: (s + 1)² · 4, so the global norm is known in closed form.</summary>
        public static uint[] Digits(int s)
        {
            var sum = new ExactSquareSum();
            sum.Add([2f * (s + 1)]);
            var digits = new uint[ExactSquareSum.SerializedLength];
            sum.CopyTo(digits);
            return digits;
        }

        private void ApplyStep(int s)
        {
            _accepted[s].Clear();
            _version[s]++;
            Take(Core.Handle($"ps{s}", new VersionPublished(s, _version[s], _version[s] - 1)));
            CollectIfDue();
        }

        /// <summary>A shard sends its state when it reaches an asked-for version; the store reports it once all have.</summary>
        private void CollectIfDue()
        {
            foreach (var (v, asked) in _asked)
                if (asked == _shards && _version.All(x => x >= v) && _collected.Add(v)) Take(Core.Collected(v));
        }

        public void Dispose() => Core.Dispose();
    }

    private static void AssertLedger(SimCluster sim, long units, int microBatches)
    {
        var applied = sim.Computed.Select(c => (c.Work.Step, c.Work.MicroBatch)).Distinct().ToList();
        Assert.Equal(units * microBatches, applied.Count);
        for (long u = 0; u < units; u++)
            for (int mb = 0; mb < microBatches; mb++) Assert.Contains((u, mb), applied);
    }

    [Fact]
    public void SyncRunHandsOutEveryMicroBatchOnceAndFinishesWithTheFinalState()
    {
        using var sim = new SimCluster(ModeOptions.Sync, checkpointEvery: 0);
        sim.Join(workers: 2);
        sim.Run();
        Assert.NotNull(sim.Result);
        Assert.Null(sim.Result!.Error);
        long steps = sim.Steps;
        Assert.Equal(8, steps);
        AssertLedger(sim, steps, 4);
        Assert.Equal(steps * 4, sim.Computed.Count); // nothing computed twice without a fault
        // Each micro-batch of step t was computed on version t, by both workers between them.
        Assert.All(sim.Computed, c => Assert.Equal(c.Work.Step, c.Work.Version));
        Assert.Equal(2, sim.Computed.Select(c => c.Worker).Distinct().Count());
        Assert.Equal(steps, sim.Store.ModelVersion);
        Assert.Equal([4L, 8L], sim.Store.Written);           // the epoch end, and the end (checkpoint of the final state)
        // Each shard's range and node, for the live view: 60 floats cut at a 16-float boundary.
        Assert.Contains("shard 0 of 2 holds [0, 32) on node/ps0", sim.Reports);
        Assert.Contains("shard 1 of 2 holds [32, 60) on node/ps1", sim.Reports);
        var lines = File.ReadAllLines(Path.Combine(sim.OutDir, "metrics.jsonl"));
        Assert.Equal(steps, lines.Count(l => l.Contains("\"kind\":\"step\"")));
    }

    /// <summary>A worker process that registers once the run is over (it started late, or a supervisor restarted it at the end)
    /// is told so instead of being accepted: accepted, it connected to shards that were shutting down and failed.</summary>
    [Fact]
    public void AWorkerThatRegistersAfterTheRunIsToldTheRunIsOverInsteadOfBeingAccepted()
    {
        using var sim = new SimCluster(ModeOptions.Sync, checkpointEvery: 0);
        sim.Join(workers: 2);
        sim.Run();
        Assert.NotNull(sim.Result);
        int reports = sim.Reports.Count;
        var effects = sim.Core.Handle("late", new RegisterWorker("late", "addr", "127.0.0.1", 9001, WireProtocol.Version, Job().Spec().Hash));
        var reply = Assert.Single(effects.OfType<Send>());
        Assert.Equal("late", reply.To);
        var done = Assert.IsType<TrainingDone>(reply.Message);
        Assert.Null(done.Reason);
        Assert.DoesNotContain(effects, e => e is Send { Message: RegisterAccepted } or Watch);
        Assert.Equal(reports, sim.Reports.Count); // not "joined"
    }

    [Fact]
    public void AWorkerThatLeavesMidStepHasItsLeasesHandedToTheOther()
    {
        using var sim = new SimCluster(ModeOptions.Sync);
        sim.Join(workers: 2);
        sim.Run(until: () => sim.Computed.Count == 5); // step 1 under way
        sim.WorkerLeaves("w1");
        sim.Run();
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, sim.Steps, 4);
        Assert.Contains(sim.Reports, r => r.StartsWith("worker w1 left;"));
        Assert.All(sim.Computed.Skip(5), c => Assert.Equal("w0", c.Worker));
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("async")]
    [InlineData("local-sgd")]
    public void AWorkerWhoseDataPlaneConnectionEndsHasItsLeasesHandedOutAtOnce(string modeName)
    {
        var mode = ModeOptions.Parse(modeName, modeName == "async" ? 2 : null, modeName == "local-sgd" ? 3 : null);
        using var sim = new SimCluster(mode);
        sim.Join(workers: 2);
        sim.Run(until: () => sim.Computed.Count == 5);
        int before = sim.Computed.Count;
        sim.Vanish("w1");
        sim.Run(); // the clock never moves, so w1's leases never expire: the run stalls on them
        Assert.Null(sim.Result);
        sim.ConnectionLost("w0", "w1", shard: 0); // only a shard's word counts
        sim.Run();
        Assert.Null(sim.Result);
        sim.ConnectionLost("ps0", "w1", shard: 0);
        sim.ConnectionLost("ps1", "w1", shard: 1); // the second shard's word finds nothing left to re-queue
        sim.Run();
        Assert.NotNull(sim.Result);
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, mode.Units(sim.Steps), 4);
        Assert.Single(sim.Reports, r => r.StartsWith("worker w1 lost its connection to shard 0;"));
        Assert.DoesNotContain(sim.Reports, r => r.Contains("shard 1;"));
        Assert.All(sim.Computed.Skip(before), c => Assert.Equal("w0", c.Worker));
    }

    [Fact]
    public void APausedWorkersLeaseGoesOutAgainAfterAFewStepTimesNotTheLeaseCeiling()
    {
        // 4 micro-batches of 25 ms a step: the median step takes 100 ms, 4 of them are below the 1 s floor, so leases last 1 s
        // (the ceiling, 30 s here, only until two steps are timed).
        // Backup copies off: this is about the lease (AStragglingMicroBatchGetsABackupCopy... has them on).
        using var sim = new SimCluster(ModeOptions.Sync, backupMultiple: 0) { MicroBatchTime = TimeSpan.FromMilliseconds(25) };
        sim.Join(workers: 2);
        sim.Run(until: () => sim.Computed.Count == 13);
        int before = sim.Computed.Count;
        sim.Vanish("w1"); // SIGSTOP: no connection ends, Akka has not noticed
        sim.Run();
        Assert.Null(sim.Result);
        int stalled = sim.Computed.Count;
        sim.Now += TimeSpan.FromMilliseconds(900);
        sim.Take(sim.Core.Timer(CoordinatorCore.LeaseTimer));
        sim.Run();
        Assert.Equal(stalled, sim.Computed.Count); // not yet: 0.9 s is inside the lease
        sim.Now += TimeSpan.FromMilliseconds(200);
        sim.Take(sim.Core.Timer(CoordinatorCore.LeaseTimer));
        sim.Run();
        Assert.NotNull(sim.Result);
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, sim.Steps, 4);
        Assert.All(sim.Computed.Skip(before), c => Assert.Equal("w0", c.Worker));
        Assert.Contains(sim.Reports, r => r.StartsWith("worker w1 held step ") && r.EndsWith("longer than its lease (1.0 s); handed to w0"));
    }

    [Fact]
    public void AStepThatHangsSaysOnceWhatItWaitsFor()
    {
        using var sim = new SimCluster(ModeOptions.Sync) { MicroBatchTime = TimeSpan.FromMilliseconds(25) };
        sim.Join(workers: 2);
        sim.Run(until: () => sim.Computed.Count == 13); // step 3 under way, its first micro-batch done
        sim.Vanish("w0");
        sim.Vanish("w1");
        sim.Run();
        sim.Now += TimeSpan.FromSeconds(1.5);
        sim.Take(sim.Core.Timer(CoordinatorCore.LeaseTimer));
        Assert.DoesNotContain(sim.Reports, r => r.Contains("has waited")); // 1.5 s: not yet
        sim.Now += TimeSpan.FromSeconds(1);
        sim.Take(sim.Core.Timer(CoordinatorCore.LeaseTimer));
        sim.Take(sim.Core.Timer(CoordinatorCore.LeaseTimer));
        var hang = Assert.Single(sim.Reports, r => r.Contains("has waited"));
        Assert.StartsWith("step 3 has waited 2.5 s for micro-batch(es) 1 (held by w", hang);
        Assert.Contains("for 2.5 s)", hang);
        Assert.DoesNotContain("0 (held", hang); // micro-batch 0 is done
        Assert.EndsWith("shard(s) 0, 1 have not applied it", hang);
    }

    [Fact]
    public void LocalSgdRunsRoundsOfChunks()
    {
        var mode = new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 3);
        using var sim = new SimCluster(mode);
        sim.Join(workers: 2);
        sim.Run();
        Assert.Null(sim.Result!.Error);
        long rounds = mode.Units(sim.Steps); // 8 steps in rounds of 3: 3 rounds
        Assert.Equal(3, rounds);
        AssertLedger(sim, rounds, 4);
        Assert.Equal(rounds, sim.Store.ModelVersion);
        Assert.Empty(sim.Store.Written); // local-sgd writes the final model alone
    }

    [Fact]
    public void AsyncHandsOutMicroBatchesInPlanOrderWithinTheStalenessBound()
    {
        var mode = new ModeOptions(TrainingMode.Async, Staleness: 2);
        using var sim = new SimCluster(mode);
        sim.Join(workers: 3);
        sim.Run();
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, sim.Steps, 4);
        // Ordinal k = step·M + mb names k − S as the oldest version it may be computed on.
        Assert.All(sim.Computed, c => Assert.Equal(Math.Max(0, c.Work.Step * 4 + c.Work.MicroBatch - 2), c.Work.Version));
        Assert.Equal(sim.Steps * 4, sim.Store.ModelVersion); // the final version: one per micro-batch
        Assert.Contains(File.ReadAllLines(Path.Combine(sim.OutDir, "metrics.jsonl")), l => l.Contains("\"kind\":\"staleness\""));
    }

    [Fact]
    public void ClipNormTellsEveryShardTheGlobalNormOfItsSharesOnce()
    {
        using var sim = new SimCluster(ModeOptions.Sync, epochs: 1).Clipping();
        sim.Join(workers: 2);
        sim.Run();
        Assert.Null(sim.Result!.Error);
        // Shares 2² and 4²: the global norm is √20, sent to both shards once per step.
        Assert.Equal(sim.Steps * 2, sim.Clipped.Count);
        Assert.All(sim.Clipped, c => Assert.Equal(Math.Sqrt(20), c.GlobalNorm, 12));
        Assert.Equal(Enumerable.Range(0, (int)sim.Steps).SelectMany(s => new long[] { s, s }), sim.Clipped.Select(c => c.Step));
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("async")]
    [InlineData("local-sgd")]
    public void ACoordinatorRebuiltFromItsSnapshotMidRunHandsOutExactlyTheWorkNotDone(string modeName)
    {
        var mode = ModeOptions.Parse(modeName, modeName == "async" ? 2 : null, modeName == "local-sgd" ? 3 : null);
        using var sim = new SimCluster(mode);
        sim.Join(workers: 2);
        sim.Run(until: () => sim.Computed.Count == 10); // mid-step (mid-round), with work leased and not yet computed
        sim.RestartCoordinator();
        sim.Run();
        Assert.NotNull(sim.Result);
        Assert.Null(sim.Result!.Error);
        long units = mode.Units(sim.Steps);
        AssertLedger(sim, units, 4);
        // Nothing done before the restart was handed out again: each micro-batch computed once.
        Assert.Equal(units * 4, sim.Computed.Count);
        Assert.Equal(mode.Mode == TrainingMode.Async ? units * 4 : units, sim.Store.ModelVersion);
        var steps = File.ReadAllLines(Path.Combine(sim.OutDir, "metrics.jsonl")).Where(l => l.Contains("\"kind\":\"step\"")).ToList();
        Assert.Equal(steps.Count, steps.Distinct().Count());
        Assert.Single(File.ReadAllLines(Path.Combine(sim.OutDir, "metrics.jsonl")), l => l.Contains("\"kind\":\"run\""));
    }

    [Fact]
    public void ANonFiniteGradientIsComputedAgainAtOnceWithoutWaitingForItsLease()
    {
        using var sim = new SimCluster(ModeOptions.Sync);
        int copies = 0;
        sim.NonFinite = (_, w) => w.Step == 2 && w.MicroBatch == 1 && copies++ < 2; // both shards refuse the first copy only (a faulty host)
        sim.Join(workers: 2);
        sim.Run(); // the clock never moves: waiting out the lease would never end
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, sim.Steps, 4);
        Assert.Equal(2, sim.Computed.Count(c => c.Work.Step == 2 && c.Work.MicroBatch == 1));
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("async")]
    public void AGradientThatIsNotFiniteTwiceStopsTheRunNamingTheStepMicroBatchAndWorkers(string modeName)
    {
        using var sim = new SimCluster(ModeOptions.Parse(modeName, null, null), shards: 2);
        sim.NonFinite = (_, w) => w.Step == 2 && w.MicroBatch == 1;
        sim.Join(workers: 2);
        sim.Run();
        var error = sim.Result!.Error;
        Assert.NotNull(error);
        Assert.Contains("step 2 micro-batch 1 was not finite (NaN or infinity) 2 times", error);
        Assert.Contains("training diverged", error);
        Assert.Matches("computed by w[01]( and w[01])?:", error);
        Assert.Equal(2, sim.Computed.Count(c => c.Work.Step == 2 && c.Work.MicroBatch == 1));
        Assert.Equal(4, sim.Done.Count); // both workers and both shards are told
        Assert.All(sim.Done, d => Assert.Equal(error, d.Reason));
        Assert.Equal(-1, sim.Store.ModelVersion); // no model written
    }

    /// <summary>
    /// The data-plane keys the coordinator hands out are those of the recipient's own id: a shard gets its listener key and its
    /// key toward the coordinator, a worker its listener key and its key toward each shard, the shard its key toward the
    /// worker. A shard that registers naming another node as its owner is refused: workers would take pushes from that
    /// node's sender id, whose keys it was never given.
    /// </summary>
    [Fact]
    public void EachNodeGetsTheKeysOfItsOwnIdAndAShardCannotRegisterUnderAnotherNodesId()
    {
        using var sim = new SimCluster(ModeOptions.Sync, shards: 1);
        var core = sim.Core;
        T Sent<T>(IReadOnlyList<Effect> effects) => effects.OfType<Send>().Select(e => e.Message).OfType<T>().Single();
        int shard = JobMapping.ShardSenderId("node/ps0", 0);

        var assignment = Sent<ShardAssignment>(core.Handle("ps0", new RequestShard("node/ps0", WireProtocol.Version)));
        Assert.Equal(core.Keys.Listener(shard).ToWire(), assignment.Job.DataKey);
        Assert.Equal(core.Keys.ShardToCoordinator(shard), assignment.CoordinatorKey);
        Assert.Equal(shard, sim.Store.Owners[0]);   // the checkpoint receiver takes range 0 from this id only

        var refused = core.Handle("ps0", new RegisterShard(0, 0, 60, "node/other", "127.0.0.1", 8000, WireProtocol.Version));
        Assert.Empty(refused.OfType<WatchShardLink>());
        Assert.Contains(refused.OfType<LogLine>(), l => l.Text.Contains("names owner node/other"));
        Assert.Single(core.Handle("ps0", new RegisterShard(0, 0, 60, "node/ps0", "127.0.0.1", 8000, WireProtocol.Version)).OfType<WatchShardLink>());

        Assert.Equal(core.Keys.WorkerListener("w0"), Sent<JobDescription>(core.Handle("w0", new RequestJob("w0", WireProtocol.Version))).DataKey);
        var accepted = Sent<RegisterAccepted>(core.Handle("w0", new RegisterWorker("w0", "addr", "127.0.0.1", 9000, WireProtocol.Version, Job().Spec().Hash)));
        Assert.Equal(core.Keys.WorkerToShard("w0", shard), accepted.Layout.Shards[0].Key);
        Assert.Equal(core.Keys.ShardToWorker(shard, "w0"), Sent<WorkerEndpoint>(core.Handle("w0", new RequestWork("w0", -1))).Key);
        Assert.Empty(core.Description.DataKey);   // the coordinator's own copy carries no key
    }

    [Fact]
    public void AShardActorThatFindsEveryRangeTakenWaitsAsASpareNamingTheRanges()
    {
        using var sim = new SimCluster(ModeOptions.Sync, shards: 2);
        sim.Join(workers: 0);
        var effects = sim.Core.Handle("ps9", new RequestShard("node/ps9", WireProtocol.Version));
        var standby = Assert.IsType<ShardStandby>(Assert.Single(effects.OfType<Send>(), s => s.To == "ps9").Message);
        Assert.Contains("shard 0 [0, 32) on ps0", standby.Reason);
        Assert.Contains("shard 1 [32, 60) on ps1", standby.Reason);
        Assert.Empty(sim.Core.Handle("ps9", new RequestShard("node/ps9", WireProtocol.Version)).OfType<Send>()); // told once; it keeps asking
    }

    /// <summary>
    /// A shard's process dies mid-run (sync, state kept every 3 steps): nothing is handed out until a spare has taken its range
    /// and every shard is back at the newest state held (step 6), then steps 6.. go out again to workers that got the new layout.
    /// Every micro-batch of every step is computed, the final state is the last step's, and metrics.jsonl has each step once.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ALostShardIsReplacedByASpareAndEveryShardRollsBackToTheNewestStateHeld(bool spareWaiting)
    {
        using var sim = new SimCluster(ModeOptions.Sync, shards: 2, epochs: 4, replicateEvery: 3);
        sim.Join(workers: 2);
        if (spareWaiting) sim.PsAsks("spare");
        sim.Run(until: () => sim.Computed.Count == 4 * 8 + 2); // step 8 under way: states 3 and 6 were collected
        int before = sim.Computed.Count;
        sim.ShardDies(1);
        Assert.Contains(sim.Reports, r => r.StartsWith("shard 1 lost (its data-plane listener 127.0.0.1:8001 closed") && r.Contains("rolling back to step 6"));
        Assert.Equal([(6L, 0)], sim.Store.Restores);            // the survivor at once
        sim.WorkerAsks("w0");                                   // an ask that was on its way: nothing to hand out, nobody to tell
        if (!spareWaiting)
        {
            sim.Run();
            Assert.Equal(before, sim.Computed.Count);          // nothing handed out while a range has no owner
            Assert.Null(sim.Result);
            sim.PsAsks("spare");                                // a ps node (re)started asks
        }
        sim.Run();
        Assert.Null(sim.Result!.Error);
        Assert.Contains("shard 1 of 2 holds [32, 60) on node/spare", sim.Reports);
        Assert.Equal([(6L, 0), (6L, 1)], sim.Store.Restores);
        Assert.Contains("every shard is back at step 6; training continues from there", sim.Reports);
        AssertLedger(sim, sim.Steps, 4);
        Assert.All(sim.Computed.Skip(before), c => Assert.True(c.Work.Step >= 6));
        Assert.Equal(16, sim.Steps);
        Assert.Equal(sim.Steps, sim.Store.ModelVersion);
        var steps = File.ReadAllLines(Path.Combine(sim.OutDir, "metrics.jsonl")).Where(l => l.Contains("\"kind\":\"step\"")).ToList();
        Assert.Equal(sim.Steps, steps.Count);
    }

    /// <summary>A worker actor that restarts listens on a new data-plane port and registers again: the shards are told the new
    /// endpoint at its next request (they push to it from then on), instead of pushing to the dead port while it starves.</summary>
    [Fact]
    public void AWorkerThatRegistersAgainHasItsNewEndpointAnnouncedToEveryShard()
    {
        using var sim = new SimCluster(ModeOptions.Sync, shards: 2);
        sim.Join(workers: 1);
        sim.Run(until: () => sim.Computed.Count == 3);
        var again = sim.Core.Handle("w0", new RegisterWorker("w0", "addr", "127.0.0.1", 9555, WireProtocol.Version, Job().Spec().Hash));
        Assert.DoesNotContain(again.OfType<Send>(), s => s.Message is WorkerEndpoint);
        var asked = sim.Core.Handle("w0", new RequestWork("w0", -1));
        var told = asked.OfType<Send>().Where(s => s.Message is WorkerEndpoint).ToList();
        Assert.Equal(["ps0", "ps1"], told.Select(s => s.To).Order());
        Assert.All(told, s => Assert.Equal(9555, ((WorkerEndpoint)s.Message).DataPort));
    }

    /// <summary>
    /// A standby takes over from a coordinator whose node died while the shards were a step apart (the last gradient of step 5
    /// never reached shard 1): every shard rolls back to the newest version both kept (4, a replicated one), the steps from there
    /// are handed out again, the run ends with every micro-batch applied, and metrics.jsonl has each step once.
    /// </summary>
    [Fact]
    public void AStandbyThatTakesOverRollsEveryShardBackToTheNewestVersionAllHold()
    {
        using var sim = new SimCluster(ModeOptions.Sync, shards: 2, epochs: 4, replicateEvery: 2);
        sim.Join(workers: 2);
        sim.LostOnTheWay = (s, w) => s == 1 && w.Step == 5 && w.MicroBatch == 3;
        sim.Run(until: () => sim.VersionOf(0) == 6);
        Assert.Equal(5, sim.VersionOf(1));
        sim.LostOnTheWay = (_, _) => false;
        sim.TakeOver();
        Assert.Contains(sim.Reports, r => r == "took over the run: every shard rolls back to step 4 (steps up to 6 had been applied)");
        sim.Run();
        Assert.Null(sim.Result!.Error);
        Assert.Equal(16, sim.Steps);
        AssertLedger(sim, sim.Steps, 4);
        Assert.Equal(sim.Steps, sim.Store.ModelVersion);
        Assert.Contains("every shard is back at step 4; training continues from there", sim.Reports);
        Assert.All(sim.Computed, c => Assert.Equal(c.Work.Step, c.Work.Version)); // never a micro-batch on another step's weights
        var steps = File.ReadLines(Path.Combine(sim.OutDir, "metrics.jsonl")).Where(l => l.Contains("\"kind\":\"step\""))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToList();
        Assert.Equal(Enumerable.Range(0, 16).Select(i => (long)i), steps);
    }

    /// <summary>A standby that took over gives the run up, naming the shard and the way on, when a shard never rejoins (its state
    /// died with the coordinator's node); until then nothing is handed out and a `ps` actor that asks waits as a spare.</summary>
    [Fact]
    public void AStandbyGivesUpNamingTheShardThatNeverRejoins()
    {
        using var sim = new SimCluster(ModeOptions.Sync, shards: 2, epochs: 2);
        sim.Join(workers: 1);
        sim.Run(until: () => sim.VersionOf(0) == 3);
        sim.TakeOver(rejoining: [0]);
        sim.PsAsks("fresh");
        sim.Run();
        Assert.Null(sim.Result);
        Assert.Contains(sim.Reports, r => r.StartsWith("PS actor node/fresh waits as a spare"));
        sim.Now += CoordinatorCore.RejoinTimeout - TimeSpan.FromSeconds(1);
        sim.Take(sim.Core.Timer(CoordinatorCore.SnapshotTimer));
        Assert.Null(sim.Result);
        sim.Now += TimeSpan.FromSeconds(2);
        sim.Take(sim.Core.Timer(CoordinatorCore.SnapshotTimer));
        Assert.NotNull(sim.Result!.Error);
        Assert.Contains("PS shard(s) 1 did not rejoin within 30 s", sim.Result.Error);
        Assert.Contains("--resume", sim.Result.Error);
    }

    /// <summary>Local-sgd rolls back the same way, by rounds (its shards' version): every chunk of every round is computed.</summary>
    [Fact]
    public void ALocalSgdRunRollsBackByRoundsWhenAShardIsLost()
    {
        var mode = new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 2);
        using var sim = new SimCluster(mode, shards: 2, epochs: 4, replicateEvery: 2);
        sim.Join(workers: 2);
        sim.PsAsks("spare");
        sim.Run(until: () => sim.Computed.Count == 4 * 5 + 1); // round 5 under way: rounds 2 and 4 were kept
        sim.ShardDies(0);
        Assert.Contains(sim.Reports, r => r.StartsWith("shard 0 lost") && r.Contains("during round 5; rolling back to round 4"));
        sim.Run();
        Assert.Null(sim.Result!.Error);
        long rounds = mode.Units(sim.Steps);
        Assert.Equal(8, rounds);
        AssertLedger(sim, rounds, 4);
        Assert.Contains("every shard is back at round 4; training continues from there", sim.Reports);
        Assert.Equal(rounds, sim.Store.ModelVersion);
    }

    /// <summary>--verify-fraction 1: a worker with nothing to lease computes a second copy of a micro-batch of the current step that
    /// the other worker holds; the run is unchanged. A mismatch the shards report names both workers, once per micro-batch.</summary>
    [Fact]
    public void VerifyFractionHandsSecondCopiesToOtherWorkersAndAMismatchNamesBoth()
    {
        using var sim = new SimCluster(ModeOptions.Sync, verifyFraction: 1);
        sim.Join(workers: 2);
        sim.Run();
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, sim.Steps, 4);
        // Handed out twice, each time to two different workers (in the sim the first to compute a copy has it kept).
        var twice = sim.Assigned.GroupBy(c => (c.Work.Step, c.Work.MicroBatch)).Where(g => g.Count() > 1).ToList();
        Assert.NotEmpty(twice);
        Assert.All(twice, g => Assert.Equal(2, g.Select(c => c.Worker).Distinct().Count()));
        Assert.Contains($"determinism audit: {twice.Count} micro-batch(es) computed twice", Assert.Single(sim.Reports, r => r.StartsWith("determinism audit: ")));
        Assert.EndsWith("0 differed", sim.Reports.Last(r => r.StartsWith("determinism audit: ")));
        var mismatch = new GradientMismatch(0, JobMapping.SenderIdOf("w0"), JobMapping.SenderIdOf("w1"), 3, 1, 32);
        var said = sim.Core.Handle("ps0", mismatch);
        Assert.Contains(said.OfType<Report>(), r => r.Text.StartsWith("determinism audit: step 3 micro-batch 1 differs between w0 (kept) and w1"));
        Assert.DoesNotContain(sim.Core.Handle("ps1", mismatch with { Shard = 1 }).OfType<Report>(), r => r.Text.StartsWith("determinism audit"));
    }

    /// <summary>
    /// A worker that stops getting its micro-batch done (behind a slow link) is backed up: once it has held the micro-batch 4 times
    /// the median micro-batch time (disttrain.backup-multiple 4 here; not before), a worker with nothing left of the step also gets
    /// it; the lease stays, the first copy counts, the step completes long before the lease would run out, and the ledger is clean.
    /// (The sim computes one micro-batch at a time, so a worker that waits its turn can be backed up earlier in the run too.)
    /// </summary>
    [Fact]
    public void AStragglingMicroBatchGetsABackupCopyOnceHeldTheMultipleOfTheMedianAndTheFirstCopyCounts()
    {
        const double multiple = 4; // above the 3 micro-batches w0 computes after w1 stops: the copy comes from the backup-due timer
        using var sim = new SimCluster(ModeOptions.Sync, backupMultiple: multiple) { MicroBatchTime = TimeSpan.FromMilliseconds(25), TakeTurns = true };
        sim.Join(workers: 2);
        // Past BackupPolicy.MinSamples micro-batches, w1 is handed a micro-batch and from then on gets nothing done.
        sim.Run(until: () => sim.Computed.Count > 12 && sim.Assigned[^1].Worker == "w1" && sim.Assigned[^1].Work.Step == sim.Computed[^1].Work.Step);
        var (step, mb) = (sim.Assigned[^1].Work.Step, sim.Assigned[^1].Work.MicroBatch);
        sim.Slow.Add("w1");
        string ours = $"backup copy: step {step} micro-batch {mb} held by w1 for ";
        sim.Run();
        // w0 has done the rest of the step (quicker than the multiple of the median) and waits with a lease ahead: the copy is not due
        // yet, and the coordinator asked to be woken when it is.
        Assert.DoesNotContain(sim.Reports, r => r.StartsWith(ours));
        var due = sim.Timers.Last(t => t.Name == CoordinatorCore.BackupTimer).Period;
        sim.Now += due - TimeSpan.FromMilliseconds(1);
        sim.Take(sim.Core.Timer(CoordinatorCore.LeaseTimer));
        Assert.DoesNotContain(sim.Reports, r => r.StartsWith(ours)); // a millisecond early: not yet
        sim.Now += TimeSpan.FromMilliseconds(1);
        sim.Take(sim.Core.Timer(CoordinatorCore.BackupTimer));
        var pattern = new System.Text.RegularExpressions.Regex(@"^backup copy: step (\d+) micro-batch (\d+) held by (w\d) for ([0-9.]+) s \(a micro-batch takes ([0-9.]+) s, the median\) also goes to (w\d) \((\d+) so far\)$");
        double Num(System.Text.RegularExpressions.Match m, int g) => double.Parse(m.Groups[g].Value, System.Globalization.CultureInfo.InvariantCulture);
        var lines = sim.Reports.Where(r => r.StartsWith("backup copy:")).Select(r => pattern.Match(r)).ToList();
        Assert.All(lines, m => Assert.True(m.Success));
        Assert.All(lines, m => Assert.NotEqual(m.Groups[3].Value, m.Groups[6].Value));              // never to its holder
        Assert.All(lines, m => Assert.True(Num(m, 4) >= multiple * Num(m, 5) - 0.0015, m.Value));  // never before 4 × the median
        var line = Assert.Single(lines, m => m.Value.StartsWith(ours));
        Assert.Equal("w0", line.Groups[6].Value);
        Assert.True(Num(line, 4) <= multiple * Num(line, 5) + 0.0015, line.Value);                       // when it became due (to the printed ms)
        sim.Run();
        Assert.Equal(["w1", "w0"], sim.Assigned.Where(a => a.Work.Step == step && a.Work.MicroBatch == mb).Select(a => a.Worker));
        Assert.Contains(sim.Computed, c => c.Worker == "w0" && c.Work.Step == step && c.Work.MicroBatch == mb);
        // w1 never gets anything done again: every later micro-batch it holds is backed up the same way, and the run ends.
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, sim.Steps, 4);
        Assert.DoesNotContain(sim.Reports, r => r.Contains("longer than its lease"));
        var summary = Assert.Single(sim.Reports, r => r.StartsWith("backup copies: "));
        int n = int.Parse(line.Groups[7].Value);
        Assert.StartsWith($"backup copies: {n} straggling", summary);
        Assert.EndsWith($"the backup copy completed {n} of them first", summary); // the sim's holders never finish first
    }

    /// <summary>
    /// The audit excludes the worker found in every disagreement once it disagreed with two others at least 3 times: it is
    /// told why (RegisterRejected), refused if it registers again, its work goes to the others, and the run finishes. Between
    /// two workers alone nobody is excluded: either could be the faulty one.
    /// </summary>
    [Theory]
    [InlineData(3)]
    [InlineData(2)]
    public void TheWorkerInEveryDisagreementWithOthersIsExcluded(int workers)
    {
        using var sim = new SimCluster(ModeOptions.Sync);
        sim.Join(workers);
        sim.Run(until: () => sim.Computed.Count == 6);
        string bad = $"w{workers - 1}";
        int Sender(string w) => JobMapping.SenderIdOf(w);
        var said = new List<Effect>();
        for (int i = 0; i < 4; i++)
        {
            string good = $"w{i % (workers - 1)}";
            // Every chunk and every shard of a micro-batch reports it: only the first of them counts.
            said.AddRange(sim.Core.Handle("ps0", new GradientMismatch(0, i % 2 == 0 ? Sender(bad) : Sender(good), i % 2 == 0 ? Sender(good) : Sender(bad), 1, i, 0)));
            said.AddRange(sim.Core.Handle("ps1", new GradientMismatch(1, Sender(good), Sender(bad), 1, i, 32)));
        }
        var rejected = said.OfType<Send>().Where(e => e.Message is RegisterRejected).ToList();
        if (workers == 2)
        {
            Assert.Empty(rejected);
            Assert.DoesNotContain(said.OfType<Report>(), r => r.Text.Contains("excluding"));
            return;
        }
        var told = Assert.Single(rejected);
        Assert.Equal(bad, told.To);
        Assert.StartsWith("excluded by the determinism audit: its gradients differed from 2 other workers' on 3 micro-batches", ((RegisterRejected)told.Message).Reason);
        var report = Assert.Single(said.OfType<Report>(), r => r.Text.Contains("excluding"));
        Assert.StartsWith($"determinism audit: excluding {bad} (in all 3 disagreements, with 2 workers); copies of it were kept from step 1 on", report.Text);
        Assert.Contains(sim.Core.Handle(bad, new RegisterWorker(bad, "addr", "127.0.0.1", 9000, WireProtocol.Version, Job().Spec().Hash)).OfType<Send>(),
            e => e.To == bad && e.Message is RegisterRejected);
        sim.Vanish(bad);
        sim.Take(said);
        sim.Run();
        Assert.Null(sim.Result!.Error);
        AssertLedger(sim, sim.Steps, 4);
    }

    /// <summary>A worker that was backed up lately (w2, behind a slow link) computes no backup copies for others for a while:
    /// when w0 straggles next, the copy goes to w1 even when w2 is idle too.</summary>
    [Fact]
    public void AWorkerThatWasBackedUpLatelyGetsNoBackupCopies()
    {
        using var sim = new SimCluster(ModeOptions.Sync, epochs: 4, backupMultiple: 4) { MicroBatchTime = TimeSpan.FromMilliseconds(25), TakeTurns = true };
        sim.Join(workers: 3);
        sim.Run(until: () => sim.Computed.Count > 12);
        void UntilBackupOf(string holder)
        {
            for (int i = 0; i < 400 && sim.Result is null && !sim.Reports.Any(r => r.Contains($" held by {holder} for ")); i++)
            {
                sim.Run(until: () => sim.Reports.Any(r => r.Contains($" held by {holder} for ")));
                sim.Now += TimeSpan.FromMilliseconds(5);
                sim.Take(sim.Core.Timer(CoordinatorCore.BackupTimer));
            }
        }
        sim.Slow.Add("w2");
        UntilBackupOf("w2");
        Assert.Contains(sim.Reports, r => r.Contains(" held by w2 for "));
        // All three keep what they hold and stop; long enough later every held micro-batch is due for a copy (not yet for
        // the lease). w2 asks first: none for it; then w1: one.
        sim.Slow.Clear();
        int done = sim.Computed.Count;
        sim.Run(until: () => sim.Computed.Count == done + 3);
        sim.Slow.UnionWith(["w0", "w1", "w2"]);
        sim.Run();
        sim.Now += TimeSpan.FromMilliseconds(500);
        int said = sim.Reports.Count;
        sim.WorkerAsks("w2");
        Assert.DoesNotContain(sim.Reports.Skip(said), r => r.StartsWith("backup copy") && r.Contains("also goes to w2"));
        sim.WorkerAsks("w1");
        Assert.Contains(sim.Reports.Skip(said), r => r.StartsWith("backup copy") && r.Contains("also goes to w1"));
    }

    /// <summary>disttrain.backup-multiple 0: a straggler waits for its lease; nothing is computed twice.</summary>
    [Fact]
    public void WithoutBackupCopiesAStragglerWaitsForItsLease()
    {
        using var sim = new SimCluster(ModeOptions.Sync, backupMultiple: 0) { MicroBatchTime = TimeSpan.FromMilliseconds(25) };
        sim.Join(workers: 2);
        sim.Run(until: () => sim.Computed.Count == 13);
        sim.Slow.Add("w1");
        sim.Run();
        int assigned = sim.Assigned.Count;
        sim.Now += TimeSpan.FromMilliseconds(900);
        sim.Take(sim.Core.Timer(CoordinatorCore.LeaseTimer));
        sim.Run();
        Assert.Equal(assigned, sim.Assigned.Count);
        Assert.DoesNotContain(sim.Reports, r => r.StartsWith("backup cop"));
    }

    /// <summary>Which micro-batches are verified is a function of (seed, step, micro-batch): the same on every run, about F of them.</summary>
    [Fact]
    public void WithoutAVerifyFractionNothingIsComputedTwice()
    {
        using var sim = new SimCluster(ModeOptions.Sync);
        sim.Join(workers: 2);
        sim.Run();
        Assert.Equal(sim.Steps * 4, sim.Computed.Count);
        Assert.DoesNotContain(sim.Reports, r => r.StartsWith("determinism audit"));
    }

    /// <summary>
    /// An async run's shard dies: every shard rolls back to the newest checkpoint's cut (its updates: steps 3, 4, 6 with 4
    /// micro-batches a step are 12, 16, 24), the spare takes the range, and the micro-batches after the cut go out again. Every
    /// micro-batch is applied and the final state has every update.
    /// </summary>
    [Fact]
    public void AnAsyncRunThatLosesAShardRollsBackToTheNewestCheckpointCut()
    {
        using var sim = new SimCluster(ModeOptions.Parse("async", 2, null), shards: 2, epochs: 4, checkpointEvery: 3);
        sim.Join(workers: 2);
        sim.PsAsks("spare");
        sim.Run(until: () => sim.Computed.Count == 30); // past the cut at 24 updates (step 6), before the one at 32 (step 8)
        int before = sim.Computed.Count;
        sim.ShardDies(1);
        Assert.Null(sim.Result);
        Assert.Contains(sim.Reports, r => r.StartsWith("shard 1 lost") && r.Contains("rolling back to update 24"));
        sim.Run();
        Assert.Null(sim.Result!.Error);
        Assert.Equal([(24L, 0), (24L, 1)], sim.Store.Restores);
        Assert.Contains("every shard is back at update 24; training continues from there", sim.Reports);
        AssertLedger(sim, sim.Steps, 4);
        Assert.All(sim.Computed.Skip(before), c => Assert.True(c.Work.Step * 4 + c.Work.MicroBatch >= 24, $"{c.Work} computed again"));
        Assert.Equal(sim.Steps * 4, sim.Store.ModelVersion);
    }
}

// Starts DistTrain nodes: an ActorSystem from cluster-config/ with the roles asked for — the
// coordinator singleton (manager + proxy), parameter-server shards, worker actors. The same code runs
// one process with every role (`disttrain train --workers N`) and one node of a multi-process cluster.
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using DistTrain.Training.Checkpoints;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Runtime;

/// <summary>A node to start. Coordinator options (Job, OutDir, PsShards, MinWorkers) matter only with the coordinator role.</summary>
public sealed record NodeOptions
{
    public string[] Roles { get; init; } = ["coordinator", "ps", "worker"];
    public string Environment { get; init; } = "local";
    public ClusterOverrides Overrides { get; init; } = new();
    /// <summary>Worker actors on this node (each a full replica).</summary>
    public int Workers { get; init; } = 1;
    /// <summary>PS shard actors on this node.</summary>
    public int PsActors { get; init; } = 1;
    /// <summary>Total PS shards of the job (coordinator).</summary>
    public int PsShards { get; init; } = 1;
    /// <summary>Workers that must register before step 0 (coordinator).</summary>
    public int MinWorkers { get; init; } = 1;
    public TrainJob? Job { get; init; }
    /// <summary>Training mode of the job (coordinator): sync, async with a staleness bound, or local-sgd.</summary>
    public ModeOptions Mode { get; init; } = ModeOptions.Sync;
    public string OutDir { get; init; } = "runs/latest";
    public bool SerializeMessages { get; init; }
    public TimeSpan LeaseTimeout { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>Compute threads per process; 0 = the cores divided among this node's workers.</summary>
    public int ComputeThreads { get; init; }
    /// <summary>`--simulate-compute`: this node's workers wait instead of computing and send a fixed gradient pattern (null = compute).</summary>
    public SimulateComputeOption? SimulateCompute { get; init; }
    public Action<string>? OnProgress { get; init; }
    /// <summary>Checkpoint every N steps besides every epoch end (coordinator); 0 = epoch ends only; negative = never.</summary>
    public long CheckpointEvery { get; init; }
    /// <summary>Resume from the newest good checkpoint in this run folder's checkpoint/ (coordinator); null = start at step 0.</summary>
    public string? ResumeDir { get; init; }
    /// <summary>Start from the weights (and running statistics) of this checkpoint file with a fresh optimizer at step 0
    /// (coordinator; `train --init`); excludes ResumeDir.</summary>
    public string? InitFile { get; init; }
    /// <summary>`--allow-unverified`: resume from checkpoint files whose SHA-256 manifest is missing (with a warning).</summary>
    public bool AllowUnverified { get; init; }
    /// <summary>See CoordinatorSettings.SnapshotGrace.</summary>
    public TimeSpan SnapshotGrace { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>See CoordinatorSettings.VerifyFraction (coordinator).</summary>
    public double VerifyFraction { get; init; }
    /// <summary>Faults a test injects into the coordinator (null in production).</summary>
    public ICoordinatorFaults? Faults { get; init; }
    /// <summary>A standby coordinator (`train --standby SEED`): joins a running job's cluster and takes the run over when the
    /// coordinator's node dies (CoordinatorSettings.Standby).</summary>
    public bool Standby { get; init; }
}

/// <summary>A worker's copy of the training data is not the coordinator's (ClusterNode.DatasetMismatch): it refuses the job.</summary>
public sealed class DatasetMismatchException(string message) : Exception(message);

public sealed class ClusterNode : IAsyncDisposable
{
    private readonly TaskCompletionSource<RunCompleted> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ClusterNode(ActorSystem system) => System = system;

    public ActorSystem System { get; }
    /// <summary>Completes when the coordinator on this node finished the run (never, on nodes without it).</summary>
    public Task<RunCompleted> Completion => _done.Task;
    public List<IActorRef> Workers { get; } = [];
    public List<IActorRef> Shards { get; } = [];
    public DistTrainSettings Settings { get; private init; } = null!;
    /// <summary>Coordinator-eligible nodes: what this node's standby actor heard of the run (null on other nodes).</summary>
    public CoordinatorHandover? Handover { get; private set; }
    /// <summary>Why the coordinator refused an actor of this node (the first refusal), or null.</summary>
    public string? Refusal { get; private set; }
    private void Refused(string reason) { lock (_done) Refusal ??= reason; }
    /// <summary>Why a worker or shard actor of this node failed (the first failure; ActorEffects.Fail), or null.</summary>
    public string? Failure { get; private set; }
    private readonly TaskCompletionSource _failed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>Completes when a worker or shard actor of this node failed (Failure says why).</summary>
    public Task WhenFailed => _failed.Task;
    private void Failed(string reason) { lock (_done) Failure ??= reason; _failed.TrySetResult(); }

    /// <summary>Completes when this node is Up in the cluster; fails with a clear message after the join timeout.</summary>
    public async Task WaitUntilUp()
    {
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cluster = Akka.Cluster.Cluster.Get(System);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        try { await up.Task.WaitAsync(Settings.JoinTimeout); }
        catch (TimeoutException)
        {
            var seeds = string.Join(", ", cluster.Settings.SeedNodes.Select(a => a.ToString()));
            throw new TimeoutException($"This node did not join the cluster within {Settings.JoinTimeout.TotalSeconds:0}s (disttrain.join-timeout): " +
                $"no seed node answered at [{seeds}]. Check that the coordinator node runs and that --seed-nodes names its host and port" +
                (Settings.Tls is null ? "." : "; with TLS, also that the seed runs with TLS and that both certificates come from the same cluster CA (--tls-ca; the seed's log names a refused certificate; scripts/make-certs.sh makes one with the cluster's CA)."));
        }
    }

    /// <summary>Completes when every worker and shard actor on this node has stopped (the run ended or they failed).</summary>
    public Task WhenLocalActorsStopped()
    {
        var refs = Workers.Concat(Shards).ToArray();
        if (refs.Length == 0) return Task.CompletedTask;
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        System.ActorOf(Props.Create(() => new Reaper(refs, tcs)), "reaper");
        return tcs.Task;
    }

    /// <summary>
    /// Completes with the reason this node should exit although its actors run: the cluster removed it (it was unreachable,
    /// e.g. paused or cut off, and was downed; its ActorSystem then shuts down), or no coordinator has been reachable for
    /// <paramref name="lostAfter"/> after one was (killed and no standby took over). A supervisor that restarts the process makes it
    /// join again. Watches from the start, so a node whose coordinator dies before the node is up is covered too.
    /// </summary>
    /// <summary>Why a node that the cluster removed exits (WhenOrphaned).</summary>
    public const string Removed = "was removed from the cluster before the run ended (downed after it was unreachable: the coordinator's node " +
        "stopped or was cut off, or this process was paused)";

    public Task<string> WhenOrphaned(TimeSpan lostAfter)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        System.WhenTerminated.ContinueWith(_ => tcs.TrySetResult(Removed),
            TaskScheduler.Default);
        Action member = () => _wasMember = true; // Props.Create takes an expression tree, which cannot hold the assignment
        System.ActorOf(Props.Create(() => new OrphanWatch(lostAfter, tcs, member)), "orphan-watch");
        return tcs.Task;
    }

    private volatile bool _wasMember;
    /// <summary>Whether this node ever saw itself a member (Joining or later; WhenOrphaned watches): one that never did could
    /// not join (e.g. the seed refused its certificate). Not whether it saw itself Up: a loaded node can train for seconds
    /// before it does.</summary>
    public bool WasMember => _wasMember;

    private sealed class OrphanWatch : ReceiveActor, IWithTimers
    {
        private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
        private readonly HashSet<Address> _coordinators = [], _unreachable = [];
        private DateTime? _lastSeen;   // when a coordinator was last up and reachable; null until one was (joining is join-timeout's)

        public ITimerScheduler Timers { get; set; } = null!;

        public OrphanWatch(TimeSpan lostAfter, TaskCompletionSource<string> done, Action member)
        {
            Receive<ClusterEvent.IMemberEvent>(e =>
            {
                var m = e.Member;
                if (m.Address == _cluster.SelfAddress) member();
                if (m.Address == _cluster.SelfAddress && e is ClusterEvent.MemberRemoved)
                    done.TrySetResult(Removed);
                if (!m.HasRole("coordinator")) return;
                if (e is ClusterEvent.MemberUp) _coordinators.Add(m.Address);
                else if (e is ClusterEvent.MemberRemoved or ClusterEvent.MemberExited or ClusterEvent.MemberDowned) _coordinators.Remove(m.Address);
            });
            Receive<ClusterEvent.UnreachableMember>(e => _unreachable.Add(e.Member.Address));
            Receive<ClusterEvent.ReachableMember>(e => _unreachable.Remove(e.Member.Address));
            Receive<Tick>(_ =>
            {
                var now = DateTime.UtcNow;
                if (_coordinators.Any(a => !_unreachable.Contains(a))) _lastSeen = now;
                else if (now - _lastSeen >= lostAfter)
                    done.TrySetResult($"has seen no reachable coordinator for {lostAfter.TotalSeconds:0} s (disttrain.coordinator-lost-timeout)");
            });
        }

        private sealed record Tick;

        protected override void PreStart()
        {
            _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
            Timers.StartPeriodicTimer("tick", new Tick(), TimeSpan.FromSeconds(1));
        }

        protected override void PostStop() => _cluster.Unsubscribe(Self);
    }

    private sealed class Reaper : ReceiveActor
    {
        public Reaper(IActorRef[] watched, TaskCompletionSource done)
        {
            var left = new HashSet<IActorRef>(watched);
            foreach (var w in watched) Context.Watch(w);
            Receive<Terminated>(t => { left.Remove(t.ActorRef); if (left.Count == 0) { done.TrySetResult(); Context.Stop(Self); } });
        }
    }

    public static ClusterNode Start(NodeOptions o)
    {
        foreach (var r in o.Roles)
            if (!ClusterConfig.KnownRoles.Contains(r))
                throw new ArgumentException($"Unknown role '{r}'; valid roles: {string.Join(", ", ClusterConfig.KnownRoles)}.");
        // Flags win over DISTTRAIN_SEED_NODES / _HOSTNAME / _PORT / _DATA_PORT, which win over the config files.
        var overrides = (o.Overrides with { Roles = o.Roles }).Over(ClusterOverrides.FromEnvironment());
        var config = ClusterConfig.Load(o.Environment, overrides);
        var settings = DistTrainSettings.From(config);
        var extra = ConfigurationFactory.ParseString($$"""
            disttrain-compute-dispatcher { type = PinnedDispatcher }
            akka.actor.serialize-messages = {{(o.SerializeMessages ? "on" : "off")}}
            akka.loglevel = {{(Environment.GetEnvironmentVariable("DISTTRAIN_AKKA_LOGLEVEL") ?? "WARNING")}}
            akka.remote.log-remote-lifecycle-events = off
            akka.remote.dot-netty.tcp.enable-ssl = {{(settings.Tls is null ? "off" : "on")}}
            """);
        var bindHost = CheckLocalAddresses(config, settings);
        if (settings.InsecureWarning is { } warning) Console.Error.WriteLine(warning);
        var system = ActorSystem.Create(settings.SystemName, NodeTls.Setup(extra.WithFallback(config), settings));
        var node = new ClusterNode(system) { Settings = settings };
        var cluster = Akka.Cluster.Cluster.Get(system);
        if (config.GetStringList("akka.cluster.seed-nodes").Count == 0) cluster.Join(cluster.SelfAddress);
        string self = cluster.SelfAddress.ToString();
        var host = settings.DataPlane.Host is { Length: > 0 } h ? h : cluster.SelfAddress.Host ?? "127.0.0.1";
        var endpoints = new NodeEndpoints(bindHost ?? host, settings.DataPlane.PublicHost ?? host, settings.DataPlane.MaxFrameBytes, settings.DataPlane.GradientChunkFloats)
        {
            Port = settings.DataPlane.Port, SocketBufferBytes = settings.DataPlane.SocketBufferBytes, ConnectTimeout = settings.DataPlane.ConnectTimeout,
            Limits = settings.DataPlane.Limits ?? DistTrain.Cluster.DataPlane.DataPlaneLimits.Default,
        };
        int psActors = o.Roles.Contains("ps") ? o.PsActors : 0;
        if (settings.DataPlane.Port > 0 && settings.DataPlane.Port + psActors + o.Workers > 65535)
            throw new ArgumentException($"disttrain.data-plane.port = {settings.DataPlane.Port} leaves no room for this node's {1 + psActors + o.Workers} listeners (ports P..P+{psActors + o.Workers}); lower it.");

        if (o.Roles.Contains("coordinator"))
        {
            var job = o.Job ?? throw new ArgumentException("A coordinator node needs the training job (model, dataset, hyper-parameters).");
            var (train, _) = DistTrain.Data.Sources.DatasetSpec.Parse(job.Dataset).Load();
            // Workers load their own copy of the data; the job carries this hash so a differing copy is refused, not trained on.
            var fingerprint = DistTrain.Data.DatasetOps.Fingerprint(train);
            int parameters = DistTrain.Nn.Models.ModelBuilder.Build(job.Spec(), (ulong)(uint)job.Seed).ParameterCount;
            var cs = new CoordinatorSettings(o.PsShards, o.OutDir, endpoints with { PortSlot = 0 }, o.LeaseTimeout, o.MinWorkers)
            {
                OnCompleted = r => node._done.TrySetResult(r),
                OnProgress = o.OnProgress,
                LeaseFloor = settings.LeaseFloor, LeaseStepMultiple = settings.LeaseStepMultiple, ReplicateEvery = settings.ReplicateEvery,
                BackupMultiple = settings.BackupMultiple,
                Mode = o.Mode,
                CheckpointEvery = o.CheckpointEvery,
                Resume = o.ResumeDir is not null ? FindResumePoint(o.ResumeDir, job, o.OnProgress, o.AllowUnverified, o.Mode)
                    : o.InitFile is not null ? InitialPoint(o.InitFile, job, o.OnProgress) : null,
                SnapshotGrace = o.SnapshotGrace,
                Faults = o.Faults,
                TrainFingerprint = fingerprint,
                VerifyFraction = o.VerifyFraction,
                Handover = node.Handover = new CoordinatorHandover(),
                Standby = o.Standby,
            };
            system.ActorOf(StandbyActor.Props(node.Handover, endpoints), "standby");
            system.ActorOf(ClusterSingletonManager.Props(CoordinatorActor.Props(job, train.Count, parameters, cs), PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole("coordinator").WithRemovalMargin(settings.TakeoverMargin)), "coordinator");
        }
        var proxy = system.ActorOf(ClusterSingletonProxy.Props("/user/coordinator",
            ClusterSingletonProxySettings.Create(system).WithRole("coordinator")), "coordinator-proxy");
        if (o.Roles.Contains("ps"))
            for (int i = 0; i < o.PsActors; i++)
                node.Shards.Add(system.ActorOf(ParameterServerActor.Props(proxy, $"{self}/ps{i}", endpoints with { PortSlot = 1 + i }, node.Refused, node.Failed), $"ps{i}"));
        if (o.Roles.Contains("worker"))
        {
            // Each worker computes on its own thread; the kernels split the cores between them.
            Compute.Threads = o.ComputeThreads > 0 ? o.ComputeThreads : Math.Max(1, Environment.ProcessorCount / Math.Max(1, o.Workers));
            for (int i = 0; i < o.Workers; i++)
                node.Workers.Add(system.ActorOf(WorkerActor.Props(proxy, $"{self}/w{i}", endpoints with { PortSlot = 1 + psActors + i }, node.Refused, o.SimulateCompute, node.Failed).WithDispatcher("disttrain-compute-dispatcher"), $"worker{i}"));
        }
        return node;
    }

    /// <summary>The newest checkpoint of <paramref name="runDir"/> that verifies; says which, and why it skipped newer ones.
    /// <paramref name="allowUnverified"/> (`--allow-unverified`) accepts files whose SHA-256 manifest is missing;
    /// <paramref name="mode"/> (a cluster run's) must be the one the checkpoint was written in; its shards' optimizer is read.</summary>
    public static DistTrain.Training.Checkpoints.ResumePoint FindResumePoint(string runDir, TrainJob job, Action<string>? say, bool allowUnverified = false,
        ModeOptions? mode = null)
    {
        var found = DistTrain.Training.Checkpoints.CheckpointSeries.List(runDir);
        if (found.Count == 0)
            throw new ArgumentException($"No checkpoint to resume from in {DistTrain.Training.Checkpoints.CheckpointSeries.RootOf(runDir)}; start the run without --resume.");
        var point = DistTrain.Training.Checkpoints.CheckpointSeries.FindLatest(runDir, job, m => say?.Invoke(m), allowUnverified,
                        mode is null ? null : n => OuterOptimizer.ForShard(job, mode, n, 1), mode?.Metadata())
            ?? throw new ArgumentException($"None of the {found.Count} checkpoint(s) in {DistTrain.Training.Checkpoints.CheckpointSeries.RootOf(runDir)} verifies (see above); " +
                                           "restore one from a backup or start the run without --resume.");
        say?.Invoke($"resuming from {point}");
        return point;
    }

    /// <summary>
    /// `--init FILE` on the cluster: the file's weights and buffers (names and shapes checked against the job's model) with
    /// a zero optimizer state at step 0 — what the one-process Trainer starts from with --init, handed to the shards
    /// through the resume path.
    /// </summary>
    public static DistTrain.Training.Checkpoints.ResumePoint InitialPoint(string file, TrainJob job, Action<string>? say)
    {
        var model = DistTrain.Nn.Models.ModelBuilder.Build(job.Spec(), (ulong)(uint)job.Seed);
        var info = DistTrain.Nn.Checkpoints.Checkpoint.LoadInto(model.Store, file);
        say?.Invoke($"init: weights from {file} (step {info.Step}, epoch {info.Epoch})");
        var state = job.CreateOptimizer(model.ParameterCount).State.Select(s => (s.Name, new float[s.Data.Length])).ToArray();
        return new DistTrain.Training.Checkpoints.ResumePoint(file, 0, 0, model.Store.Values.ToArray(), model.Store.Buffers.ToArray(), state);
    }

    /// <summary>
    /// Null when <paramref name="local"/> is the data the coordinator described (same SHA-256 fingerprint, DatasetOps.Fingerprint),
    /// else why not, naming both fingerprints and how to compare them. An empty expected fingerprint (nothing to compare) passes.
    /// </summary>
    public static string? DatasetMismatch(DistTrain.Cluster.Messages.CoordinatorMessages.DatasetInfo expected, DistTrain.Data.Dataset local)
    {
        if (string.IsNullOrEmpty(expected.TrainFingerprint)) return null;
        var here = DistTrain.Data.DatasetOps.Fingerprint(local);
        if (here == expected.TrainFingerprint) return null;
        return $"this node's training data for '{expected.Spec}' differs from the coordinator's: fingerprint {here} here ({local.Count} samples" +
               DistTrain.Data.Sources.DatasetSpec.DescribeTrainFiles(expected.Spec) + $"), {expected.TrainFingerprint} at the coordinator ({expected.TrainSamples} samples). " +
               $"Give every node the same files (compare `sha256sum` of each file on both machines; `disttrain data check --dataset {expected.Spec}` prints the fingerprint).";
    }

    /// <summary>
    /// The remoting and data-plane addresses must be this machine's: binding another one fails deep inside Akka (and the
    /// data plane) and the actors restart forever. Returns the data plane's bind address as an IP literal (a host name
    /// resolved), or null when it is already one.
    /// </summary>
    private static string? CheckLocalAddresses(Config config, DistTrainSettings settings)
    {
        var remoting = config.GetString("akka.remote.dot-netty.tcp.hostname", "");
        if (remoting is not ("" or "0.0.0.0" or "::")) LocalAddress(remoting, "--hostname (akka.remote.dot-netty.tcp.hostname)");
        var data = LocalAddress(settings.DataPlane.Host, "the data-plane address (--hostname or disttrain.data-plane.host)");
        return data.ToString() == settings.DataPlane.Host ? null : data.ToString();
    }

    private static global::System.Net.IPAddress LocalAddress(string host, string what)
    {
        var local = global::System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(n => n.GetIPProperties().UnicastAddresses.Select(u => u.Address)).ToList();
        global::System.Net.IPAddress[] candidates;
        if (global::System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip)) candidates = [ip];
        else
        {
            try { candidates = global::System.Net.Dns.GetHostAddresses(host); }
            catch (global::System.Net.Sockets.SocketException e)
            {
                throw new ArgumentException($"{what} '{host}' cannot be resolved ({e.Message}); give this machine's IP address.", e);
            }
        }
        // IPv4 first: DataPlaneClient connects to a name's first IPv4 address, so the listener must bind that one.
        var found = candidates.OrderBy(c => c.AddressFamily == global::System.Net.Sockets.AddressFamily.InterNetwork ? 0 : 1)
            .FirstOrDefault(c => global::System.Net.IPAddress.IsLoopback(c) || local.Any(l => l.Equals(c)));
        return found ?? throw new ArgumentException(
            $"{what} '{host}' is not an address of this machine (its addresses: {string.Join(", ", local.Select(a => a.ToString()))}); " +
            "give one of them (behind NAT, bind a local one and advertise the public one with akka.remote.dot-netty.tcp.public-hostname).");
    }

    /// <summary>Runs one process with every role as <paramref name="o"/> says (its Job, Workers, PsShards, OutDir, checkpoint options).</summary>
    public static async Task<RunCompleted> RunLocal(NodeOptions o, CancellationToken cancel = default)
    {
        await using var node = Start(o with { PsActors = o.PsShards, MinWorkers = o.Workers });
        using var reg = cancel.Register(() => node._done.TrySetCanceled(cancel));
        return await node.Completion;
    }

    /// <summary>One process, every role: the coordinator, <paramref name="psShards"/> shards and <paramref name="workers"/> workers.</summary>
    public static async Task<RunCompleted> RunLocal(TrainJob job, int workers, int psShards, string outDir,
        Action<string>? progress = null, bool serializeMessages = false, CancellationToken cancel = default, ModeOptions? mode = null,
        string? hocon = null)
    {
        await using var node = Start(new NodeOptions
        {
            Overrides = new ClusterOverrides { Hocon = hocon },
            Job = job, Mode = mode ?? ModeOptions.Sync, Workers = workers, PsActors = psShards, PsShards = psShards, MinWorkers = workers, OutDir = outDir,
            OnProgress = progress, SerializeMessages = serializeMessages,
        });
        using var reg = cancel.Register(() => node._done.TrySetCanceled(cancel));
        return await node.Completion;
    }

    public async ValueTask DisposeAsync()
    {
        // A node that never joined, or that the cluster already removed (downed, then shut down), never hears of its
        // leave: don't wait 10 s for it.
        var cluster = Akka.Cluster.Cluster.Get(System);
        if (!cluster.IsTerminated && cluster.State.Members.Any(m => m.UniqueAddress.Equals(cluster.SelfUniqueAddress)))
            await cluster.LeaveAsync().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        await System.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
    }
}

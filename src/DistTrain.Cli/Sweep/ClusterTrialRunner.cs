// Trials on the cluster: `disttrain sweep --cluster-port P` starts a cluster node with the sweep role (the seed that
// trial runners join: `disttrain node --roles trial --seed-nodes akka.tcp://disttrain@HOST:P`), and each trial the
// scheduler starts goes to an idle runner through the dispatcher actor. TLS and --insecure follow the same rules as
// every node (cluster-config, SecurityOptions). The runner nodes live in TrialNode.
using Akka.Actor;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;

namespace DistTrain.Cli.Sweep;

public sealed class ClusterTrialRunner : ITrialRunner, IAsyncDisposable
{
    /// <summary>
    /// Downing decides by the sweep role: with keep-majority counted among coordinators (base.hocon) a cluster without one
    /// would be a tie, and a dead runner could take the sweep's node down with it. Every node of a sweep's cluster uses it.
    /// </summary>
    public const string DowningHocon = "akka.cluster.split-brain-resolver.keep-majority.role = \"sweep\"";

    public const long DefaultMaxTrialBytes = 1L << 30;

    readonly ClusterNode _node;
    readonly IActorRef _dispatcher;
    readonly TrialSettings _settings;

    ClusterTrialRunner(ClusterNode node, IActorRef dispatcher, TrialSettings settings) => (_node, _dispatcher, _settings) = (node, dispatcher, settings);

    /// <summary>This node's address, the seed runners name.</summary>
    public string Address => Akka.Cluster.Cluster.Get(_node.System).SelfAddress.ToString();

    public static async Task<ClusterTrialRunner> StartAsync(TrialSettings settings, SweepMetric metric, string environment, ClusterOverrides overrides,
        long maxTrialBytes, Action<string> say)
    {
        // Runners check their copy of the data against this one, as workers check the coordinator's.
        var fingerprint = settings.Dataset is null ? "" : DistTrain.Data.DatasetOps.Fingerprint(DistTrain.Data.Sources.DatasetSpec.Parse(settings.Dataset).Load().Train);
        var node = ClusterNode.Start(new NodeOptions
        {
            Roles = ["sweep"], Environment = environment,
            Overrides = (overrides with { SeedNodes = null }).Over(new ClusterOverrides { Hocon = DowningHocon }),
        });
        try { await node.WaitUntilUp().ConfigureAwait(false); }
        catch { await node.DisposeAsync().ConfigureAwait(false); throw; }
        var dispatcher = node.System.ActorOf(TrialDispatcherActor.Props(metric, maxTrialBytes, say, fingerprint), "sweep");
        return new ClusterTrialRunner(node, dispatcher, settings);
    }

    /// <summary>Trial runners known now (idle or busy).</summary>
    public Task<int> RunnersAsync() => _dispatcher.Ask<int>(new TrialDispatcherActor.CountRunners(), TimeSpan.FromSeconds(10));

    public async Task<TrialOutcome> RunAsync(TrialRun run, CancellationToken cancel)
    {
        // A promoted trial's --resume is added by the dispatcher, which sends the previous rung's checkpoint ahead of it.
        var args = TrainArguments.Options(run, _settings);
        args.AddRange(["--checkpoint-every", TrainArguments.CheckpointEvery(run, _settings)]);
        var done = new TaskCompletionSource<TrialOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _dispatcher.Tell(new TrialDispatcherActor.Submit(run, args.ToArray(), done));
        await using var reg = cancel.Register(() => _dispatcher.Tell(new TrialDispatcherActor.Withdraw(run)));
        return await done.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        try { await _dispatcher.Ask<int>(new TrialDispatcherActor.FinishAll("the sweep is over"), TimeSpan.FromSeconds(10)).ConfigureAwait(false); }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException) { }
        // Let SweepFinished reach the runners before this node leaves.
        await Task.Delay(500).ConfigureAwait(false);
        await _node.DisposeAsync().ConfigureAwait(false);
    }
}

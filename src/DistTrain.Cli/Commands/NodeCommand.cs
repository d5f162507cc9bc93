// `disttrain node --roles worker --seed-nodes akka.tcp://disttrain@HOST:PORT`: one node of a cluster.
// The job (model spec, data, hyper-parameters) comes from the coordinator; a worker needs only the
// dataset on its own disk. Exits when its actors finish, on Ctrl-C, when no seed node answers or lets it in (3), when the coordinator
// refuses it (4), or when the cluster removed it or no coordinator was reachable for disttrain.coordinator-lost-timeout (5),
// so that a supervisor restarts it.
using System.CommandLine;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;

namespace DistTrain.Cli.Commands;

public sealed class NodeCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var roles = new Option<string>("--roles") { Description = "Comma-separated roles of this node: worker, ps (the coordinator runs in `disttrain train`), or trial (runs a `disttrain sweep`'s trials). Default: DISTTRAIN_ROLES, else worker.",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DISTTRAIN_ROLES") is { Length: > 0 } r ? r : "worker" };
        var seeds = new Option<string?>("--seed-nodes") { Description = "Comma-separated seed node addresses, e.g. akka.tcp://disttrain@127.0.0.1:4053. Default: DISTTRAIN_SEED_NODES." };
        var port = new Option<int>("--port") { Description = "Akka remoting port of this node (0 = any free port).", DefaultValueFactory = _ => 0 };
        var host = new Option<string?>("--hostname") { Description = "Address this node binds and advertises (default from the config: 127.0.0.1 locally)." };
        var workers = new Option<int>("--workers") { Description = "Worker actors on this node.", DefaultValueFactory = _ => 1 };
        var ps = new Option<int>("--ps-actors") { Description = "Parameter-server shard actors on this node (with role ps).", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = "Compute threads of this process (0 = the cores divided among its workers; results do not depend on it).", DefaultValueFactory = _ => 0 };
        var simulate = new Option<string?>("--simulate-compute") { Description = $"Workers wait instead of computing and send a fixed gradient pattern of the model's size (scaling experiments, docs/scale.md): {SimulateComputeOption.Help}." };
        var (tlsCert, tlsCa, insecure) = SecurityOptions.Create();
        var env = new Option<string>("--config") { Description = "Cluster config environment: local or multinode (cluster-config/*.hocon).", DefaultValueFactory = _ => "local" };
        var cmd = new Command("node", "Run one node of a DistTrain cluster (workers and/or parameter-server shards).") { roles, seeds, port, host, workers, ps, env, threads, tlsCert, tlsCa, insecure, simulate };
        cmd.SetAction((parse, cancel) => Run(parse.GetValue(roles)!, parse.GetValue(seeds), parse.GetValue(port), parse.GetValue(host),
            parse.GetValue(workers), parse.GetValue(ps), parse.GetValue(env)!, parse.GetValue(threads), SecurityOptions.Overrides(parse, tlsCert, tlsCa, insecure), parse.GetValue(simulate), cancel));
        return cmd;
    }

    private static async Task<int> Run(string roles, string? seeds, int port, string? host, int workers, int ps, string env, int threads,
        ClusterOverrides security, string? simulateText, CancellationToken cancel)
    {
        SimulateComputeOption? simulate;
        try { simulate = SimulateComputeOption.Parse(simulateText); }
        catch (ArgumentException e) { Console.Error.WriteLine($"disttrain node: {e.Message}"); return 2; }
        var roleList = roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (string.IsNullOrWhiteSpace(seeds) && string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("DISTTRAIN_SEED_NODES")))
        {
            Console.Error.WriteLine("disttrain node: no seed nodes: give --seed-nodes akka.tcp://disttrain@HOST:PORT (or set DISTTRAIN_SEED_NODES).");
            return 2;
        }
        if (roleList.Contains("coordinator"))
        {
            Console.Error.WriteLine("The coordinator role runs inside `disttrain train ... --cluster-port P`, which holds the job; start workers and PS nodes with `disttrain node`.");
            return 2;
        }
        if (roleList.Contains("trial"))
        {
            if (roleList.Length == 1) return await Sweep.TrialNode.Run(seeds, port, host, env, security, cancel);
            Console.Error.WriteLine("disttrain node: the trial role runs a sweep's trials (docs/sweep.md) and takes no other role; start workers and PS nodes as other processes.");
            return 2;
        }
        ClusterNode node;
        try
        {
            node = ClusterNode.Start(new NodeOptions
            {
                Roles = roleList, Environment = env, Workers = workers, PsActors = ps, ComputeThreads = threads, SimulateCompute = simulate,
                Overrides = new ClusterOverrides { SeedNodes = seeds?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), Port = port == 0 ? null : port, Hostname = host }
                    .Over(security),
            });
        }
        catch (Exception e) when (e is ArgumentException or Akka.Configuration.ConfigurationException or FormatException)
        {
            Console.Error.WriteLine($"disttrain node: {e.Message}");
            return 2;
        }
        await using (node)
        {
            var orphaned = node.WhenOrphaned(node.Settings.CoordinatorLostTimeout);
            var up = node.WaitUntilUp();
            try
            {
                // The roles start before this node sees itself Up (on a loaded host that can take seconds), so one can fail first.
                await Task.WhenAny(up, orphaned, node.WhenFailed).WaitAsync(cancel);
                if (!orphaned.IsCompleted && node.Failure is null) await up;
            }
            catch (TimeoutException e) { Console.Error.WriteLine($"disttrain node: {e.Message}"); return 3; }
            catch (OperationCanceledException) { return 130; }
            if (node.Failure is not null) return await Failed(node);
            // The actor system stopped before this node was ever a member: it never joined, so it was not removed either.
            if (orphaned.IsCompleted) return up.IsCompletedSuccessfully || node.WasMember ? await Orphaned(node, orphaned.Result) : await CouldNotJoin(node);
            Console.WriteLine($"node {Akka.Cluster.Cluster.Get(node.System).SelfAddress} is up with roles {roles}");
            try { await Task.WhenAny(node.WhenLocalActorsStopped(), orphaned, node.WhenFailed).WaitAsync(cancel); }
            catch (OperationCanceledException) { Console.WriteLine("interrupted; leaving the cluster"); return 130; }
            if (node.Failure is not null) return await Failed(node);
            if (orphaned.IsCompleted && node.Refusal is null) return await Orphaned(node, orphaned.Result);
            // Downed: the actor system's coordinated shutdown stops the actors, which can be seen before the removal itself.
            if (node.Refusal is null && Akka.Actor.CoordinatedShutdown.Get(node.System).ShutdownReason is not null)
                return await Orphaned(node, ClusterNode.Removed);
            if (node.Refusal is { } why)
            {
                Console.Error.WriteLine($"disttrain node: the coordinator refused this node: {why}");
                return 4;
            }
            Console.WriteLine("node finished");
            return 0;
        }
    }

    /// <summary>
    /// Leaves with <paramref name="code"/> and says why on stderr. The actors stop first: a role that notices the lost
    /// coordinator a moment later would otherwise log after this line, and the last thing a user reads should be why the
    /// node exits and what to do.
    /// </summary>
    private static async Task<int> Exit(ClusterNode node, int code, string why)
    {
        string self = Akka.Cluster.Cluster.Get(node.System).SelfAddress.ToString();
        await node.DisposeAsync();
        Console.Out.Flush();
        Console.Error.WriteLine($"disttrain node: node {self}{why}");
        return code;
    }

    /// <summary>A worker or shard actor failed (ClusterNode.Failure): the whole node leaves, its other roles too, so that a
    /// supervisor's restart brings back a clean process.</summary>
    private static Task<int> Failed(ClusterNode node) => Exit(node, 6, $": {node.Failure}. This is a bug or a broken input, not a network fault: " +
        "the log above has the stack. The node left the cluster (its work goes to the others); restart it (a process supervisor does) and it joins again.");

    private static Task<int> Orphaned(ClusterNode node, string why) => Exit(node, 5, $" {why}. If the coordinator's process is gone, " +
        "restart the run (`disttrain train ... --resume DIR` on its machine); restart this node (a process supervisor does) and it joins again.");

    /// <summary>The node's actor system stopped before it was a member: Akka gives up on a seed whose association failed, and
    /// with TLS that is a refused certificate (the seed's log says so); without TLS, another failure at the seed's end.</summary>
    private static Task<int> CouldNotJoin(ClusterNode node)
    {
        string seeds = string.Join(", ", Akka.Cluster.Cluster.Get(node.System).Settings.SeedNodes.Select(a => a.ToString()));
        return Exit(node, 3, $" could not join the cluster at [{seeds}]: the connection to the seed failed and this node stopped before it was ever a member. " +
            (node.Settings.Tls is null
                ? "Check that --seed-nodes names the coordinator's host and port and that the seed's log says why it refused this node."
                : "With TLS this means the seed refused this node's certificate, or this node the seed's (the lines above name it): both must be signed by the same " +
                  "cluster CA. Make this node's certificate with the cluster's CA (scripts/make-certs.sh --out DIR HOST, in the DIR that holds its ca.pem and " +
                  "ca.key) and start it with --tls-cert DIR/HOST.p12 --tls-ca DIR/ca.pem."));
    }
}

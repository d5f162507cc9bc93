// `disttrain node --roles worker --seed-nodes akka.tcp://disttrain@HOST:PORT`: one node of a cluster.
// The job (model spec, data, hyper-parameters) comes from the coordinator; a worker needs only the
// dataset on its own disk. Exits when its actors finish, on Ctrl-C, when no seed node answers (3), when the coordinator
// refuses it (4), or when the cluster removes it mid-run (5: the coordinator's node is gone).
using System.CommandLine;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;

namespace DistTrain.Cli.Commands;

public sealed class NodeCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var roles = new Option<string>("--roles") { Description = "Comma-separated roles of this node: worker, ps (the coordinator runs in `disttrain train`). Default: DISTTRAIN_ROLES, else worker.",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DISTTRAIN_ROLES") is { Length: > 0 } r ? r : "worker" };
        var seeds = new Option<string?>("--seed-nodes") { Description = "Comma-separated seed node addresses, e.g. akka.tcp://disttrain@127.0.0.1:4053. Default: DISTTRAIN_SEED_NODES." };
        var port = new Option<int>("--port") { Description = "Akka remoting port of this node (0 = any free port).", DefaultValueFactory = _ => 0 };
        var host = new Option<string?>("--hostname") { Description = "Address this node binds and advertises (default from the config: 127.0.0.1 locally)." };
        var workers = new Option<int>("--workers") { Description = "Worker actors on this node.", DefaultValueFactory = _ => 1 };
        var ps = new Option<int>("--ps-actors") { Description = "Parameter-server shard actors on this node (with role ps).", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = "Compute threads of this process (0 = the cores divided among its workers; results do not depend on it).", DefaultValueFactory = _ => 0 };
        var (tlsCert, tlsCa, insecure) = SecurityOptions.Create();
        var env = new Option<string>("--config") { Description = "Cluster config environment: local or multinode (cluster-config/*.hocon).", DefaultValueFactory = _ => "local" };
        var cmd = new Command("node", "Run one node of a DistTrain cluster (workers and/or parameter-server shards).") { roles, seeds, port, host, workers, ps, env, threads, tlsCert, tlsCa, insecure };
        cmd.SetAction((parse, cancel) => Run(parse.GetValue(roles)!, parse.GetValue(seeds), parse.GetValue(port), parse.GetValue(host),
            parse.GetValue(workers), parse.GetValue(ps), parse.GetValue(env)!, parse.GetValue(threads), SecurityOptions.Overrides(parse, tlsCert, tlsCa, insecure), cancel));
        return cmd;
    }

    private static async Task<int> Run(string roles, string? seeds, int port, string? host, int workers, int ps, string env, int threads,
        ClusterOverrides security, CancellationToken cancel)
    {
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
        ClusterNode node;
        try
        {
            node = ClusterNode.Start(new NodeOptions
            {
                Roles = roleList, Environment = env, Workers = workers, PsActors = ps, ComputeThreads = threads,
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
            try { await node.WaitUntilUp().WaitAsync(cancel); }
            catch (TimeoutException e) { Console.Error.WriteLine($"disttrain node: {e.Message}"); return 3; }
            catch (OperationCanceledException) { return 130; }
            var cluster = Akka.Cluster.Cluster.Get(node.System);
            Console.WriteLine($"node {cluster.SelfAddress} is up with roles {roles}");
            // A node the cluster removes (the split-brain resolver downs the side without the coordinator) shuts its actor
            // system down; its actors never report finishing, so exit on that instead of waiting forever.
            var removed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            cluster.RegisterOnMemberRemoved(() => removed.TrySetResult());
            var finished = node.WhenLocalActorsStopped();
            try { await Task.WhenAny(finished, removed.Task, node.System.WhenTerminated).WaitAsync(cancel); }
            catch (OperationCanceledException) { Console.WriteLine("interrupted; leaving the cluster"); return 130; }
            if (removed.Task.IsCompleted || !finished.IsCompleted)
            {
                Console.Error.WriteLine($"disttrain node: node {cluster.SelfAddress} was removed from the cluster before the run ended (the coordinator's " +
                    "node stopped or became unreachable); restart the run (`disttrain train ... --resume DIR` on the coordinator's machine), then this node.");
                return 5;
            }
            if (node.Refusal is { } why)
            {
                Console.Error.WriteLine($"disttrain node: the coordinator refused this node: {why}");
                return 4;
            }
            Console.WriteLine("node finished");
            return 0;
        }
    }
}

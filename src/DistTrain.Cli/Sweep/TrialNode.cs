// `disttrain node --roles trial --seed-nodes akka.tcp://disttrain@HOST:PORT`: a machine that runs a sweep's trials
// (TrialRunnerActor) — one at a time, each a child `disttrain train --threads 1` in a temporary folder that is sent back to
// the sweep and deleted. The node joins the cluster the sweep node seeds, under the same TLS rules as any node.
// Exits 0 when the sweep says it is over, 3 when no seed answers, 5 when the sweep's node is gone, 130 on Ctrl-C.
using Akka.Actor;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;

namespace DistTrain.Cli.Sweep;

public static class TrialNode
{
    public static async Task<int> Run(string? seeds, int port, string? host, string env, ClusterOverrides security, CancellationToken cancel)
    {
        ClusterNode node;
        try
        {
            node = ClusterNode.Start(new NodeOptions
            {
                Roles = ["trial"], Environment = env,
                Overrides = new ClusterOverrides
                {
                    SeedNodes = seeds?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), Port = port == 0 ? null : port, Hostname = host,
                    Hocon = ClusterTrialRunner.DowningHocon,
                }.Over(security),
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
            var root = Path.Combine(Path.GetTempPath(), $"disttrain-trials-{Environment.ProcessId}");
            var outcome = new TrialRunnerActor.Outcome();
            var actor = node.System.ActorOf(TrialRunnerActor.Props(root, ProcessTrialRunner.ResolveDisttrain(), outcome), "trial-runner");
            Console.WriteLine($"node {Akka.Cluster.Cluster.Get(node.System).SelfAddress} is up with roles trial; trials run as child `disttrain train --threads 1` in {root}");
            try
            {
                var ended = await Task.WhenAny(outcome.Done, node.System.WhenTerminated).WaitAsync(cancel);
                if (ended == outcome.Done && outcome.Done.Result is null)
                {
                    Console.WriteLine("node finished: the sweep is over");
                    return 0;
                }
                Console.Error.WriteLine($"disttrain node: {(ended == outcome.Done ? outcome.Done.Result : ClusterNode.Removed)}; restart this runner to join the next sweep.");
                return 5;
            }
            catch (OperationCanceledException)
            {
                Console.WriteLine("interrupted; leaving the cluster");
                actor.Tell(PoisonPill.Instance); // kills a running trial's process
                return 130;
            }
            finally { try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { } }
        }
    }
}

// `disttrain train --workers N | --cluster-port P`: runs the job on the actor runtime — in this process
// (coordinator, PS shards and N worker actors) and, with --cluster-port, as the seed node that worker
// processes (`disttrain node --roles worker`) join. Prints progress and where the model went.
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Training;

namespace DistTrain.Cli.Training;

public static class ClusterRun
{
    public static int Run(TrainJob job, ModeOptions mode, string outDir, int workers, int psShards, int clusterPort, int waitWorkers, TextWriter console, CancellationToken cancel,
        string environment = "local", string? hostname = null, CheckpointOptions? checkpoints = null)
    {
        if (workers < 0) throw new ArgumentException($"--workers must be 0 or more, not {workers}.");
        if (psShards < 1) throw new ArgumentException($"--ps-shards must be at least 1, not {psShards}.");
        int expected = waitWorkers > 0 ? waitWorkers : workers;
        if (expected < 1) throw new ArgumentException("No workers: give --workers N (in this process) or --wait-workers N (worker processes that join).");
        var roles = workers > 0 ? new[] { "coordinator", "ps", "worker" } : ["coordinator", "ps"];
        var node = ClusterNode.Start(new NodeOptions
        {
            Roles = roles, Job = job, Mode = mode, Workers = workers, PsActors = psShards, PsShards = psShards, MinWorkers = expected, OutDir = outDir,
            Environment = environment,
            Overrides = clusterPort > 0 ? new ClusterOverrides { Port = clusterPort, Hostname = hostname } : new ClusterOverrides { Hostname = hostname },
            OnProgress = line => console.WriteLine(line),
            CheckpointEvery = checkpoints?.Every ?? 0, ResumeDir = checkpoints?.ResumeDir, InitFile = checkpoints?.InitFile,
        });
        try
        {
            var self = Akka.Cluster.Cluster.Get(node.System).SelfAddress;
            console.WriteLine($"cluster seed node {self}: mode {mode}, {psShards} PS shard(s), {workers} local worker(s), waiting for {expected} worker(s)");
            if (waitWorkers > workers)
                console.WriteLine($"start workers with: disttrain node --roles worker --seed-nodes {self}");
            var result = node.Completion.WaitAsync(cancel).GetAwaiter().GetResult();
            if (result.Error is not null) { console.WriteLine($"run failed: {result.Error}"); return 1; }
            console.WriteLine($"trained {result.Steps} steps; test accuracy {result.TestAccuracy:P2}, test loss {result.TestLoss:F4}");
            console.WriteLine($"model:   {result.ModelPath}");
            console.WriteLine($"metrics: {Path.Combine(outDir, "metrics.jsonl")}");
            return 0;
        }
        catch (OperationCanceledException)
        {
            console.WriteLine($"interrupted: the cluster run stops; continue it with --resume {outDir}");
            return 130;
        }
        finally { node.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }
}

/// <summary>`--checkpoint-every N` (0 = at epoch ends only, negative = never) and `--resume DIR` of `disttrain train`.</summary>
/// <param name="InitFile">`--init`: start from these weights with a fresh optimizer (cluster runs; LocalRun takes it directly).</param>
public sealed record CheckpointOptions(long Every, string? ResumeDir, string? InitFile = null);

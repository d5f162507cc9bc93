// `disttrain train --workers N | --cluster-port P`: runs the job on the actor runtime — in this process
// (coordinator, PS shards and N worker actors) and, with --cluster-port, as the seed node that worker
// processes (`disttrain node --roles worker`) join. Prints progress and where the model went.
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Training;
using DistTrain.Training;

namespace DistTrain.Cli.Training;

public static class ClusterRun
{
    public static int Run(TrainJob job, ModeOptions mode, string outDir, int workers, ShardPlacement shards, int clusterPort, int waitWorkers, TextWriter console, CancellationToken cancel,
        string environment = "local", string? hostname = null, CheckpointOptions? checkpoints = null, ClusterOverrides? security = null, bool interactive = false,
        string? standbyOf = null)
    {
        if (workers < 0) throw new ArgumentException($"--workers must be 0 or more, not {workers}.");
        bool standby = standbyOf is not null;
        if (standby)
        {
            // A standby holds no shard and no worker: what it takes over lives on the other nodes.
            if (workers > 1 || shards.LocalShards is > 0)
                throw new ArgumentException("--standby runs a standby coordinator only: drop --workers and --ps-local (shards and workers run on `disttrain node` processes).");
            if (!standbyOf!.StartsWith("akka.tcp://", StringComparison.Ordinal))
                throw new ArgumentException($"--standby {standbyOf}: give the coordinator's seed address, e.g. akka.tcp://disttrain@HOST:PORT.");
            (workers, shards) = (0, shards with { LocalShards = 0 });
        }
        else shards.Validate(clusterPort);
        int psShards = shards.Shards, psLocal = shards.Local;
        int expected = waitWorkers > 0 ? waitWorkers : workers;
        if (expected < 1 && !standby) throw new ArgumentException("No workers: give --workers N (in this process) or --wait-workers N (worker processes that join).");
        var roles = new List<string> { "coordinator" };
        if (psLocal > 0) roles.Add("ps");
        if (workers > 0) roles.Add("worker");
        var overrides = clusterPort > 0 ? new ClusterOverrides { Port = clusterPort, Hostname = hostname } : new ClusterOverrides { Hostname = hostname };
        if (standby) overrides = overrides with { SeedNodes = [standbyOf!] };
        using var view = interactive ? new ClusterProgress() : null;
        var node = ClusterNode.Start(new NodeOptions
        {
            Roles = roles.ToArray(), Job = job, Mode = mode, Workers = workers, PsActors = psLocal, PsShards = psShards, MinWorkers = expected, OutDir = outDir,
            Environment = environment,
            Overrides = overrides.Over(security ?? new()), Standby = standby,
            OnProgress = line =>
            {
                ClusterRunFaults.Count(line);
                view?.Report(line);
                if (view is not { IsLive: true }) console.WriteLine(line);
            },
            CheckpointEvery = checkpoints?.Every ?? 0, ResumeDir = checkpoints?.ResumeDir, InitFile = checkpoints?.InitFile, AllowUnverified = checkpoints?.AllowUnverified ?? false,
            VerifyFraction = checkpoints?.VerifyFraction ?? 0,
        });
        bool stopped = false;
        // The split-brain resolver downed this node (it was cut off from the majority of the coordinator-eligible nodes): the
        // side that kept running has the run, or nobody does; this process must not hang on as a second coordinator.
        var removed = node.WhenOrphaned(node.Settings.CoordinatorLostTimeout);
        try
        {
            var self = Akka.Cluster.Cluster.Get(node.System).SelfAddress;
            if (standby)
            {
                console.WriteLine($"standby coordinator {self}: takes the run of {standbyOf} over if that node dies");
                var handover = node.Handover!;
                if (Task.WhenAny(handover.Told, handover.Ended, node.Completion, removed).WaitAsync(cancel).GetAwaiter().GetResult() == handover.Told)
                    // Only now can it take over: before, it knows neither the job's key nor where to watch.
                    console.WriteLine($"standby: the coordinator told it job {handover.Told.Result.JobId}; watching its process");
                var first = Task.WhenAny(node.Completion, handover.Ended, removed).WaitAsync(cancel).GetAwaiter().GetResult();
                if (first == removed && !node.Completion.IsCompleted) return Removed();
                if (first == handover.Ended && !node.Completion.IsCompleted)
                {
                    if (handover.Ended.Result is { } why) { console.WriteLine($"standby: {why}"); return 1; }
                    console.WriteLine("standby: the coordinator finished the run; nothing to take over");
                    return 0;
                }
            }
            else console.WriteLine($"cluster seed node {self}: mode {mode}, {psShards} PS shard(s) ({psLocal} in this process), {workers} local worker(s), waiting for {expected} worker(s)");
            if (standby) { }
            else if (psLocal < psShards)
                console.WriteLine($"start parameter-server nodes for the other {psShards - psLocal} shard(s) with: disttrain node --roles ps --ps-actors K --seed-nodes {self}");
            if (waitWorkers > workers)
                console.WriteLine($"start workers with: disttrain node --roles worker --seed-nodes {self}");
            DistTrain.Cluster.Messages.RuntimeMessages.RunCompleted? Wait() => Task.WhenAny(node.Completion, removed).WaitAsync(cancel).GetAwaiter().GetResult() == removed && !node.Completion.IsCompleted
                ? null : node.Completion.GetAwaiter().GetResult();
            if ((view is null ? Wait() : view.Live(Wait)) is not { } result) return Removed();
            if (result.Error is not null) { console.WriteLine($"run failed: {result.Error}"); return 1; }
            console.WriteLine($"trained {result.Steps} steps; test accuracy {result.TestAccuracy:P2}, test loss {result.TestLoss:F4}");
            console.WriteLine($"model:   {result.ModelPath}");
            console.WriteLine($"metrics: {Path.Combine(outDir, "metrics.jsonl")}");
            // The coordinator writes the last steps' lines once their reports are in, at the latest when it stops: plot after that.
            Stop();
            Plotting.RunPlots.AfterRun(outDir, console);
            return 0;
        }
        catch (OperationCanceledException)
        {
            console.WriteLine($"interrupted: the cluster run stops; continue it with --resume {outDir}");
            return 130;
        }
        finally { Stop(); }

        int Removed()
        {
            string self = Akka.Cluster.Cluster.Get(node.System).SelfAddress.ToString();
            Stop();
            console.WriteLine($"node {self} {removed.Result}. It was cut off from the other coordinator-eligible nodes: if they were the " +
                $"majority, one of them took the run over; otherwise continue it with `disttrain train ... --resume {outDir}`.");
            return 5;
        }

        void Stop()
        {
            if (stopped) return;
            stopped = true;
            node.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}

public static partial class ClusterRunFaults
{
    /// <summary>Counts the faults a coordinator's progress line tells of (RunMeters.Faults): a worker lost mid-run, a checkpoint not written.</summary>
    public static void Count(string line)
    {
        if (WorkerLost().IsMatch(line)) DistTrain.Cluster.Telemetry.RunMeters.Fault("worker_lost");
        else if (line.Contains(" NOT written", StringComparison.Ordinal)) DistTrain.Cluster.Telemetry.RunMeters.Fault("checkpoint_failed");
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^worker \S+ left; \d+ micro-batch")]
    private static partial System.Text.RegularExpressions.Regex WorkerLost();
}

/// <summary>`--ps-shards S --ps-local L`: the flat vector is cut into S key ranges; this process hosts L of them (all by
/// default) and `disttrain node --roles ps` processes that join take the rest.</summary>
public sealed record ShardPlacement(int Shards, int? LocalShards = null)
{
    public int Local => LocalShards ?? Shards;

    public void Validate(int clusterPort)
    {
        if (Shards < 1) throw new ArgumentException($"--ps-shards must be at least 1, not {Shards}.");
        if (Local < 0 || Local > Shards)
            throw new ArgumentException($"--ps-local must be between 0 and --ps-shards ({Shards}), not {Local}.");
        if (Local < Shards && clusterPort <= 0)
            throw new ArgumentException($"--ps-local {Local} leaves {Shards - Local} shard(s) to parameter-server nodes, which need a port to join: give --cluster-port P.");
    }
}

/// <summary>`--checkpoint-every N` (0 = at epoch ends only, negative = never) and `--resume DIR` of `disttrain train`.</summary>
/// <param name="InitFile">`--init`: start from these weights with a fresh optimizer (cluster runs; LocalRun takes it directly).</param>
/// <param name="VerifyFraction">--verify-fraction (the coordinator's determinism audit; CoordinatorSettings.VerifyFraction).</param>
public sealed record CheckpointOptions(long Every, string? ResumeDir, string? InitFile = null, bool AllowUnverified = false, double VerifyFraction = 0);

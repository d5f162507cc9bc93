// Converts between the trainer's TrainJob (what `disttrain train` resolves) and the wire's
// JobDescription (what the coordinator hands to PS shards and workers).
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Training.Steps;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Runtime;

public static class JobMapping
{
    public static JobDescription ToDescription(TrainJob job, string jobId, int parameterCount, ModeOptions? mode = null)
    {
        mode ??= ModeOptions.Sync;
        mode.Validate();
        var spec = job.Spec();
        return new JobDescription(jobId, spec.CanonicalJson, spec.Hash, parameterCount,
            new DatasetInfo(job.Dataset, 0, 0, ""),
            new Hyperparameters(
                new OptimizerSpec(job.Optimizer, job.Lr, 0, 0, 0, 0, job.WeightDecay ?? float.NaN),
                job.Schedule, 0, job.BatchSize, job.MicroBatch <= 0 ? job.BatchSize : job.MicroBatch, job.Seed,
                job.Epochs, mode.Mode, mode.Staleness, mode.LocalSteps, job.MaxSteps, job.Augment, job.ClipNorm)
                {
                    Compression = CheckCompression(job, mode),
                    OuterOptimizer = mode.Outer.Kind, OuterLr = mode.Outer.Lr, OuterMomentum = mode.Outer.Momentum,
                }); // DataKey: each recipient's own listener key, filled in by the coordinator (JobKeys)
    }

    public static TrainJob ToTrainJob(JobDescription d) => new()
    {
        ModelSpecJson = d.SpecJson,
        Dataset = d.Dataset.Spec,
        Epochs = d.Hyper.Epochs,
        BatchSize = d.Hyper.BatchSize,
        MicroBatch = d.Hyper.MicroBatchSize,
        Optimizer = d.Hyper.Optimizer.Name,
        Lr = d.Hyper.Optimizer.LearningRate,
        Schedule = d.Hyper.Schedule,
        WeightDecay = float.IsNaN(d.Hyper.Optimizer.WeightDecay) ? null : d.Hyper.Optimizer.WeightDecay,
        Seed = (int)d.Hyper.Seed,
        MaxSteps = d.Hyper.MaxSteps,
        Augment = d.Hyper.Augment,
        ClipNorm = d.Hyper.ClipNorm,
        Compression = d.Hyper.Compression,
    };

    /// <summary>The job's --compression in its canonical name; refused (with the fix) in a mode it does not serve.</summary>
    public static string CheckCompression(TrainJob job, ModeOptions mode)
    {
        var c = GradientCodec.Parse(job.Compression);
        if (c != GradientCompression.None && mode.Mode != TrainingMode.Sync)
            throw new ArgumentException($"--compression {GradientCodec.Name(c)} works with --mode sync only, where each micro-batch gradient is " +
                                        $"rounded the same way in one process and on the cluster; use --mode sync or --compression none.");
        return GradientCodec.Name(c);
    }

    /// <summary>The run's mode as the job carries it to every node.</summary>
    public static ModeOptions ModeOf(JobDescription d) => new(d.Hyper.Mode, d.Hyper.Staleness, d.Hyper.LocalSteps)
    {
        Outer = new OuterOptimizer(d.Hyper.OuterOptimizer, d.Hyper.OuterLr, d.Hyper.OuterMomentum),
    };

    /// <summary>Micro-batches per step: every step has the same count because the plan drops the last partial batch.</summary>
    public static int MicroBatchesPerStep(JobDescription d) =>
        (d.Hyper.BatchSize + d.Hyper.MicroBatchSize - 1) / d.Hyper.MicroBatchSize;

    /// <summary>The sender id of shard <paramref name="shard"/>'s pushes when <paramref name="owner"/> (ShardInfo.OwnerAddress) holds
    /// it: a worker accepts a range's parameters from that sender only.</summary>
    public static int ShardSenderId(string owner, int shard) => SenderIdOf($"{owner}/ps{shard}");

    /// <summary>The coordinator's data-plane id: its listener's (checkpoint frames) and its restore connections' sender id. A
    /// coordinator that takes over has the same id, so the shards' keys toward it stay valid.</summary>
    public static readonly int CoordinatorSenderId = SenderIdOf("coordinator");

    /// <summary>The sender id of the coordinator's idle watch connection to each shard.</summary>
    public static readonly int CoordinatorWatchSenderId = SenderIdOf("coordinator-watch");

    /// <summary>The sender id of a standby coordinator's idle watch connection to the coordinator's listener.</summary>
    public static readonly int StandbyWatchSenderId = SenderIdOf("standby-watch");

    /// <summary>A stable positive id for data-plane frames from a worker or shard name.</summary>
    public static int SenderIdOf(string name)
    {
        uint h = 2166136261;
        foreach (var ch in name) h = (h ^ ch) * 16777619;
        return (int)(h & 0x7fffffff);
    }
}

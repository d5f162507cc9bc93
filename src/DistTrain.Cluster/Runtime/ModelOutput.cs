// End of a cluster run: puts the collected flat parameter vector (and buffers) into a model replica, writes
// model.safetensors atomically (spec, step, seed in its metadata) and evaluates on the test split.
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Runtime;

public static class ModelOutput
{
    /// <param name="buffers">BatchNorm running statistics folded by shard 0 (null: the model's initial buffers).</param>
    /// <param name="metadata">Extra checkpoint metadata (the run's training mode).</param>
    public static RunCompleted SaveAndEvaluate(TrainJob job, float[] parameters, long steps, string outDir, StepLog log,
        float[]? buffers = null, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var spec = job.Spec();
        var model = spec.Build((ulong)(uint)job.Seed);
        if (model.Store.Values.Length != parameters.Length)
            throw new InvalidOperationException($"Collected {parameters.Length} parameters but the model has {model.Store.Values.Length}.");
        parameters.AsSpan().CopyTo(model.Store.Values);
        if (buffers is not null)
        {
            if (buffers.Length != model.Store.Buffers.Length)
                throw new InvalidOperationException($"Collected {buffers.Length} buffer values but the model has {model.Store.Buffers.Length}.");
            buffers.AsSpan().CopyTo(model.Store.Buffers); // BatchNorm running statistics, folded by shard 0
        }
        Directory.CreateDirectory(outDir);
        var path = Path.Combine(outDir, "model.safetensors");
        var (train, test) = DistTrain.Data.Sources.DatasetSpec.Parse(job.Dataset).Load();
        int stepsPerEpoch = DistTrain.Data.Plans.EpochPlan.CountSteps(train.Count, job.BatchSize);
        int epochs = stepsPerEpoch == 0 ? 0 : (int)(steps / stepsPerEpoch);
        Checkpoint.Save(path, model.Store, new CheckpointInfo(spec.CanonicalJson, steps, epochs, job.Seed)
        {
            Extra = metadata ?? new Dictionary<string, string>(),
        });
        var trainer = job.CreateTrainer(train.Count, model);
        var eval = trainer.Evaluate(test);
        log.Epoch(new EpochMetrics(Math.Max(epochs - 1, 0), steps, double.NaN, double.NaN, eval.Loss, eval.Accuracy, 0, 0));
        return new RunCompleted(steps, path, eval.Accuracy, eval.Loss, null);
    }
}

// The end of every run, one process or a cluster: model.safetensors (spec, step, epoch, seed, job, mode in its
// metadata) and the optimizer state beside it, through one writer, so the same training gives the same files byte for
// byte whatever ran it; for a cluster run also puts the collected flat vector into a replica and evaluates it.
using DistTrain.Training.Checkpoints;
using DistTrain.Nn;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Runtime;

public static class ModelOutput
{
    /// <param name="buffers">BatchNorm running statistics folded by shard 0 (null: the model's initial buffers).</param>
    /// <param name="metadata">Extra checkpoint metadata (the run's training mode).</param>
    /// <summary>Writes DIR/model.safetensors and, when there is optimizer state, DIR/model.optimizer.safetensors; returns the weights' path.</summary>
    public static string Save(string outDir, TrainJob job, ParameterStore store, IReadOnlyList<(string Name, float[] Data)> optimizerState,
        string optimizerDescription, long steps, int epoch, IReadOnlyDictionary<string, string> runMetadata)
    {
        Directory.CreateDirectory(outDir);
        var path = Path.Combine(outDir, "model.safetensors");
        CheckpointSeries.SaveWeights(path, job, store, steps, epoch, runMetadata);
        var optimizerPath = Checkpoint.OptimizerPathFor(path);
        if (optimizerState.Count > 0) Checkpoint.SaveOptimizerState(optimizerPath, optimizerState, steps, optimizerDescription);
        else File.Delete(optimizerPath); // local-sgd keeps no optimizer state: leave none from an earlier run
        return path;
    }

    public static RunCompleted SaveAndEvaluate(TrainJob job, float[] parameters, long steps, string outDir, StepLog log,
        float[]? buffers, IReadOnlyDictionary<string, string> metadata, IReadOnlyList<(string Name, float[] Data)> optimizerState, string optimizerDescription)
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
        var (train, test) = DistTrain.Data.Sources.DatasetSpec.Parse(job.Dataset).Load();
        int stepsPerEpoch = DistTrain.Data.Plans.EpochPlan.CountSteps(train.Count, job.BatchSize);
        int epochs = stepsPerEpoch == 0 ? 0 : (int)(steps / stepsPerEpoch);
        var path = Save(outDir, job, model.Store, optimizerState, optimizerDescription, steps, epochs, metadata);
        var trainer = job.CreateTrainer(train.Count, model);
        var eval = trainer.Evaluate(test);
        log.Epoch(new EpochMetrics(Math.Max(epochs - 1, 0), steps, double.NaN, double.NaN, eval.Loss, eval.Accuracy, 0, 0));
        return new RunCompleted(steps, path, eval.Accuracy, eval.Loss, null);
    }
}

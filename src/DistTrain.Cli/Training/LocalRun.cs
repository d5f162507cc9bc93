// One-process training run behind `disttrain train` (workers = 1): loads the data, builds the model
// (optionally from --init weights), trains with live progress, and writes DIR/model.safetensors,
// the optimizer state beside it and DIR/metrics.jsonl. Saving is shared with the cluster runtime.
using System.Globalization;
using System.Text.Json;
using DistTrain.Training.Checkpoints;
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;
using DistTrain.Nn.Training;
using DistTrain.Training;

namespace DistTrain.Cli.Training;

public static class LocalRun
{
    /// <summary>Loads the job's dataset, reshaped to the model's input when only the shape differs.</summary>
    public static (Dataset Train, Dataset Test) LoadData(string datasetSpec, ModelSpec spec)
    {
        var (train, test) = DatasetSpec.Parse(datasetSpec).Load();
        return (Fit(train, spec), Fit(test, spec));

        static Dataset Fit(Dataset d, ModelSpec spec)
        {
            if (d.SampleShape.AsSpan().SequenceEqual(spec.Input)) return d;
            int len = spec.Input.Aggregate(1, (a, b) => a * b);
            if (len != d.SampleLength)
                throw new ArgumentException($"Dataset {d.Name} has samples of shape {Tensors.Tensor.ShapeString(d.SampleShape)} " +
                                            $"but model {spec.Name} takes {Tensors.Tensor.ShapeString(spec.Input)}; pick a matching --model or --dataset.");
            return d.WithSampleShape(spec.Input);
        }
    }

    /// <summary>A one-process run is a sync run: its files say so, as a cluster's do.</summary>
    private static readonly IReadOnlyDictionary<string, string> RunMetadata = Cluster.Training.ModeOptions.Sync.Metadata();

    /// <summary>Writes the weights and the optimizer state beside them with the cluster's writer (ModelOutput.Save).</summary>
    public static (string Weights, string Optimizer) Save(string dir, TrainJob job, ParameterStore store, Optimizer optimizer, long step, int epoch)
    {
        var weights = Cluster.Runtime.ModelOutput.Save(dir, job, store, optimizer.State, optimizer.ToString(), step, epoch, RunMetadata);
        return (weights, Checkpoint.OptimizerPathFor(weights));
    }

    /// <summary>Puts a checkpoint's weights, buffers and optimizer state into the trainer and moves it to the checkpoint's step.</summary>
    private static void Resume(Trainer trainer, ResumePoint point)
    {
        var store = trainer.Model.Store;
        point.Values.CopyTo(store.Values, 0);
        point.Buffers.CopyTo(store.Buffers, 0);
        var state = trainer.Optimizer.State;
        for (int i = 0; i < state.Count; i++) point.OptimizerState[i].Data.CopyTo(state[i].Data, 0);
        trainer.Resume(point.Step, point.Epoch);
    }

    public static int Run(TrainJob job, string outDir, string? initFile, TextWriter console, bool interactive, CancellationToken cancel,
        CheckpointOptions? checkpoints = null)
    {
        var spec = job.Spec();
        var (train, test) = LoadData(job.Dataset, spec);
        var model = spec.Build((ulong)(uint)job.Seed);
        if (initFile is not null)
        {
            var info = Checkpoint.LoadInto(model.Store, initFile);
            console.WriteLine($"init: weights from {initFile} (step {info.Step}, epoch {info.Epoch})");
        }
        var trainer = job.CreateTrainer(train.Count, model);
        if (checkpoints?.ResumeDir is { } resumeDir) Resume(trainer, Cluster.Runtime.ClusterNode.FindResumePoint(resumeDir, job, console.WriteLine, checkpoints.AllowUnverified));
        console.WriteLine(model.Summary());
        console.WriteLine($"data: {train.Name} ({train.Count:N0} train, {test.Count:N0} test samples of {Tensors.Tensor.ShapeString(train.SampleShape)})");
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"job: epochs={job.Epochs} batch={job.BatchSize} micro-batch={trainer.Options.EffectiveMicroBatch} optimizer={trainer.Optimizer} lr={job.Lr} " +
            $"schedule={job.Schedule} augment={job.Augment} clip-norm={job.ClipNorm} compression={job.Compression} seed={job.Seed} max-steps={job.MaxSteps} threads={Tensors.Compute.Threads} spec-hash={spec.Hash[..12]}"));

        Directory.CreateDirectory(outDir);
        var started = DateTime.UtcNow;
        EpochMetrics last = default;
        int stepsPerEpoch = Data.Plans.EpochPlan.CountSteps(train.Count, job.BatchSize);
        long every = checkpoints?.Every ?? 0;
        using (var metrics = new MetricsLog(Path.Combine(outDir, "metrics.jsonl"), append: checkpoints?.ResumeDir is not null))
        {
            var progress = new TrainProgress(console, interactive, job.Epochs);
            trainer.StepCompleted = m =>
            {
                metrics.Step(m); progress.Step(m);
                long done = m.Step + 1; // the same rule as the cluster coordinator: every epoch end, and every N steps
                if (every >= 0 && (done % stepsPerEpoch == 0 || (every > 0 && done % every == 0)))
                    CheckpointSeries.Write(outDir, job, model.Store, trainer.Optimizer.State, trainer.Optimizer.ToString(), done, (int)(done / stepsPerEpoch), RunMetadata);
            };
            trainer.EpochCompleted = m => { metrics.Epoch(m); progress.Epoch(m); };
            progress.Run(() => last = trainer.Fit(train, test, cancel));
        }
        var (weights, opt) = Save(outDir, job, model.Store, trainer.Optimizer, trainer.Step, trainer.Epoch);
        // Fit evaluated after its last (possibly partial) epoch; evaluate again only if it never did.
        var final = last.Step == trainer.Step && !double.IsNaN(last.TestLoss)
            ? new EvalResult(last.TestLoss, last.TestAccuracy, test.Count) : trainer.Evaluate(test);
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: {trainer.Step} steps, {trainer.Epoch} epochs in {(DateTime.UtcNow - started).TotalSeconds:F1} s; test loss {final.Loss:F4}, accuracy {final.Accuracy:P2}"));
        console.WriteLine($"model:     {Path.GetFullPath(weights)}");
        console.WriteLine($"optimizer: {Path.GetFullPath(opt)}");
        console.WriteLine($"metrics:   {Path.GetFullPath(Path.Combine(outDir, "metrics.jsonl"))}");
        Plotting.RunPlots.AfterRun(outDir, console);
        return cancel.IsCancellationRequested ? 130 : 0;
    }
}

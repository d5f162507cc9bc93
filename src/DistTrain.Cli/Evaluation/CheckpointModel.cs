// A trained model read back from its checkpoint: the spec from its metadata, the weights, and the dataset
// it was trained on (from the job metadata), with data reshaped to the model's input. Used by eval,
// predict and plot.
using System.Text.Json;
using DistTrain.Training.Checkpoints;
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;

namespace DistTrain.Cli.Evaluation;

public sealed record CheckpointModel(string File, CheckpointInfo Info, ModelSpec Spec, Sequential Model)
{
    /// <summary>Loads <paramref name="file"/> (a model.safetensors, or a run folder holding one).</summary>
    public static CheckpointModel Load(string file)
    {
        if (Directory.Exists(file)) file = Path.Combine(file, "model.safetensors");
        if (!System.IO.File.Exists(file)) throw new ArgumentException($"--checkpoint {file} does not exist; give the model.safetensors that `disttrain train` wrote.");
        var info = Checkpoint.ReadInfo(file);
        var spec = ModelSpec.Parse(info.ModelSpec);
        var model = spec.Build();
        Checkpoint.LoadInto(model.Store, file);
        return new CheckpointModel(file, info, spec, model);
    }

    /// <summary>The dataset spec the run was trained on: from the checkpoint's job metadata, else from the newest
    /// checkpoint of its run folder (a cluster run's final model may lack it); null when neither records one.</summary>
    public string? TrainedOn => DatasetOf(Info) ?? DatasetOfCheckpoints(Path.GetDirectoryName(Path.GetFullPath(File))!);

    /// <summary>The dataset spec in a checkpoint's job metadata, or null.</summary>
    public static string? DatasetOf(CheckpointInfo info)
    {
        if (!info.Extra.TryGetValue("job", out var job)) return null;
        try { return JsonSerializer.Deserialize<TrainJob>(job)?.Dataset; }
        catch (JsonException) { return null; }
    }

    /// <summary>The dataset recorded by the newest checkpoint under RUN/checkpoint/ (a cluster run's final model may not record it).</summary>
    public static string? DatasetOfCheckpoints(string runDir)
    {
        foreach (var (_, dir) in DistTrain.Training.Checkpoints.CheckpointSeries.List(runDir))
        {
            var file = Path.Combine(dir, "model.safetensors");
            if (!System.IO.File.Exists(file)) continue;
            try
            {
                if (DatasetOf(Checkpoint.ReadInfo(file)) is { } d) return d;
            }
            catch (CheckpointException) { }
        }
        return null;
    }

    public bool IsClassifier => Spec.Loss == "cross_entropy" && Spec.Output.Length == 1;

    /// <summary>The classes the model outputs (the last layer's width) for a classifier, else 0.</summary>
    public int Classes => IsClassifier ? Spec.Output[0] : 0;

    /// <summary>Loads a dataset spec's (train, test) splits shaped for this model.</summary>
    public (Dataset Train, Dataset Test) LoadData(string datasetSpec)
    {
        var (train, test) = DatasetSpec.Parse(datasetSpec).Load();
        return (Fit(train), Fit(test));
    }

    /// <summary>The same samples viewed in the model's input shape (784 values as (1,28,28)); an error naming both shapes when the sizes differ.</summary>
    public Dataset Fit(Dataset d)
    {
        if (d.SampleShape.AsSpan().SequenceEqual(Spec.Input)) return d;
        int len = Spec.Input.Aggregate(1, (a, b) => a * b);
        if (len != d.SampleLength)
            throw new ArgumentException($"Dataset {d.Name} has samples of shape {Tensor.ShapeString(d.SampleShape)} but model {Spec.Name} takes " +
                                        $"{Tensor.ShapeString(Spec.Input)}; give data of the model's shape.");
        return d.WithSampleShape(Spec.Input);
    }

    /// <summary>Human-readable class names where the dataset has them (Fashion-MNIST), else null.</summary>
    public static IReadOnlyList<string>? ClassNames(string? datasetSpec) =>
        datasetSpec is not null && DatasetSpec.Parse(datasetSpec).Kind == "fashion-mnist" ? FashionMnist.ClassNames : null;
}

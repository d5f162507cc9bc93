// The confusion matrix of a classifier checkpoint on a dataset split: what `eval` prints and `plot` draws.
using DistTrain.Nn.Evaluation;

namespace DistTrain.Cli.Evaluation;

public static class RunEvaluation
{
    /// <summary>Predicts every sample of the split and counts (true, predicted) pairs.</summary>
    public static ConfusionMatrix Confusion(CheckpointModel m, DistTrain.Data.Dataset data)
    {
        if (!m.IsClassifier) throw new ArgumentException($"Model {m.Spec.Name} is not a classifier (loss {m.Spec.Loss}); it has no confusion matrix.");
        if (data.Classes > m.Classes)
            throw new ArgumentException($"Dataset {data.Name} has {data.Classes} classes but model {m.Spec.Name} outputs {m.Classes}.");
        var predicted = Predictions.Classes(m.Model, data.Features, data.Count);
        var matrix = new ConfusionMatrix(m.Classes);
        matrix.AddRange(data.Labels, predicted);
        return matrix;
    }

    /// <summary>The test-split confusion matrix of RUN/model.safetensors when it is a classifier whose dataset
    /// loads here; null otherwise, with the reason in <paramref name="skipped"/>.</summary>
    /// <param name="dataset">The dataset spec to evaluate on when the run's checkpoints do not record one.</param>
    public static ConfusionMatrix? TryConfusion(string runDir, out IReadOnlyList<string>? classNames, out string? skipped, string? dataset = null)
    {
        classNames = null;
        var file = Path.Combine(runDir, "model.safetensors");
        if (!File.Exists(file)) { skipped = $"{runDir} has no model.safetensors"; return null; }
        try
        {
            var m = CheckpointModel.Load(file);
            if (!m.IsClassifier) { skipped = $"{m.Spec.Name} is not a classifier"; return null; }
            dataset = m.TrainedOn ?? dataset;
            if (dataset is null) { skipped = $"{file} does not record its dataset; give --dataset"; return null; }
            classNames = CheckpointModel.ClassNames(dataset);
            skipped = null;
            return Confusion(m, m.LoadData(dataset).Test);
        }
        catch (Exception e) when (e is ArgumentException or IOException or DistTrain.Data.DataException or DistTrain.Nn.Checkpoints.CheckpointException)
        {
            skipped = e.Message;
            return null;
        }
    }

    public static ConfusionMatrix? TryConfusion(string runDir, out IReadOnlyList<string>? classNames) => TryConfusion(runDir, out classNames, out _);

}

// `disttrain eval`: rebuilds the model from a checkpoint's own spec metadata, loads its weights and
// prints loss and accuracy on a dataset split, and for a classifier its per-class accuracy and confusion
// matrix (with --json: one object with all of them).
using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DistTrain.Cli.Evaluation;
using DistTrain.Cli.Training;
using DistTrain.Nn.Evaluation;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class EvalCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "A model.safetensors written by `disttrain train` (or its run folder).", Required = true };
        var dataset = new Option<string?>("--dataset", "-d") { Description = "Dataset spec (default: the one the checkpoint was trained on)." };
        var split = new Option<string>("--split") { Description = "test or train.", DefaultValueFactory = _ => "test" };
        var threads = new Option<int>("--threads") { Description = "Compute threads.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: accuracy, loss, samples, per_class_accuracy, confusion_matrix, ..." };
        var cmd = new Command("eval", "Evaluate a checkpoint: loss, accuracy, per-class accuracy and confusion matrix on a dataset.") { checkpoint, dataset, split, threads, json };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            int t = r.GetValue(threads);
            if (t < 1) throw new ArgumentException($"--threads must be at least 1, not {t}.");
            var which = r.GetValue(split)!.ToLowerInvariant();
            if (which is not ("test" or "train")) throw new ArgumentException($"--split must be test or train, not {which}.");
            Compute.Threads = t;

            var m = CheckpointModel.Load(r.GetValue(checkpoint)!);
            var datasetSpec = r.GetValue(dataset) ?? m.TrainedOn ??
                throw new ArgumentException($"Checkpoint {m.File} does not record its dataset; give --dataset.");
            var (train, test) = m.LoadData(datasetSpec);
            var data = which == "test" ? test : train;
            var evaluator = new Trainer(m.Model, m.Spec.CreateLoss(), OptimizerFactory.Create("sgd", m.Model.ParameterCount), _ => 0f, new TrainerOptions());
            var result = evaluator.Evaluate(data);
            var confusion = m.IsClassifier ? RunEvaluation.Confusion(m, data) : null;
            var names = CheckpointModel.ClassNames(datasetSpec);
            if (r.GetValue(json))
            {
                var o = new Dictionary<string, object?>
                {
                    ["accuracy"] = double.IsNaN(result.Accuracy) ? null : result.Accuracy,
                    ["loss"] = result.Loss,
                    ["samples"] = result.Samples,
                    ["model"] = m.Spec.Name,
                    ["dataset"] = datasetSpec,
                    ["split"] = which,
                    ["step"] = m.Info.Step,
                    ["epoch"] = m.Info.Epoch,
                    ["spec_hash"] = m.Spec.Hash,
                };
                if (confusion is not null)
                {
                    o["per_class_accuracy"] = confusion.PerClassAccuracy().Select(a => double.IsNaN(a) ? (double?)null : a).ToArray();
                    o["class_samples"] = Enumerable.Range(0, confusion.Classes).Select(confusion.Support).ToArray();
                    if (names is not null) o["class_names"] = names;
                    o["confusion_matrix"] = confusion.Rows();
                }
                Console.WriteLine(JsonSerializer.Serialize(o));
            }
            else
            {
                Console.WriteLine($"checkpoint: {m.File} ({m.Spec.Name}, step {m.Info.Step}, epoch {m.Info.Epoch})");
                Console.WriteLine($"dataset:    {datasetSpec} [{which}], {result.Samples:N0} samples");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss:       {result.Loss:F4}"));
                Console.WriteLine(double.IsNaN(result.Accuracy) ? "accuracy:   - (regression)" :
                    string.Create(CultureInfo.InvariantCulture, $"accuracy:   {result.Accuracy:P2}"));
                if (confusion is not null) Console.Write(Describe(confusion, names));
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>Per-class accuracy, then the confusion matrix (rows true, columns predicted), as aligned text.</summary>
    public static string Describe(ConfusionMatrix m, IReadOnlyList<string>? names)
    {
        var sb = new StringBuilder();
        string Name(int c) => names is not null && c < names.Count ? $"{c} {names[c]}" : c.ToString(CultureInfo.InvariantCulture);
        int nameWidth = Math.Max(5, Enumerable.Range(0, m.Classes).Max(c => Name(c).Length));
        sb.AppendLine();
        sb.AppendLine($"{"class".PadRight(nameWidth)}  samples  accuracy");
        var acc = m.PerClassAccuracy();
        for (int c = 0; c < m.Classes; c++)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{Name(c).PadRight(nameWidth)}  {m.Support(c),7}  {(double.IsNaN(acc[c]) ? "-" : (100 * acc[c]).ToString("F2", CultureInfo.InvariantCulture) + "%"),8}"));
        sb.AppendLine();
        sb.AppendLine("confusion matrix (rows: true class, columns: predicted class)");
        int w = Math.Max(4, m.Rows().SelectMany(r => r).Max().ToString(CultureInfo.InvariantCulture).Length + 1);
        sb.Append(new string(' ', 4));
        for (int p = 0; p < m.Classes; p++) sb.Append(p.ToString(CultureInfo.InvariantCulture).PadLeft(w));
        sb.AppendLine();
        for (int a = 0; a < m.Classes; a++)
        {
            sb.Append(a.ToString(CultureInfo.InvariantCulture).PadLeft(3)).Append(' ');
            for (int p = 0; p < m.Classes; p++) sb.Append(m[a, p].ToString(CultureInfo.InvariantCulture).PadLeft(w));
            sb.AppendLine();
        }
        return sb.ToString();
    }
}

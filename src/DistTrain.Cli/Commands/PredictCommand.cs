// `disttrain predict --checkpoint F --input FILE`: labels the samples of an IDX image file, a CSV or a PNG
// image with a trained classifier: class, its name where the dataset has names, and its probability;
// with a label column in the CSV also the accuracy. --json prints one object.
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DistTrain.Cli.Evaluation;
using DistTrain.Cli.Training;
using DistTrain.Data.Sources;
using DistTrain.Nn.Evaluation;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class PredictCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "A classifier's model.safetensors written by `disttrain train` (or its run folder).", Required = true };
        var input = new Option<string>("--input", "-i") { Description = "Samples: an IDX image file (plain or .gz), a CSV with the training columns, or a PNG image of the model's size.", Required = true };
        var label = new Option<string?>("--label") { Description = "CSV label column, if present (default: the one the model was trained with, else 'label')." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: predictions (sample, class, name, probability, label) and accuracy." };
        var threads = new Option<int>("--threads") { Description = "Compute threads.", DefaultValueFactory = _ => 1 };
        var cmd = new Command("predict", "Label samples from an IDX, CSV or PNG file with a trained classifier.") { checkpoint, input, label, json, threads };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            int t = r.GetValue(threads);
            if (t < 1) throw new ArgumentException($"--threads must be at least 1, not {t}.");
            Compute.Threads = t;
            var m = CheckpointModel.Load(r.GetValue(checkpoint)!);
            if (!m.IsClassifier)
                throw new ArgumentException($"Model {m.Spec.Name} is not a classifier (loss {m.Spec.Loss}, output {Tensor.ShapeString(m.Spec.Output)}); predict labels samples with classifiers.");
            var trainedOn = m.TrainedOn;
            var labelColumn = r.GetValue(label) ?? (trainedOn is not null && DatasetSpec.Parse(trainedOn) is { Kind: "csv" } ds ? ds.Options.GetValueOrDefault("label", "label") : "label");
            var samples = PredictInput.Read(r.GetValue(input)!, m.Spec, labelColumn);
            var outputs = Predictions.Outputs(m.Model, samples.Features, samples.Count);
            var names = CheckpointModel.ClassNames(trainedOn);
            bool outputsAreProbabilities = m.Spec.Layers[^1].Type == "softmax";
            int k = m.Classes, correct = 0;
            var rows = new List<Dictionary<string, object?>>();
            for (int s = 0; s < samples.Count; s++)
            {
                var y = outputs.AsSpan(s * k, k);
                int c = Predictions.ArgMax(y);
                double p = outputsAreProbabilities ? y[c] : Softmax(y, c);
                var row = new Dictionary<string, object?> { ["sample"] = s, ["class"] = c };
                if (names is not null) row["name"] = names[c];
                row["probability"] = Math.Round(p, 6);
                if (samples.Labels is { } l) { row["label"] = l[s]; if (l[s] == c) correct++; }
                rows.Add(row);
            }
            double? accuracy = samples.Labels is null ? null : (double)correct / samples.Count;
            if (r.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["input"] = samples.Source, ["format"] = samples.Kind, ["samples"] = samples.Count, ["model"] = m.Spec.Name,
                    ["accuracy"] = accuracy, ["predictions"] = rows,
                }));
                return 0;
            }
            Console.WriteLine($"{"sample",6}  {"class",-16}  probability{(samples.Labels is null ? "" : "  label")}");
            foreach (var row in rows)
            {
                var cls = names is null ? $"{row["class"]}" : $"{row["class"]} {row["name"]}";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{row["sample"],6}  {cls,-16}  {100 * (double)row["probability"]!,10:F2}%{(row.TryGetValue("label", out var lb) ? $"  {lb}" : "")}"));
            }
            if (accuracy is { } a)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"accuracy: {100 * a:F2}% ({correct} of {samples.Count})"));
            return 0;
        }));
        return cmd;
    }

    /// <summary>softmax(y)[c], computed stably (shifted by the maximum) in double.</summary>
    static double Softmax(ReadOnlySpan<float> y, int c)
    {
        double max = double.NegativeInfinity, sum = 0;
        foreach (var v in y) max = Math.Max(max, v);
        foreach (var v in y) sum += Math.Exp(v - max);
        return Math.Exp(y[c] - max) / sum;
    }
}

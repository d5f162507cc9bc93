// `disttrain eval`: rebuilds the model from a checkpoint's own spec metadata, loads its weights and
// prints loss and accuracy on a dataset split (with --json: one object with accuracy, loss, samples).
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DistTrain.Cli.Training;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;
using DistTrain.Nn.Training;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class EvalCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "A model.safetensors written by `disttrain train`.", Required = true };
        var dataset = new Option<string?>("--dataset", "-d") { Description = "Dataset spec (default: the one the checkpoint was trained on)." };
        var split = new Option<string>("--split") { Description = "test or train.", DefaultValueFactory = _ => "test" };
        var threads = new Option<int>("--threads") { Description = "Compute threads.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: accuracy, loss, samples, ..." };
        var cmd = new Command("eval", "Evaluate a checkpoint: loss and accuracy on a dataset.") { checkpoint, dataset, split, threads, json };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var file = r.GetValue(checkpoint)!;
            if (!File.Exists(file)) throw new ArgumentException($"--checkpoint {file} does not exist.");
            int t = r.GetValue(threads);
            if (t < 1) throw new ArgumentException($"--threads must be at least 1, not {t}.");
            var which = r.GetValue(split)!.ToLowerInvariant();
            if (which is not ("test" or "train")) throw new ArgumentException($"--split must be test or train, not {which}.");
            Compute.Threads = t;

            var info = Checkpoint.ReadInfo(file);
            var spec = ModelSpec.Parse(info.ModelSpec);
            var model = spec.Build();
            Checkpoint.LoadInto(model.Store, file);
            var datasetSpec = r.GetValue(dataset) ?? JobDataset(info) ??
                throw new ArgumentException($"Checkpoint {file} does not record its dataset; give --dataset.");
            var (train, test) = LocalRun.LoadData(datasetSpec, spec);
            var data = which == "test" ? test : train;
            var evaluator = new Trainer(model, spec.CreateLoss(), OptimizerFactory.Create("sgd", model.ParameterCount), _ => 0f, new TrainerOptions());
            var result = evaluator.Evaluate(data);
            if (r.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["accuracy"] = double.IsNaN(result.Accuracy) ? null : result.Accuracy,
                    ["loss"] = result.Loss,
                    ["samples"] = result.Samples,
                    ["model"] = spec.Name,
                    ["dataset"] = datasetSpec,
                    ["split"] = which,
                    ["step"] = info.Step,
                    ["epoch"] = info.Epoch,
                    ["spec_hash"] = spec.Hash,
                }));
            }
            else
            {
                Console.WriteLine($"checkpoint: {file} ({spec.Name}, step {info.Step}, epoch {info.Epoch})");
                Console.WriteLine($"dataset:    {datasetSpec} [{which}], {result.Samples:N0} samples");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss:       {result.Loss:F4}"));
                Console.WriteLine(double.IsNaN(result.Accuracy) ? "accuracy:   - (regression)" :
                    string.Create(CultureInfo.InvariantCulture, $"accuracy:   {result.Accuracy:P2}"));
            }
            return 0;
        }));
        return cmd;
    }

    private static string? JobDataset(CheckpointInfo info)
    {
        if (!info.Extra.TryGetValue("job", out var job)) return null;
        try { return JsonSerializer.Deserialize<TrainJob>(job)?.Dataset; }
        catch (JsonException) { return null; }
    }
}

// `disttrain dbn`: a deep belief net (Hinton, Osindero & Teh 2006) the greedy way, in one process — each RBM
// trained by CD-k on the hidden probabilities of the one below (all training images, labels unused), then the
// stack's weights and hidden biases start an MLP (dense + sigmoid per RBM, then a dense classifier) fine-tuned on
// the first --labels labelled images; the same MLP from random initialisation is fine-tuned beside it with the
// same data, seed and recipe, and both test accuracies are printed.
using System.CommandLine;
using System.Globalization;
using DistTrain.Cli.Training;
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;
using DistTrain.Nn.Training;
using DistTrain.Training;

namespace DistTrain.Cli.Commands;

public sealed class DbnCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var dataset = new Option<string>("--dataset", "-d") { Description = "Image dataset (fashion-mnist | idx:DIR | ...).", DefaultValueFactory = _ => "fashion-mnist" };
        var hidden = new Option<string>("--hidden") { Description = "Hidden units of each RBM, bottom first, comma-separated.", DefaultValueFactory = _ => "256,128" };
        var k = new Option<int>("--k") { Description = "Gibbs steps of CD-k.", DefaultValueFactory = _ => 1 };
        var pretrainEpochs = new Option<int>("--pretrain-epochs") { Description = "Epochs of CD-k per RBM over all training images.", DefaultValueFactory = _ => 1 };
        var labels = new Option<int>("--labels") { Description = "Labelled training images for fine-tuning (the first N).", DefaultValueFactory = _ => 1000 };
        var epochs = new Option<int>("--epochs") { Description = "Fine-tuning epochs (Adam 1e-3, batch 32).", DefaultValueFactory = _ => 30 };
        var seed = new Option<int>("--seed") { Description = "Seed of the weights, plans and Gibbs draws.", DefaultValueFactory = _ => 1 };
        var cmd = new Command("dbn", "Deep belief net: greedy CD pre-training of stacked RBMs, then fine-tuning as an MLP on few labels, beside the same MLP from random initialisation.")
            { dataset, hidden, k, pretrainEpochs, labels, epochs, seed };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var sizes = r.GetValue(hidden)!.Split(',', StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"--hidden \"{s}\" is not a positive integer (e.g. 256,128).")).ToArray();
            var (train, test) = DatasetSpec.Parse(r.GetValue(dataset)!).Load();
            var result = Run(train, test, sizes, r.GetValue(k), r.GetValue(pretrainEpochs), r.GetValue(labels), r.GetValue(epochs), r.GetValue(seed), Console.Out);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"test accuracy: pre-trained {result.Pretrained:P2} | random init {result.Random:P2} ({r.GetValue(labels)} labels)"));
            return 0;
        }));
        return cmd;
    }

    public sealed record DbnResult(double Pretrained, double Random, Sequential PretrainedModel);

    public static DbnResult Run(Dataset train, Dataset test, int[] hidden, int k, int pretrainEpochs, int labels, int epochs, int seed, TextWriter log)
    {
        if (hidden.Length == 0) throw new ArgumentException("A DBN needs at least one RBM (--hidden).");
        if (k < 1 || pretrainEpochs < 1 || epochs < 1) throw new ArgumentException("--k, --pretrain-epochs and --epochs must be at least 1.");
        if (labels < 1 || labels > train.Count) throw new ArgumentException($"--labels must be between 1 and the {train.Count} training images, not {labels}.");
        var features = train.Flattened();
        var stack = new List<Rbm>();
        foreach (var h in hidden)
        {
            var spec = ModelSpec.Parse($$"""{"input":[{{features.SampleLength}}],"loss":"none","layers":[{"type":"rbm","hidden":{{h}},"k":{{k}}}]}""");
            var model = spec.Build((ulong)(uint)(seed + stack.Count));
            var options = new TrainerOptions { Epochs = pretrainEpochs, BatchSize = 64, Seed = seed + stack.Count };
            var trainer = new Trainer(model, spec.CreateLoss(), OptimizerFactory.Create("momentum", model.ParameterCount), _ => 0.05f, options);
            var last = trainer.Fit(features);
            var rbm = (Rbm)model.Layers[0];
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"pre-trained {rbm}: free-energy gap {last.TrainLoss:F3}"));
            stack.Add(rbm);
            features = HiddenFeatures(rbm, features);
        }

        var mlp = MlpSpec(train.SampleShape, hidden, Math.Max(train.Classes, 2));
        var subset = train.Subset(Enumerable.Range(0, labels).ToArray());
        var pretrained = mlp.Build((ulong)(uint)seed);
        for (int i = 0; i < stack.Count; i++)
        {
            var dense = (Dense)pretrained.Layers.First(l => l.Name == $"l{i + 1}");
            stack[i].Weight.Value.Span.CopyTo(dense.Weight.Value.Span);
            stack[i].HiddenBias.Value.Span.CopyTo(dense.Bias!.Value.Span);
        }
        double a = FineTune(pretrained, mlp, subset, test, epochs, seed);
        double b = FineTune(mlp.Build((ulong)(uint)seed), mlp, subset, test, epochs, seed);
        return new DbnResult(a, b, pretrained);
    }

    /// <summary>flatten, then per RBM a dense layer `l{i}` (its weight and hidden bias) and a sigmoid, then `out`.</summary>
    public static ModelSpec MlpSpec(int[] input, int[] hidden, int classes)
    {
        var layers = new List<string> { """{"type":"flatten"}""" };
        for (int i = 0; i < hidden.Length; i++)
            layers.Add($$"""{"type":"dense","out":{{hidden[i]}},"name":"l{{i + 1}}"},{"type":"sigmoid","name":"s{{i + 1}}"}""");
        layers.Add($$"""{"type":"dense","out":{{classes}},"name":"out"}""");
        return ModelSpec.Parse($$"""{"name":"dbn","input":[{{string.Join(",", input)}}],"loss":"cross_entropy","layers":[{{string.Join(",", layers)}}]}""");
    }

    /// <summary>Each sample's p(h=1|v) under <paramref name="rbm"/>: the next RBM's visible data.</summary>
    public static Dataset HiddenFeatures(Rbm rbm, Dataset data)
    {
        var f = new float[data.Count * rbm.Hidden];
        for (int s = 0; s < data.Count; s++)
            rbm.HiddenProbabilities(data.Features.AsSpan(s * data.SampleLength, data.SampleLength), f.AsSpan(s * rbm.Hidden, rbm.Hidden));
        return new Dataset($"{data.Name}>rbm{rbm.Hidden}", [rbm.Hidden], f, data.Labels, data.Classes);
    }

    private static double FineTune(Sequential model, ModelSpec spec, Dataset train, Dataset test, int epochs, int seed)
    {
        var options = new TrainerOptions { Epochs = epochs, BatchSize = Math.Min(32, train.Count), Seed = seed };
        var trainer = new Trainer(model, spec.CreateLoss(), OptimizerFactory.Create("adam", model.ParameterCount), _ => 1e-3f, options);
        trainer.Fit(train);
        return trainer.Evaluate(test).Accuracy;
    }
}

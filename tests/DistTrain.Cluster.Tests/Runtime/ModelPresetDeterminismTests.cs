// DESIGN contract 2 for the presets whose step is unusual: conv_autoencoder (transposed convolutions), vae (a
// random draw per sample and a KL term outside the output loss), perceptron (the perceptron criterion), esn's
// readout trained by SGD (its reservoir is buffers built from the seed on every worker) and rbm (Gibbs chains keyed
// per sample; the CD statistics are the gradient the shard sums) and gan (latents keyed per sample, both players'
// gradients per micro-batch, two optimizer groups). After
// K sync steps the weights are bit-identical for the plain Trainer, 1 worker and 3 workers (in-process workers,
// messages through the serializer, gradients through the TCP data plane).
using System.Security.Cryptography;
using DistTrain.Cluster.Runtime;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class ModelPresetDeterminismTests
{
    private const int Steps = 6;

    private static TrainJob Job(string preset, string data, int batch, int micro)
    {
        var d = Presets.Defaults(preset);
        if (d.Optimizer == "ridge") d = d with { Optimizer = "adam", Lr = 1e-2f };   // the closed form runs in one process
        return new()
        {
            ModelSpecJson = Presets.Spec(preset).CanonicalJson, Dataset = data, Epochs = 2, BatchSize = batch, MicroBatch = micro,
            Optimizer = d.Optimizer, Lr = d.Lr, Seed = 5, MaxSteps = Steps,
        };
    }

    [Theory]
    [InlineData("conv_autoencoder", 24, 8)]
    [InlineData("vae", 24, 8)]
    [InlineData("perceptron", 6, 2)]
    [InlineData("esn", 6, 2)]
    [InlineData("rbm", 24, 8)]
    [InlineData("gan", 24, 8)]
    public async Task OneAndThreeWorkersGiveTheTrainersWeights(string preset, int batch, int micro)
    {
        var data = preset switch
        {
            "perceptron" => "synthetic:separable:n=120:margin=0.02",
            "esn" => "synthetic:mackey-glass:n=36:test-n=2",
            _ => TestData.WriteIdx(120, 20),
        };
        var job = Job(preset, data, batch, micro);
        await PresetDeterminism.AssertTrainerOneAndThreeWorkersAgree(job);
    }
}

// DESIGN contract 2 for the vit and mamba presets: after a few sync steps the weights are bit-identical
// for the one-process Trainer, 1 worker and 3 workers (messages through the serializer, gradients through
// the TCP data plane), as InProcessDeterminismTests checks for the CNN.
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
public class SequencePresetDeterminismTests
{
    private const int Steps = 4;

    [Theory]
    [InlineData("vit")]
    [InlineData("mamba")]
    public async Task PresetWeightsAreBitIdenticalForOneAndThreeWorkers(string preset)
    {
        var job = new TrainJob
        {
            ModelSpecJson = Presets.Spec(preset).CanonicalJson, Dataset = TestData.WriteIdx(96, 16),
            Epochs = 1, BatchSize = 24, MicroBatch = 8, Optimizer = "adamw", Lr = 2e-3f, Seed = 5, MaxSteps = Steps,
        };
        await PresetDeterminism.AssertTrainerOneAndThreeWorkersAgree(job);
    }
}

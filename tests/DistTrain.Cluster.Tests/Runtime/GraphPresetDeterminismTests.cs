// DESIGN contract 2 for the graph-shaped presets. gcn: target nodes are ordinary samples (each packed with its 2-hop
// neighbourhood), dropout drawn per (seed, step, micro-batch, layer); inception: a model graph of branches and a
// concat inside one layer. After a few sync steps the weights are bit-identical for the one-process Trainer, 1 worker
// and 3 workers.
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
public class GraphPresetDeterminismTests
{
    private const int Steps = 4;

    [Fact]
    public async Task Gcn_weights_are_bit_identical_for_one_and_three_workers()
    {
        const string data = "graph:sbm:n=90:classes=3:labels=8:features=6:seed=1";
        var (train, test) = DatasetSpec.Parse(data).Load();
        var spec = Presets.Spec("gcn").FitData(train.SampleShape, Math.Max(train.Classes, test.Classes));
        var job = new TrainJob
        {
            ModelSpecJson = spec.CanonicalJson, Dataset = data,
            Epochs = 2, BatchSize = 12, MicroBatch = 4, Optimizer = "adam", Lr = 1e-2f, WeightDecay = 5e-4f, Seed = 5, MaxSteps = Steps,
        };
        await PresetDeterminism.AssertTrainerOneAndThreeWorkersAgree(job);
    }

    [Fact]
    public async Task Inception_weights_are_bit_identical_for_one_and_three_workers()
    {
        var job = new TrainJob
        {
            ModelSpecJson = Presets.Spec("inception").CanonicalJson, Dataset = TestData.WriteIdx(96, 16),
            Epochs = 1, BatchSize = 24, MicroBatch = 8, Optimizer = "adam", Lr = 2e-3f, Seed = 5, MaxSteps = Steps,
        };
        await PresetDeterminism.AssertTrainerOneAndThreeWorkersAgree(job);
    }
}

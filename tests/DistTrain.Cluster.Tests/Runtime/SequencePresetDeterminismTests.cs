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

    private static async Task<(float[] Values, string Sha)> RunCluster(TrainJob job, int workers)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-run-").FullName;
        var result = await ClusterNode.RunLocal(job, workers, 1, dir, serializeMessages: true).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(result.Error);
        Assert.Equal(Steps, result.Steps);
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, result.ModelPath!);
        return (model.Store.Values, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(result.ModelPath!))));
    }

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
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);

        var one = await RunCluster(job, 1);
        var three = await RunCluster(job, 3);

        Assert.Equal(trainer.Model.Store.Values, one.Values);
        Assert.Equal(one.Sha, three.Sha);
        Assert.NotEqual(job.Spec().Build((ulong)job.Seed).Store.Values, one.Values);   // training moved the weights
    }
}

// DESIGN contract 2 for a preset: after the job's steps the weights of the one-process Trainer, a 1-worker and a
// 3-worker cluster (in-process workers, messages through the serializer, gradients through the TCP data plane) are
// bit-identical, and training moved them. Shared by the preset determinism test classes.
using System.Security.Cryptography;
using DistTrain.Cluster.Runtime;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

internal static class PresetDeterminism
{
    public static async Task AssertTrainerOneAndThreeWorkersAgree(TrainJob job)
    {
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);
        var reference = trainer.Model.Store.Values.ToArray();

        var one = await RunCluster(job, 1);
        var three = await RunCluster(job, 3);

        Assert.Equal(reference, one.Values);
        Assert.Equal(one.Sha, three.Sha);
        Assert.NotEqual(job.Spec().Build((ulong)job.Seed).Store.Values, one.Values); // training moved the weights
    }

    private static async Task<(float[] Values, string Sha)> RunCluster(TrainJob job, int workers)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-run-").FullName;
        var result = await ClusterNode.RunLocal(job, workers, 1, dir, serializeMessages: true).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(result.Error);
        Assert.Equal(job.MaxSteps, result.Steps);
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, result.ModelPath!);
        return (model.Store.Values, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(result.ModelPath!))));
    }
}

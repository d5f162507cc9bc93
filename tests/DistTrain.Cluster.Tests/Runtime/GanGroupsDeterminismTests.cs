// The gan preset with its two optimizer groups at different learning rates (generator ×0.5, discriminator ×2) on two
// parameter-server shards, whose boundary falls inside the generator's group: each shard's optimizer steps its part
// of a group with that group's rate, so 3 workers and 2 shards give the one-process Trainer's weights bit for bit.
using System.Security.Cryptography;
using DistTrain.Cluster.Runtime;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class GanGroupsDeterminismTests
{
    [Fact]
    public async Task TwoShardsSplittingAGroupGiveTheTrainersWeights()
    {
        var json = Presets.Json("gan").Replace("\"latent\":64,", "\"latent\":64,\"generator_lr_scale\":0.5,\"discriminator_lr_scale\":2,");
        var spec = ModelSpec.Parse(json);
        var job = new TrainJob
        {
            ModelSpecJson = spec.CanonicalJson, Dataset = TestData.WriteIdx(96, 16), Epochs = 1, BatchSize = 24, MicroBatch = 8,
            Optimizer = "adam:beta1=0.5", Lr = 1e-3f, Seed = 3, MaxSteps = 4,
        };
        var groups = job.ParameterGroups();
        Assert.Equal([0.5f, 2f], groups.Select(g => g.LrScale));
        Assert.True(groups[0].End > spec.Build().ParameterCount / 2);   // two shards cut the generator's group

        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);
        var reference = trainer.Model.Store.Values.ToArray();

        var dir = Directory.CreateTempSubdirectory("disttrain-run-").FullName;
        var result = await ClusterNode.RunLocal(job, 3, 2, dir, serializeMessages: true).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(result.Error);
        Assert.Equal(job.MaxSteps, result.Steps);
        var model = spec.Build(0);
        Checkpoint.LoadInto(model.Store, result.ModelPath!);
        Assert.Equal(reference, model.Store.Values);

        // The factors matter: the same run with both groups at ×1 ends elsewhere.
        var plain = (job with { ModelSpecJson = Presets.Spec("gan").CanonicalJson }).CreateTrainer(train.Count);
        plain.Fit(train);
        Assert.NotEqual(reference, plain.Model.Store.Values);
    }
}

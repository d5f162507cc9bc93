// JobMapping: every hyper-parameter that decides the weights survives TrainJob → JobDescription → TrainJob,
// including the augmentation, which a worker must apply exactly as the one-process trainer does.
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

public class JobMappingTests
{
    [Theory]
    [InlineData("none")]
    [InlineData("crop:2,flip")]
    [InlineData("flip")]
    public void A_job_survives_the_round_trip_through_its_description(string augment)
    {
        var job = new TrainJob
        {
            ModelSpecJson = Presets.Spec("resnet").CanonicalJson, Dataset = "fashion-mnist", Epochs = 8, BatchSize = 128,
            MicroBatch = 32, Optimizer = "adamw", Lr = 2e-3f, Schedule = "cosine", WeightDecay = 0.05f, Seed = 3,
            MaxSteps = 900, Augment = augment,
        };
        var back = JobMapping.ToTrainJob(JobMapping.ToDescription(job, "job-1", 77_754));
        Assert.Equal(job, back);
        Assert.Equal(augment, back.TrainerOptions().Augmentation.ToString());
    }

    [Fact]
    public void The_description_carries_the_augmentation_in_its_hyperparameters()
    {
        var job = new TrainJob { ModelSpecJson = Presets.Spec("cnn").CanonicalJson, Dataset = "fashion-mnist", Augment = "crop:3" };
        Assert.Equal("crop:3", JobMapping.ToDescription(job, "j", 1).Hyper.Augment);
    }

    [Theory]
    [InlineData("int8", "int8")]
    [InlineData("BF16", "bf16")]
    [InlineData("none", "none")]
    public void The_description_carries_the_gradient_compression(string given, string canonical)
    {
        var job = new TrainJob { ModelSpecJson = Presets.Spec("cnn").CanonicalJson, Dataset = "fashion-mnist", Compression = given };
        var d = JobMapping.ToDescription(job, "j", 1);
        Assert.Equal(canonical, d.Hyper.Compression);
        Assert.Equal(canonical, JobMapping.ToTrainJob(d).Compression);
    }

    [Theory]
    [InlineData("async")]
    [InlineData("local-sgd")]
    public void Compression_outside_sync_mode_is_refused_with_the_fix(string mode)
    {
        var job = new TrainJob { ModelSpecJson = Presets.Spec("cnn").CanonicalJson, Dataset = "fashion-mnist", Compression = "int8" };
        var e = Assert.Throws<ArgumentException>(() => JobMapping.ToDescription(job, "j", 1, ModeOptions.Parse(mode, null, null)));
        Assert.Contains("--compression int8 works with --mode sync only", e.Message);
        Assert.Contains("--compression none", e.Message);
    }

    [Fact]
    public void The_description_carries_the_local_sgd_outer_optimizer_to_every_node()
    {
        var job = new TrainJob { ModelSpecJson = Presets.Spec("cnn").CanonicalJson, Dataset = "fashion-mnist" };
        var mode = ModeOptions.Parse("local-sgd", null, 50, OuterOptimizer.Parse("nesterov", 0.5f, 0.8f));
        var d = JobMapping.ToDescription(job, "j", 1, mode);
        Assert.Equal(mode, JobMapping.ModeOf(d));
        Assert.Equal(new OuterOptimizer("nesterov", 0.5f, 0.8f), JobMapping.ModeOf(d).Outer);
        Assert.Equal(OuterOptimizer.Plain, JobMapping.ModeOf(JobMapping.ToDescription(job, "j", 1, ModeOptions.Parse("local-sgd", null, 4))).Outer);
    }
}

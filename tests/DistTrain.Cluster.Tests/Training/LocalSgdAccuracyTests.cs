// Issue 17's local-sgd accuracy test on a task that tells the modes apart: two noisy spirals (a 2-64-64-2 ReLU MLP needs
// many well-made steps to separate them; no mode reaches 100%), 8 chunks of 8 samples per round, Adam inside. Sync is the one-process
// Trainer (the cluster's bits, DESIGN contract 2); local-sgd runs the runtime's own pieces (LocalSgdChunk on one replica,
// ParameterShard summing the chunks in order, the outer optimizer) that LocalSgdDeterminismTests holds bit for bit
// against the whole runtime. Plain averaging of 8 noisy local trajectories moves less than a sync step does and trails
// sync; DiLoCo's outer Nesterov momentum recovers it to within a point.
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Models;
using DistTrain.Training;
using DistTrain.Training.Steps;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cluster.Tests.Training;

public class LocalSgdAccuracyTests(ITestOutputHelper output)
{
    private const string Mlp = """
        {"name":"spiral-mlp","input":[2],"loss":"cross_entropy","layers":[
          {"type":"dense","out":64},{"type":"relu"},{"type":"dense","out":64},{"type":"relu"},{"type":"dense","out":2}]}
        """;

    // 1024 samples / 64 = 16 steps per epoch, 1,600 steps: 200 rounds of 8 chunks × 8 local steps.
    private static TrainJob Job(int seed) => new()
    {
        ModelSpecJson = ModelSpec.Parse(Mlp).CanonicalJson,
        Dataset = "synthetic:spirals:n=1024:test-n=1024:noise=0.05:seed=3",
        Epochs = 100, BatchSize = 64, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Schedule = "constant", Seed = seed,
    };

    private static double Sync(TrainJob job, Dataset train, Dataset test)
    {
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);
        return trainer.Evaluate(test).Accuracy;
    }

    private static double LocalSgd(TrainJob job, Dataset train, Dataset test, ModeOptions mode)
    {
        int chunks = job.BatchSize / job.MicroBatch;
        long planSteps = job.TotalSteps(train.Count);
        var model = job.Spec().Build((ulong)job.Seed);
        var trainer = job.CreateTrainer(train.Count, model);
        var runner = new LocalSgdChunk(trainer, train, mode, job.Seed, job.BatchSize, job.MicroBatch, planSteps, job.CreateSchedule(train.Count));
        var theta = model.Store.Values.ToArray();
        var shard = new ParameterShard(0, new KeyRange(0, theta.Length), theta, OuterOptimizer.ForShard(job, mode, theta.Length, chunks), _ => 0f, chunks);
        for (long round = 0; round < mode.Units(planSteps); round++)
        {
            shard.BeginStep(round, chunks);
            for (int c = 0; c < chunks; c++)
            {
                shard.Values.CopyTo(model.Store.Values, 0);
                runner.Run(round, c);
                Assert.Equal(GradientDrop.None, shard.Aggregator.Accept(round, c, model.Store.Grads));
            }
            Assert.True(shard.TryApply());
        }
        shard.Values.CopyTo(model.Store.Values, 0);
        return trainer.Evaluate(test).Accuracy;
    }

    [Theory]
    [InlineData(7)]
    [InlineData(8)]
    public void OuterNesterovBringsLocalSgdWithinAPointOfSyncWherePlainAveragingTrails(int seed)
    {
        var job = Job(seed);
        var (train, test) = DatasetSpec.Parse(job.Dataset).Load();
        var local = new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 8);
        double sync = Sync(job, train, test!);
        double plain = LocalSgd(job, train, test!, local);
        double nesterov = LocalSgd(job, train, test!, local with { Outer = OuterOptimizer.Parse("nesterov", null, null) });
        output.WriteLine($"seed {seed}: sync {sync:P2}, local-sgd H=8 plain averaging {plain:P2}, outer Nesterov (0.7, 0.9) {nesterov:P2}");
        Assert.True(sync > 0.95, $"sync reached only {sync:P2}; the task should be learnt");
        Assert.True(plain < sync - 0.02, $"plain averaging {plain:P2} vs sync {sync:P2}: the task no longer tells the modes apart");
        Assert.True(Math.Abs(nesterov - sync) <= 0.01, $"outer Nesterov {nesterov:P2} vs sync {sync:P2}");
    }
}

// DESIGN contract 2 in one process: after K sync steps the weights are bit-identical for the plain
// Trainer, 1 worker, 3 workers, and 3 workers with 2 PS shards; messages go through the serializer
// (serialize-messages on) and gradients through the TCP data plane. With crop+flip augmentation too:
// the workers learn it from the job description and draw the same augmented micro-batches.
using System.Security.Cryptography;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Runtime;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class InProcessDeterminismTests
{
    private static TrainJob Job(string data, string augment = "none") => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 2, BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Seed = 11, MaxSteps = 10,
        Augment = augment, Schedule = "warmup:3+cosine", // a rate that changes every step: a step off by one on a shard shows
    };

    // Gradients sent during the backward in frames of ≥ 16 floats: every layer with parameters gets its own frame(s).
    private const string SmallChunks = "disttrain.data-plane.gradient-chunk-floats = 16";
    private const string NoChunks = "disttrain.data-plane.gradient-chunk-floats = 0";

    private static async Task<(float[] Values, string Sha)> RunCluster(TrainJob job, int workers, int shards, string? hocon = null)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-run-").FullName;
        var result = await ClusterNode.RunLocal(job, workers, shards, dir, serializeMessages: true, hocon: hocon).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(result.Error);
        Assert.Equal(10, result.Steps);
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, result.ModelPath!);
        return (model.Store.Values, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(result.ModelPath!))));
    }

    /// <summary>The first of <paramref name="count"/> consecutive ports that are free now.</summary>
    internal static int FreePortRange(int count)
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            int first = Random.Shared.Next(20000, 60000);
            var held = new List<System.Net.Sockets.TcpListener>();
            try
            {
                for (int i = 0; i < count; i++)
                {
                    var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, first + i);
                    l.Start();
                    held.Add(l);
                }
                return first;
            }
            catch (System.Net.Sockets.SocketException) { }
            finally { foreach (var l in held) l.Stop(); }
        }
        throw new InvalidOperationException($"no {count} consecutive free ports found");
    }

    [Fact]
    public void DataPlaneListenersTakeTheirSlotOfTheConfiguredPortRange()
    {
        int first = FreePortRange(4);
        var endpoints = NodeEndpoints.Loopback with { Port = first, PortSlot = 3, Key = DataPlaneKey.Create() };
        using var server = endpoints.Listen(new RecordingHandler(1));
        Assert.Equal(first + 3, server.Port);
        using var any = (endpoints with { Port = 0 }).Listen(new RecordingHandler(1)); // port 0: any free port
        Assert.NotEqual(0, any.Port);
    }

    [Fact]
    public async Task WeightsAreBitIdenticalForAnyWorkerAndShardCount()
    {
        var job = Job(TestData.WriteIdx(200, 50));
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);
        var reference = trainer.Model.Store.Values.ToArray();

        var one = await RunCluster(job, 1, 1, NoChunks);
        var three = await RunCluster(job, 3, 1);
        var sharded = await RunCluster(job, 3, 2);
        // With a fixed data-plane port the node's six listeners (coordinator, 2 shards, 3 workers) take P..P+5.
        var chunked = await RunCluster(job, 3, 2, SmallChunks + $"\ndisttrain.data-plane.port = {FreePortRange(6)}");

        Assert.Equal(reference, one.Values);
        Assert.Equal(one.Sha, three.Sha);
        Assert.Equal(one.Sha, sharded.Sha);
        Assert.Equal(one.Sha, chunked.Sha);
        var initial = job.Spec().Build((ulong)job.Seed).Store.Values;
        Assert.NotEqual(initial, one.Values); // training moved the weights
    }

    [Fact]
    public async Task ClippedRunOnTheClusterMatchesTheOneProcessTrainerBitForBit()
    {
        // --clip-norm needs the global norm over every shard's range: each shard sends its exact share, the coordinator
        // merges them, so 3 workers and 2 shards clip with the bits one process computes over the whole vector.
        var job = Job(TestData.WriteIdx(200, 50)) with { ClipNorm = 0.05f, Schedule = "warmup:3+cosine" };
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        var norms = new List<double>();
        trainer.StepCompleted = m => norms.Add(m.GradNorm);
        trainer.Fit(train);
        Assert.Contains(norms, n => n > 0.05); // the threshold bit: some steps were really clipped
        var sharded = await RunCluster(job, 3, 2);
        Assert.Equal(trainer.Model.Store.Values, sharded.Values);
        var unclipped = await RunCluster(job with { ClipNorm = 0 }, 3, 2);
        Assert.NotEqual(sharded.Sha, unclipped.Sha);
    }

    [Fact]
    public async Task AugmentedWeightsMatchTheOneProcessTrainerForThreeWorkersAndTwoShards()
    {
        var data = TestData.WriteIdx(200, 50);
        var job = Job(data, "crop:2,flip");
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);
        var reference = trainer.Model.Store.Values.ToArray();
        var plain = Job(data).CreateTrainer(train.Count);
        plain.Fit(train);

        var sharded = await RunCluster(job, 3, 2);

        Assert.Equal(reference, sharded.Values);
        Assert.NotEqual(plain.Model.Store.Values, sharded.Values); // the workers did augment
    }

    [Fact]
    public async Task BatchNormModelIsBitIdenticalWhenGradientsGoInChunks()
    {
        // BatchNorm: each micro-batch's batch statistics must reach shard 0 before the first chunk of its gradient.
        var job = Job(TestData.WriteIdx(160, 40)) with
        {
            ModelSpecJson = ModelSpec.Parse("""
                {"name":"bn-cnn","input":[1,28,28],"loss":"cross_entropy","layers":[
                  {"type":"conv2d","out":4,"kernel":3,"padding":1},{"type":"batchnorm2d"},{"type":"relu"},{"type":"maxpool2d","kernel":2},
                  {"type":"flatten"},{"type":"dense","out":16},{"type":"batchnorm1d"},{"type":"relu"},{"type":"dense","out":10}]}
                """).CanonicalJson,
        };
        var whole = await RunCluster(job, 2, 2, NoChunks);
        var chunked = await RunCluster(job, 2, 2, SmallChunks);
        Assert.Equal(whole.Sha, chunked.Sha);
        Assert.NotEqual(job.Spec().Build((ulong)job.Seed).Store.Values, chunked.Values);
    }
}

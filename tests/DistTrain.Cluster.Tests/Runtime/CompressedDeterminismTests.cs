// DESIGN contract 2 with --compression: each worker encodes its micro-batch gradient (GradientCodec) and the shards
// decode it before the ordered sum, so the weights after K sync steps are bit-identical for the one-process Trainer
// (which rounds each micro-batch gradient the same way), 1 worker with whole frames, and 3 workers with 2 shards and
// gradients streamed in small chunks (int8 frames that begin inside a 256-value block, a shard boundary inside a block).
// bytes_sent in metrics.jsonl counts the encoded bytes.
using System.Security.Cryptography;
using System.Text.Json;
using DistTrain.Cluster.Runtime;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Training;
using DistTrain.Training.Steps;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class CompressedDeterminismTests
{
    private const int Steps = 4, Batch = 32, Micro = 8;

    private static TrainJob Job(string data, string compression) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 2, BatchSize = Batch, MicroBatch = Micro, Optimizer = "adam", Lr = 1e-2f, Seed = 11, MaxSteps = Steps,
        Schedule = "warmup:3+cosine", Compression = compression,
    };

    private static async Task<(float[] Values, string Sha, double[] BytesSent)> RunCluster(TrainJob job, int workers, int shards, string hocon)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-run-").FullName;
        var result = await ClusterNode.RunLocal(job, workers, shards, dir, serializeMessages: true, hocon: hocon).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(result.Error);
        Assert.Equal(Steps, result.Steps);
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, result.ModelPath!);
        var bytes = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("kind").GetString() == "step").Select(e => e.GetProperty("bytes_sent").GetDouble()).ToArray();
        return (model.Store.Values, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(result.ModelPath!))), bytes);
    }

    /// <summary>The one-process Trainer's weights with <paramref name="job"/>'s compression and without any.</summary>
    private static (float[] Compressed, float[] Plain) OneProcess(string data, TrainJob job)
    {
        var (train, _) = DatasetSpec.Parse(data).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);
        var plain = (job with { Compression = "none" }).CreateTrainer(train.Count);
        plain.Fit(train);
        return (trainer.Model.Store.Values.ToArray(), plain.Model.Store.Values.ToArray());
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("fp16")]
    [InlineData("int8")]
    public async Task CompressedSyncRunsAreBitIdenticalForOneProcessOneAndThreeWorkers(string compression)
    {
        var data = TestData.WriteIdx(200, 50);
        var job = Job(data, compression);
        var (reference, plain) = OneProcess(data, job);

        var one = await RunCluster(job, 1, 1, "disttrain.data-plane.gradient-chunk-floats = 0");
        var three = await RunCluster(job, 3, 2, "disttrain.data-plane.gradient-chunk-floats = 16");

        Assert.Equal(reference, one.Values);
        Assert.Equal(one.Sha, three.Sha);
        Assert.NotEqual(plain, reference); // the rounding changed the run
        Assert.NotEqual(job.Spec().Build((ulong)job.Seed).Store.Values, reference); // and it trained

        // One worker, one shard, whole frames: each micro-batch sends exactly the encoded size of the whole vector.
        long perMicroBatch = GradientCodec.EncodedBytes(GradientCodec.Parse(compression), 0, reference.Length);
        Assert.Equal(Steps, one.BytesSent.Length);
        Assert.All(one.BytesSent, b => Assert.Equal(Batch / Micro * perMicroBatch, b));
    }

    [Fact]
    public async Task TopKWithErrorFeedbackOnOneWorkerIsTheOneProcessRunAndThreeWorkersTrain()
    {
        // The residual belongs to whoever computes the micro-batches: one worker (streaming its blocks as the backward
        // makes them final, over 2 shards) is the one-process Trainer bit for bit; 3 workers share the work, so theirs differ
        // from run to run, and must still train.
        var data = TestData.WriteIdx(200, 50);
        var job = Job(data, "topk");
        var (reference, plain) = OneProcess(data, job);

        var one = await RunCluster(job, 1, 2, "disttrain.data-plane.gradient-chunk-floats = 16");
        var three = await RunCluster(job, 3, 2, "disttrain.data-plane.gradient-chunk-floats = 16");

        Assert.Equal(reference, one.Values);
        Assert.NotEqual(plain, reference);
        var initial = job.Spec().Build((ulong)job.Seed).Store.Values;
        Assert.All(three.Values, v => Assert.True(float.IsFinite(v)));
        Assert.NotEqual(initial, three.Values);
        // 7,890 values = 8 blocks of 10 entries of 6 bytes per shard frame set; with 2 shards the block holding the
        // boundary goes to both: at least 8 blocks' worth per micro-batch, a fraction of float32's 31,560 bytes.
        Assert.All(one.BytesSent, b => Assert.InRange(b, Batch / Micro * 8 * 60, Batch / Micro * 12 * 60));
    }
}

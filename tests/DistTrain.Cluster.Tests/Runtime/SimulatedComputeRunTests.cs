// `--simulate-compute` in a real cluster (one process, every role): the workers wait instead of computing, yet the
// shards receive the same traffic — bytes_sent per step in metrics.jsonl equals the real run's, step by step, for
// sync (gradient streamed in chunks over two shards) and async; the simulated run's weights stay finite and move.
using System.Text.Json;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class SimulatedComputeRunTests
{
    private const int Steps = 4, Batch = 32, Micro = 8;

    private static TrainJob Job(string data, string compression) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 2, BatchSize = Batch, MicroBatch = Micro, Optimizer = "adam", Lr = 1e-2f, Seed = 11, MaxSteps = Steps,
        Compression = compression,
    };

    private static async Task<(float[] Values, double[] Bytes, double[] ComputeMs)> Run(TrainJob job, ModeOptions mode, SimulateComputeOption? simulate)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-run-").FullName;
        var result = await ClusterNode.RunLocal(new NodeOptions
        {
            Overrides = new Configuration.ClusterOverrides { Hocon = "disttrain.data-plane.gradient-chunk-floats = 64" },
            Job = job, Mode = mode, Workers = 2, PsShards = 2, OutDir = dir, SimulateCompute = simulate,
        }).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(result.Error);
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, result.ModelPath!);
        var steps = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("kind").GetString() == "step").ToArray();
        return (model.Store.Values, steps.Select(e => e.GetProperty("bytes_sent").GetDouble()).ToArray(),
            steps.Select(e => e.GetProperty("compute_ms").GetDouble()).ToArray());
    }

    [Theory]
    [InlineData("sync", "none")]
    [InlineData("sync", "int8")]
    [InlineData("async", "none")]
    public async Task SimulatedComputeSendsTheBytesRealComputeSends(string modeName, string compression)
    {
        var data = TestData.WriteIdx(200, 50);
        var job = Job(data, compression);
        var mode = ModeOptions.Parse(modeName, null, null);
        var real = await Run(job, mode, null);
        var simulated = await Run(job, mode, new SimulateComputeOption(5));

        Assert.Equal(Steps, simulated.Bytes.Length);
        Assert.Equal(real.Bytes, simulated.Bytes);
        Assert.All(simulated.Bytes, b => Assert.True(b >= Batch / Micro * (compression == "none" ? 4 : 1) * job.Spec().Build(0).ParameterCount));
        // Each step's compute is its 4 micro-batches' waits of 5 ms.
        Assert.All(simulated.ComputeMs, ms => Assert.True(ms >= Batch / Micro * 5 - 0.5, $"compute {ms} ms"));
        var initial = job.Spec().Build((ulong)job.Seed).Store.Values;
        Assert.All(simulated.Values, v => Assert.True(float.IsFinite(v)));
        Assert.NotEqual(initial, simulated.Values);
        Assert.NotEqual(real.Values, simulated.Values);
    }
}

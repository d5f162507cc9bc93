// Contract 4 in the non-sync modes: a worker stopped mid-run has its leased work handed to the others.
// Async still applies every micro-batch exactly once; local-sgd still ends on the naive reference's bits.
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class ModeFaultTests
{
    private static TrainJob Job(string data) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 10, BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Seed = 17, MaxSteps = 50,
    };

    /// <summary>Runs 3 workers in one process and stops worker 0 when the coordinator reports unit 20.</summary>
    private static async Task<(RuntimeMessages.RunCompleted Result, string Dir, bool Stopped)> RunAndKill(TrainJob job, ModeOptions mode)
    {
        var dir = Directory.CreateTempSubdirectory($"disttrain-fault-{mode.Name()}-").FullName;
        ClusterNode? node = null;
        bool stopped = false;
        node = ClusterNode.Start(new NodeOptions
        {
            Job = job, Mode = mode, Workers = 3, PsActors = 1, PsShards = 1, MinWorkers = 3, OutDir = dir, SerializeMessages = true,
            OnProgress = line =>
            {
                if (!line.StartsWith("step 20/", StringComparison.Ordinal) || node is null) return;
                node.System.Stop(node.Workers[0]);
                stopped = true;
            },
        });
        await using (node)
        {
            var result = await node.Completion.WaitAsync(TimeSpan.FromMinutes(3));
            return (result, dir, stopped);
        }
    }

    [Fact]
    public async Task AsyncAppliesEveryMicroBatchOnceWhenAWorkerStops()
    {
        var job = Job(TestData.WriteIdx(160, 40, seed: 8));
        var (r, dir, stopped) = await RunAndKill(job, new ModeOptions(TrainingMode.Async, Staleness: 2));
        Assert.True(stopped);
        Assert.Null(r.Error);
        Assert.Equal(50, r.Steps);
        var summary = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Single(l => l.Contains("\"kind\":\"staleness\""));
        Assert.Contains($"\"updates\":{50 * 4}", summary); // one shard: one update per micro-batch, none lost, none twice
    }

    [Fact]
    public async Task LocalSgdEndsOnTheReferenceBitsWhenAWorkerStops()
    {
        var job = Job(TestData.WriteIdx(160, 40, seed: 9));
        var mode = new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 2);
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var reference = LocalSgdDeterminismTests.Naive(job, train, job.TotalSteps(train.Count), mode.LocalSteps);
        var (r, _, stopped) = await RunAndKill(job, mode);
        Assert.True(stopped);
        Assert.Null(r.Error);
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, r.ModelPath!);
        Assert.Equal(reference, model.Store.Values);
    }
}

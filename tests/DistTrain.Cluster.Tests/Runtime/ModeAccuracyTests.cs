// DESIGN contract 5, issue 4's acceptance test: async and local-sgd train the `cnn` preset to within 1
// point of sync test accuracy on a small IDX set written here, with 2 workers in one process (actors,
// serializer, TCP data plane as in a cluster); B/M = 2, so both workers compute in every sync step and
// local-sgd round. Sync must be far above chance so the comparison means something. Sync and local-sgd
// are deterministic here; async varies with arrival order.
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class ModeAccuracyTests(ITestOutputHelper output)
{
    private static TrainJob CnnJob(string data) => new()
    {
        ModelSpecJson = Presets.Resolve("cnn").CanonicalJson,
        Dataset = data, Epochs = 1, BatchSize = 16, MicroBatch = 8, Optimizer = "adam", Lr = 1e-3f, Schedule = "cosine", Seed = 5,
    };

    private async Task<(double Accuracy, string Dir)> Train(TrainJob job, ModeOptions mode)
    {
        var dir = Directory.CreateTempSubdirectory($"disttrain-{mode.Name()}-").FullName;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var r = await ClusterNode.RunLocal(job, workers: 2, psShards: 1, dir, serializeMessages: true, mode: mode).WaitAsync(TimeSpan.FromMinutes(4));
        Assert.Null(r.Error);
        output.WriteLine($"{mode}: test accuracy {r.TestAccuracy:P2} after {r.Steps} steps in {sw.Elapsed.TotalSeconds:F1} s");
        var info = Checkpoint.ReadInfo(r.ModelPath!);
        Assert.Equal(mode.Name(), info.Extra["mode"]);
        Assert.Contains($"\"kind\":\"run\",\"mode\":\"{mode.Name()}\"", File.ReadLines(Path.Combine(dir, "metrics.jsonl")).First());
        return (r.TestAccuracy, dir);
    }

    [Fact]
    public async Task AsyncAndLocalSgdReachSyncAccuracyWithinOnePoint()
    {
        var job = CnnJob(TestData.WriteIdx(640, 400, seed: 21));
        var sync = await Train(job, ModeOptions.Sync);
        var asyncRun = await Train(job, new ModeOptions(TrainingMode.Async, Staleness: 4));
        var local = await Train(job, new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 4));

        Assert.True(sync.Accuracy > 0.5, $"sync reached only {sync.Accuracy:P2} (chance is 10%); the comparison would be meaningless");
        Assert.True(Math.Abs(asyncRun.Accuracy - sync.Accuracy) <= 0.01, $"async {asyncRun.Accuracy:P2} vs sync {sync.Accuracy:P2}");
        Assert.True(Math.Abs(local.Accuracy - sync.Accuracy) <= 0.01, $"local-sgd {local.Accuracy:P2} vs sync {sync.Accuracy:P2}");

        // Async counted the staleness of every update (one shard: one per micro-batch), with its bound in the summary line.
        var summary = File.ReadLines(Path.Combine(asyncRun.Dir, "metrics.jsonl")).Single(l => l.Contains("\"kind\":\"staleness\""));
        Assert.Contains("\"bound\":4", summary);
        Assert.Contains($"\"updates\":{640 / 16 * 2}", summary);
    }
}

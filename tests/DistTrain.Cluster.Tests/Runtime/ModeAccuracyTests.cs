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
using DistTrain.Training;
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

    /// <summary>The cnn preset's shape with BatchNorm after each convolution: evaluation uses the running statistics.</summary>
    private const string BnCnn = """
        {"name":"bn-cnn","input":[1,28,28],"loss":"cross_entropy","layers":[
          {"type":"conv2d","out":8,"kernel":3,"padding":1},{"type":"batchnorm2d"},{"type":"relu"},{"type":"maxpool2d","kernel":2},
          {"type":"conv2d","out":16,"kernel":3,"padding":1},{"type":"batchnorm2d"},{"type":"relu"},{"type":"maxpool2d","kernel":2},
          {"type":"flatten"},{"type":"dense","out":32},{"type":"relu"},{"type":"dense","out":10}]}
        """;

    [Fact]
    public async Task BatchNormModelInAsyncAndLocalSgdEvaluatesWithinAPointOfSync()
    {
        // Every mode folds every micro-batch's batch statistics into shard 0's running buffers (in its own order), so the
        // saved model evaluates with real statistics; before, async and local-sgd saved the initial mean 0 and variance 1.
        var job = CnnJob(TestData.WriteIdx(640, 400, seed: 21)) with { ModelSpecJson = ModelSpec.Parse(BnCnn).CanonicalJson };
        var runs = new[] { ModeOptions.Sync, new ModeOptions(TrainingMode.Async, Staleness: 4), new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 4) };
        var results = new List<(ModeOptions Mode, double Accuracy)>();
        foreach (var mode in runs)
        {
            var (accuracy, dir) = await Train(job, mode);
            results.Add((mode, accuracy));
            var model = job.Spec().Build(0);
            Checkpoint.LoadInto(model.Store, Path.Combine(dir, "model.safetensors"));
            var named = model.Store.All.Where(p => p.IsBuffer).ToDictionary(p => p.Name, p => p.Value.Span.ToArray());
            // 40 steps of 2 micro-batches: 80 folds in every mode (local-sgd: 10 rounds × 4 local steps × 2 chunks).
            Assert.Equal(80f, named["5.num_batches_tracked"][0]);
            Assert.Contains(named["1.running_mean"], v => v != 0f);
            Assert.Contains(named["1.running_var"], v => v != 1f);
        }
        double sync = results[0].Accuracy;
        Assert.True(sync > 0.5, $"sync reached only {sync:P2} (chance is 10%); the comparison would be meaningless");
        foreach (var (mode, accuracy) in results.Skip(1))
            Assert.True(Math.Abs(accuracy - sync) <= 0.01, $"{mode}: {accuracy:P2} vs sync {sync:P2}");
    }
}

// Async runs write checkpoints too: at each checkpoint step the coordinator hands out nothing past it until the shards have
// applied every micro-batch before it, so their state there is one consistent cut, and a resumed run continues from exactly
// those micro-batches. With staleness 0 an async run is a sequential one over the micro-batches (micro-batch k is computed
// on version k), so an uninterrupted run and a run stopped and resumed must end with the same bits, for any worker count.
using System.Security.Cryptography;
using System.Text.Json;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using DistTrain.Training;
using DistTrain.Training.Checkpoints;
using Xunit;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class AsyncResumeTests
{
    // 160 samples / 32 = 5 steps per epoch, 20 steps of 4 micro-batches. Epoch ends (5, 10, 15) and --checkpoint-every 4
    // (4, 8, 12, 16): checkpoints at steps 4, 5, 8, 10, 12, 15, 16, i.e. after 16, 20, 32, 40, 48, 60, 64 updates.
    private static TrainJob Job(string data) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 4, BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Schedule = "warmup:3+cosine", Seed = 13,
        Augment = "crop:2,flip",
    };

    private static readonly ModeOptions Sequential = new(TrainingMode.Async, Staleness: 0);

    private sealed class CrashAfter(long step) : ICoordinatorFaults
    {
        bool ICoordinatorFaults.CrashAfter(long s) => s == step;
        public bool DropCheckpointFrame() => false;
    }

    private static Task<RunCompleted> Run(TrainJob job, int workers, int shards, string dir, string? resume = null, long crashAfter = -1,
        List<string>? said = null, ModeOptions? mode = null) =>
        ClusterNode.RunLocal(new NodeOptions
        {
            Job = job, Mode = mode ?? Sequential, Workers = workers, PsShards = shards, OutDir = dir, SerializeMessages = true, CheckpointEvery = 4,
            ResumeDir = resume, Faults = new CrashAfter(crashAfter), SnapshotGrace = TimeSpan.FromSeconds(1),
            OnProgress = line => { lock (said ?? []) said?.Add(line); },
        }).WaitAsync(TimeSpan.FromMinutes(3));

    private static readonly string[] CheckpointSteps =
        ["step 4 (16 updates)", "step 5 (20 updates)", "step 8 (32 updates)", "step 10 (40 updates)", "step 12 (48 updates)", "step 15 (60 updates)", "step 16 (64 updates)", "step 20 (80 updates)"];

    /// <summary>The checkpoints a run reported writing (the end's last), in order ("step S (U updates)").</summary>
    private static string[] Written(List<string> said) => said
        .Select(l => System.Text.RegularExpressions.Regex.Match(l, @"^checkpoint: (step \d+ \(\d+ updates\)) ->"))
        .Where(m => m.Success).Select(m => m.Groups[1].Value).ToArray();

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static long[] StepLines(string dir) => File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"))
        .Select(l => JsonDocument.Parse(l).RootElement).Where(r => r.GetProperty("kind").GetString() == "step")
        .Select(r => r.GetProperty("step").GetInt64()).ToArray();

    [Fact]
    public async Task AnAsyncRunStoppedMidEpochResumesFromItsNewestCheckpointAndEndsBitIdentical()
    {
        var job = Job(TestData.WriteIdx(160, 40, seed: 8));
        var wholeDir = Directory.CreateTempSubdirectory("disttrain-async-whole-").FullName;
        var wholeSaid = new List<string>();
        var whole = await Run(job, 2, 2, wholeDir, said: wholeSaid);
        Assert.Null(whole.Error);
        Assert.Equal(CheckpointSteps, Written(wholeSaid));
        Assert.Equal([80L, 64], CheckpointSeries.List(wholeDir).Select(c => c.Step)); // the end and the newest before it, in updates

        // Stopped once step 13 is applied: the fence at step 12 held everything after it until its checkpoint was written,
        // so the newest checkpoint is that of step 12 whatever the timing, and steps 12 and 13 are work to redo.
        var dir = Directory.CreateTempSubdirectory("disttrain-async-stopped-").FullName;
        var stopped = await Run(job, 3, 2, dir, crashAfter: 13);
        Assert.NotNull(stopped.Error);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        Assert.Equal([48L, 40], CheckpointSeries.List(dir).Select(c => c.Step).Take(2));
        Assert.Contains(StepLines(dir), s => s >= 12); // lines past the checkpoint were written: the resumed run must not repeat them

        var said = new List<string>();
        var resumed = await Run(job, 1, 2, dir, resume: dir, said: said);
        Assert.Null(resumed.Error);
        Assert.Contains(said, l => l.StartsWith("resuming from", StringComparison.Ordinal) && l.Contains("step 48,"));
        Assert.Equal(Sha(whole.ModelPath!), Sha(resumed.ModelPath!));
        // The resumed run wrote the lines of the steps after the crash once, and none of those before it again.
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), StepLines(dir).Order());
    }

    /// <summary>A checkpoint is a consistent cut with any staleness: the run with staleness 4 writes the same checkpoint steps.</summary>
    [Fact]
    public async Task WithStalenessTheCheckpointsAreStillTakenAtTheirSteps()
    {
        var job = Job(TestData.WriteIdx(160, 40, seed: 8));
        var dir = Directory.CreateTempSubdirectory("disttrain-async-stale-").FullName;
        var said = new List<string>();
        var run = await Run(job, 2, 2, dir, mode: new ModeOptions(TrainingMode.Async, Staleness: 4), said: said);
        Assert.Null(run.Error);
        Assert.Equal(CheckpointSteps, Written(said));
    }
}

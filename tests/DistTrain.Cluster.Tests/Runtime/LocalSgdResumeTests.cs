// Local-sgd with outer Nesterov momentum writes checkpoints (weights, buffers and the shards' momentum buffer) at the rounds
// that reach an epoch end or --checkpoint-every, and a run stopped after round k and resumed from its newest checkpoint ends
// with the SHA-256 of an uninterrupted run. A resume with other outer options is refused, naming the option.
using System.Security.Cryptography;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Training;
using DistTrain.Training.Checkpoints;
using Xunit;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class LocalSgdResumeTests
{
    // 160 samples / 32 = 5 steps per epoch, 20 steps, H = 2: 10 rounds. Epoch ends (5, 10, 15) fall in rounds 3, 5, 8 and
    // --checkpoint-every 4 steps in rounds 2, 4, 6, 8: checkpoints at rounds 2, 3, 4, 5, 6, 8 and the end (10).
    private static TrainJob Job(string data) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 4, BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Schedule = "cosine", Seed = 11,
    };

    private static readonly ModeOptions Nesterov = new(TrainingMode.LocalSgd, LocalSteps: 2) { Outer = OuterOptimizer.Parse("nesterov", null, null) };

    private sealed class CrashAfter(long unit) : ICoordinatorFaults
    {
        bool ICoordinatorFaults.CrashAfter(long step) => step == unit;
        public bool DropCheckpointFrame() => false;
    }

    private static Task<RunCompleted> Run(TrainJob job, ModeOptions mode, int workers, int shards, string dir, string? resume = null,
        long crashAfter = -1, List<string>? said = null) =>
        ClusterNode.RunLocal(new NodeOptions
        {
            Job = job, Mode = mode, Workers = workers, PsShards = shards, OutDir = dir, SerializeMessages = true, CheckpointEvery = 4,
            ResumeDir = resume, Faults = new CrashAfter(crashAfter), SnapshotGrace = TimeSpan.FromSeconds(1),
            OnProgress = line => { lock (said ?? []) said?.Add(line); },
        }).WaitAsync(TimeSpan.FromMinutes(3));

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public async Task ARunStoppedAfterARoundAndResumedEndsBitIdentical()
    {
        var job = Job(TestData.WriteIdx(160, 40, seed: 6));
        var wholeDir = Directory.CreateTempSubdirectory("disttrain-localsgd-whole-").FullName;
        var whole = await Run(job, Nesterov, 2, 2, wholeDir);
        Assert.Null(whole.Error);
        Assert.Equal([10L], CheckpointSeries.List(wholeDir).Select(c => c.Step).Take(1));

        var dir = Directory.CreateTempSubdirectory("disttrain-localsgd-stopped-").FullName;
        var stopped = await Run(job, Nesterov, 3, 2, dir, crashAfter: 7);
        Assert.NotNull(stopped.Error);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        var kept = CheckpointSeries.List(dir).Select(c => c.Step).ToArray();
        Assert.True(kept is [6, 5] or [5, 4], $"checkpoints kept: {string.Join(", ", kept)}"); // written as state arrives, racing the stop
        // The checkpoint holds the outer momentum of the whole vector, and it has moved.
        var state = SafeTensors.Read(Checkpoint.OptimizerPathFor(Path.Combine(CheckpointSeries.List(dir)[0].Dir, CheckpointSeries.WeightsFile)));
        var momentum = state["outer_momentum"].Data;
        Assert.Equal(job.Spec().Build(0).ParameterCount, momentum.Length);
        Assert.Contains(momentum, v => v != 0f);

        var said = new List<string>();
        var resumed = await Run(job, Nesterov, 1, 2, dir, resume: dir, said: said);
        Assert.Null(resumed.Error);
        Assert.Contains(said, l => l.Contains("resuming from checkpoint") && l.Contains($"step {kept[0]},"));
        Assert.Equal(Sha(whole.ModelPath!), Sha(resumed.ModelPath!));

        // Without the momentum the resumed run would differ: the same checkpoint resumed as plain averaging is refused.
        var plain = Nesterov with { Outer = OuterOptimizer.Plain };
        var e = Assert.Throws<ArgumentException>(() => ClusterNode.FindResumePoint(dir, job, said.Add, mode: plain));
        Assert.Contains("verifies", e.Message);
        Assert.Contains(said, l => l.Contains("outer_optimizer = nesterov, not this run's average"));
    }
}

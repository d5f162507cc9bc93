// DESIGN contracts 2 and 4 with BatchNorm: the cluster's running statistics equal the one-process
// Trainer's bit for bit (shard 0 folds the workers' micro-batch statistics in micro-batch order), and a
// run stopped after step k and resumed from its last checkpoint ends with the SHA-256 of an
// uninterrupted run, also when the newest checkpoint is corrupt and the previous one is used.
using System.Security.Cryptography;
using DistTrain.Training.Checkpoints;
using DistTrain.Cluster.Runtime;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class CheckpointResumeTests
{
    /// <summary>A small CNN with BatchNorm (buffers) and dropout (per-step seeds).</summary>
    private const string TinyBn = """
        {"name":"tiny-bn","input":[1,28,28],"loss":"cross_entropy","layers":[
          {"type":"conv2d","out":4,"kernel":3,"padding":1},{"type":"batchnorm2d"},{"type":"relu"},{"type":"maxpool2d","kernel":2},
          {"type":"flatten"},{"type":"dropout","p":0.25},{"type":"dense","out":16},{"type":"batchnorm1d"},{"type":"relu"},{"type":"dense","out":10}]}
        """;

    // 200 samples / 32 = 6 steps per epoch; 10 steps cross an epoch end (a checkpoint) and stop mid-epoch 2.
    private static TrainJob Job(string data) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TinyBn).CanonicalJson,
        Dataset = data, Epochs = 2, BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Seed = 5, MaxSteps = 10,
        Schedule = "warmup:3+cosine", Augment = "crop:2,flip", // a resume one step off would change the rate and the draws
    };

    private static async Task<RunCompleted> Run(TrainJob job, int workers, int shards, string dir, long checkpointEvery = 0,
        string? resume = null, long crashAfter = -1, List<string>? said = null, int dropCheckpointFrames = 0, string? init = null)
    {
        var o = new NodeOptions
        {
            Job = job, Workers = workers, PsShards = shards, OutDir = dir, SerializeMessages = true,
            CheckpointEvery = checkpointEvery, ResumeDir = resume, Faults = new TestFaults(crashAfter, dropCheckpointFrames), SnapshotGrace = TimeSpan.FromSeconds(1), InitFile = init,
            OnProgress = line => { lock (said ?? []) said?.Add(line); },
        };
        return await ClusterNode.RunLocal(o).WaitAsync(TimeSpan.FromMinutes(3));
    }

    /// <summary>Stops the coordinator after step <paramref name="crashAfter"/> and drops its first <paramref name="drops"/> checkpoint frames.</summary>
    private sealed class TestFaults(long crashAfter, int drops) : ICoordinatorFaults
    {
        private int _drops = drops;
        public bool CrashAfter(long step) => step == crashAfter;
        public bool DropCheckpointFrame() => Interlocked.Decrement(ref _drops) >= 0;
    }

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static Sequential Load(TrainJob job, string path)
    {
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, path);
        return model;
    }

    [Fact]
    public async Task BatchNormBuffersMatchTheOneProcessTrainerForAnyWorkerCount()
    {
        var job = Job(TestData.WriteIdx(200, 50));
        var model = await AssertOneAndThreeWorkersGiveTheOneProcessBits(job);
        // The buffers moved: 10 steps × 4 micro-batches of running-statistics updates, counted per layer.
        var initial = job.Spec().Build((ulong)job.Seed).Store.Buffers;
        Assert.NotEqual(initial, model.Store.Buffers);
        Assert.Equal(2, model.Store.Buffers.Count(b => b == 40f)); // num_batches_tracked of both BatchNorm layers
    }

    [Fact]
    public async Task ResnetPresetTrainsToTheOneProcessBitsWithOneAndThreeWorkers()
    {
        // Residual blocks nest their BatchNorm layers; 2 steps of 2 micro-batches keep the cost small.
        var job = new TrainJob
        {
            ModelSpecJson = Presets.Resolve("resnet").CanonicalJson, Dataset = TestData.WriteIdx(48, 10),
            Epochs = 1, BatchSize = 16, MicroBatch = 8, Optimizer = "adam", Lr = 2e-3f, Seed = 3, MaxSteps = 2,
        };
        await AssertOneAndThreeWorkersGiveTheOneProcessBits(job);
    }

    /// <summary>Weights and buffers of 1 worker equal the one-process Trainer's; 3 workers / 2 shards save the same file.</summary>
    private static async Task<Sequential> AssertOneAndThreeWorkersGiveTheOneProcessBits(TrainJob job)
    {
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);

        var one = await Run(job, 1, 1, Directory.CreateTempSubdirectory("disttrain-cmp1-").FullName);
        var three = await Run(job, 3, 2, Directory.CreateTempSubdirectory("disttrain-cmp3-").FullName);
        Assert.Null(one.Error);
        Assert.Null(three.Error);
        var model = Load(job, one.ModelPath!);
        Assert.Equal(trainer.Model.Store.Values, model.Store.Values);
        Assert.Equal(trainer.Model.Store.Buffers, model.Store.Buffers);
        Assert.Equal(Sha(one.ModelPath!), Sha(three.ModelPath!));
        return model;
    }

    [Fact]
    public async Task ARunStoppedMidEpochAndResumedEndsBitIdentical()
    {
        var job = Job(TestData.WriteIdx(200, 50));
        var whole = await Run(job, 2, 2, Directory.CreateTempSubdirectory("disttrain-whole-").FullName, checkpointEvery: 4);
        Assert.Null(whole.Error);

        // Stopped after step 8: checkpoints exist at 4 and 6 (epoch end), and 8 (every 4); step 9 is lost work.
        var dir = Directory.CreateTempSubdirectory("disttrain-stopped-").FullName;
        var stopped = await Run(job, 3, 2, dir, checkpointEvery: 4, crashAfter: 9);
        Assert.NotNull(stopped.Error);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        // Checkpoints are written as the shards' state arrives, which races the stop by a step at most.
        var kept = CheckpointSeries.List(dir).Select(c => c.Step).ToArray();
        Assert.True(kept is [8, 6] or [6, 4], $"checkpoints kept: {string.Join(", ", kept)}"); // the newest two
        long newestStep = kept[0], previousStep = kept[1];
        var copy = Directory.CreateTempSubdirectory("disttrain-stopped-copy-").FullName;
        CopyTree(dir, copy);

        var said = new List<string>();
        var resumed = await Run(job, 1, 2, dir, checkpointEvery: 4, resume: dir, said: said);
        Assert.Null(resumed.Error);
        Assert.Contains(said, l => l.Contains("resuming from checkpoint") && l.Contains($"step {newestStep},"));
        Assert.Equal(Sha(whole.ModelPath!), Sha(resumed.ModelPath!));

        // The newest checkpoint corrupted on disk: refused with its file named, the previous one is used, same bits.
        var newest = Path.Combine(CheckpointSeries.List(copy)[0].Dir, CheckpointSeries.WeightsFile);
        var bytes = File.ReadAllBytes(newest);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(newest, bytes);
        said.Clear();
        var fallback = await Run(job, 2, 2, copy, checkpointEvery: 4, resume: copy, said: said);
        Assert.Null(fallback.Error);
        Assert.Contains(said, l => l.Contains("skipping checkpoint") && l.Contains(newest));
        Assert.Contains(said, l => l.Contains("resuming from checkpoint") && l.Contains($"step {previousStep},"));
        Assert.Equal(Sha(whole.ModelPath!), Sha(fallback.ModelPath!));
    }

    [Fact]
    public async Task AFinalStateFrameLostOnTheWayIsAskedForAgainAndTheModelIsTheSame()
    {
        // Without the coordinator's snapshot watch a lost frame of the final state left the run waiting forever.
        var job = Job(TestData.WriteIdx(200, 50)) with { MaxSteps = 4 };
        var clean = await Run(job, 2, 2, Directory.CreateTempSubdirectory("disttrain-clean-").FullName, checkpointEvery: -1);
        Assert.Null(clean.Error);
        var said = new List<string>();
        var lossy = await Run(job, 2, 2, Directory.CreateTempSubdirectory("disttrain-lossy-").FullName, checkpointEvery: -1,
            said: said, dropCheckpointFrames: 2);
        Assert.Null(lossy.Error);
        Assert.Contains(said, l => l.Contains("final state of version 4 incomplete") && l.Contains("asking the shards again"));
        Assert.Equal(Sha(clean.ModelPath!), Sha(lossy.ModelPath!));
    }

    [Fact]
    public async Task InitStartsTheClusterFromTheFileLikeTheOneProcessTrainer()
    {
        var job = Job(TestData.WriteIdx(200, 50)) with { MaxSteps = 4 };
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        // The init weights: another seed, trained 2 steps so the BatchNorm buffers moved too.
        var donorJob = job with { Seed = 9, MaxSteps = 2, Schedule = "constant" }; // 2 steps are shorter than the warm-up
        var donor = donorJob.CreateTrainer(train.Count);
        donor.Fit(train);
        var opt = donorJob.CreateOptimizer(donor.Model.ParameterCount);
        var file = Path.Combine(CheckpointSeries.Write(Directory.CreateTempSubdirectory("disttrain-donor-").FullName, donorJob, donor.Model.Store,
            opt.State, opt.ToString(), 2, 0), CheckpointSeries.WeightsFile);

        var model = job.Spec().Build((ulong)job.Seed);
        Checkpoint.LoadInto(model.Store, file);
        var trainer = job.CreateTrainer(train.Count, model);
        trainer.Fit(train);

        var dir = Directory.CreateTempSubdirectory("disttrain-init-").FullName;
        var said = new List<string>();
        var run = await Run(job, 2, 2, dir, checkpointEvery: -1, said: said, init: file);
        Assert.Null(run.Error);
        Assert.Contains(said, l => l.Contains("init: weights from") && l.Contains(file));
        var got = Load(job, run.ModelPath!);
        // Equal to the Trainer that started from the file (a run from the job's own seed would differ everywhere).
        Assert.Equal(trainer.Model.Store.Values, got.Store.Values);
        Assert.Equal(trainer.Model.Store.Buffers, got.Store.Buffers);
    }

    [Fact]
    public void ResumeWithoutAGoodCheckpointIsAClearError()
    {
        var job = Job(TestData.WriteIdx(40, 10));
        var dir = Directory.CreateTempSubdirectory("disttrain-nockpt-").FullName;
        var none = Assert.Throws<ArgumentException>(() => ClusterNode.FindResumePoint(dir, job, null));
        Assert.Contains("No checkpoint to resume from", none.Message);

        var model = job.Spec().Build((ulong)job.Seed);
        var opt = job.CreateOptimizer(model.ParameterCount);
        var written = CheckpointSeries.Write(dir, job, model.Store, opt.State, opt.ToString(), 3, 0);
        var weights = Path.Combine(written, CheckpointSeries.WeightsFile);
        File.WriteAllBytes(weights, File.ReadAllBytes(weights)[..100]); // truncated
        var said = new List<string>();
        var bad = Assert.Throws<ArgumentException>(() => ClusterNode.FindResumePoint(dir, job, said.Add));
        Assert.Contains("None of the 1 checkpoint(s)", bad.Message);
        Assert.Contains(said, l => l.Contains(weights));

        // Another model's checkpoint is refused too, naming the file.
        var other = job with { Seed = 6 };
        var written2 = CheckpointSeries.Write(dir, other, model.Store, opt.State, opt.ToString(), 4, 0);
        said.Clear();
        Assert.Throws<ArgumentException>(() => ClusterNode.FindResumePoint(dir, job, said.Add));
        Assert.Contains(said, l => l.Contains(Path.Combine(written2, CheckpointSeries.WeightsFile)) && l.Contains("--seed 6"));
    }

    private static void CopyTree(string from, string to)
    {
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(d.Replace(from, to));
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(f, f.Replace(from, to), true);
    }
}

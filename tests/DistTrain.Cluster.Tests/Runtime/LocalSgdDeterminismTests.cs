// Local-sgd against a naive reference written here: every chunk from the round's parameters on a fresh
// model and a fresh optimizer, deltas summed in chunk order and averaged. The pure pieces (LocalSgdChunk
// reusing one replica and clearing its optimizer, StepAggregator summing in arrival order, DeltaAveraging)
// and the whole runtime with 1 and 3 workers must give exactly the reference's bits.
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Data;
using DistTrain.Data.Plans;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class LocalSgdDeterminismTests
{
    private const int H = 2;
    private static readonly ModeOptions Mode = new(TrainingMode.LocalSgd, LocalSteps: H);

    private static TrainJob Job(string data) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 2, BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Schedule = "cosine", Seed = 13, MaxSteps = 7,
    };

    /// <summary>The reference: plain loops, a new model and optimizer per chunk, float sums in chunk order; then averaging, or
    /// with <paramref name="outer"/> PyTorch's SGD(nesterov) on the pseudo-gradient −Δ written out: buf = μ·buf + g; θ −= η·(g + μ·buf).</summary>
    internal static float[] Naive(TrainJob job, Dataset train, long planSteps, int localSteps = H, OuterOptimizer? outer = null)
    {
        int chunks = job.BatchSize / job.MicroBatch, n = job.Spec().Build((ulong)job.Seed).ParameterCount;
        var theta = job.Spec().Build((ulong)job.Seed).Store.Values.ToArray();
        var schedule = job.CreateSchedule(train.Count);
        int stepsPerEpoch = EpochPlan.CountSteps(train.Count, job.BatchSize);
        var buf = new float[n];
        for (long first = 0; first < planSteps; first += localSteps)
        {
            var sum = new float[n];
            for (int c = 0; c < chunks; c++)
            {
                var model = job.Spec().Build((ulong)job.Seed);
                theta.CopyTo(model.Store.Values, 0);
                var trainer = job.CreateTrainer(train.Count, model);
                var opt = job.CreateOptimizer(n);
                for (int h = 0; h < localSteps && first + h < planSteps; h++)
                {
                    long step = first + h;
                    var (epoch, inEpoch) = EpochPlan.Locate(step, stepsPerEpoch);
                    var plan = EpochPlan.Create(job.Seed, epoch, train.Count, job.BatchSize, job.MicroBatch);
                    var mb = plan.MicroBatches(inEpoch)[c];
                    trainer.ComputeGradient(train, plan.Indices(mb), 1f / job.MicroBatch, step, c);
                    opt.Step(model.Store.Values, model.Store.Grads, schedule(step), h + 1);
                }
                for (int i = 0; i < n; i++)
                {
                    float delta = model.Store.Values[i] - theta[i];
                    sum[i] = c == 0 ? delta : sum[i] + delta;
                }
            }
            float w = 1f / chunks;
            if (outer is null || outer.IsPlain)
            {
                for (int i = 0; i < n; i++) theta[i] += sum[i] * w;
                continue;
            }
            for (int i = 0; i < n; i++)
            {
                float g = -(sum[i] * w);                            // the pseudo-gradient θ_r − mean(θ_c)
                buf[i] = outer.Momentum * buf[i] + g;
                theta[i] -= outer.Lr * (g + outer.Momentum * buf[i]);
            }
        }
        return theta;
    }

    [Fact]
    public void ChunksOnOneReplicaAveragedInArrivalOrderMatchTheNaiveReference()
    {
        var job = Job(TestData.WriteIdx(160, 20, seed: 3));
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        long planSteps = job.TotalSteps(train.Count);
        var reference = Naive(job, train, planSteps);

        int chunks = job.BatchSize / job.MicroBatch;
        var model = job.Spec().Build((ulong)job.Seed);
        var trainer = job.CreateTrainer(train.Count, model);
        var runner = new LocalSgdChunk(trainer, train, Mode, job.Seed, job.BatchSize, job.MicroBatch, planSteps, job.CreateSchedule(train.Count));
        var shard = new ParameterShard(0, new KeyRange(0, model.ParameterCount), model.Store.Values, new DeltaAveraging(model.ParameterCount, chunks),
            _ => 0f, chunks);
        int[] arrival = [2, 0, 3, 1];
        for (long round = 0; round < Mode.Units(planSteps); round++)
        {
            shard.BeginStep(round, chunks);
            foreach (var c in arrival)
            {
                shard.Values.CopyTo(model.Store.Values, 0);
                runner.Run(round, c);
                Assert.Equal(GradientDrop.None, shard.Aggregator.Accept(round, c, model.Store.Grads));
            }
            Assert.True(shard.TryApply());
        }
        Assert.Equal(reference, shard.Values);
        Assert.NotEqual(job.Spec().Build((ulong)job.Seed).Store.Values, reference); // it trained
    }

    [Fact]
    public async Task RuntimeWithOneOrThreeWorkersGivesTheReferenceBits()
    {
        var job = Job(TestData.WriteIdx(160, 40, seed: 4));
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var reference = Naive(job, train, job.TotalSteps(train.Count));
        foreach (var (workers, shards) in new[] { (1, 1), (3, 2) })
        {
            var dir = Directory.CreateTempSubdirectory("disttrain-localsgd-").FullName;
            var r = await ClusterNode.RunLocal(job, workers, shards, dir, serializeMessages: true, mode: Mode).WaitAsync(TimeSpan.FromMinutes(3));
            Assert.Null(r.Error);
            Assert.Equal(7, r.Steps); // plan steps, not rounds
            var model = job.Spec().Build(0);
            var info = Checkpoint.LoadInto(model.Store, r.ModelPath!);
            Assert.Equal("local-sgd", info.Extra["mode"]);
            Assert.Equal(reference, model.Store.Values);
        }
    }

    [Fact]
    public async Task OuterNesterovWithOneOrThreeWorkersAndTwoShardsGivesTheReferenceBits()
    {
        // Each shard steps its own range's momentum; the weights depend on neither the worker nor the shard count.
        var job = Job(TestData.WriteIdx(160, 40, seed: 4));
        var mode = Mode with { Outer = OuterOptimizer.Parse("nesterov", null, null) };
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var reference = Naive(job, train, job.TotalSteps(train.Count), H, mode.Outer);
        Assert.NotEqual(Naive(job, train, job.TotalSteps(train.Count)), reference); // the outer optimizer changed something
        foreach (var (workers, shards) in new[] { (1, 1), (3, 2) })
        {
            var dir = Directory.CreateTempSubdirectory("disttrain-localsgd-nesterov-").FullName;
            var r = await ClusterNode.RunLocal(job, workers, shards, dir, serializeMessages: true, mode: mode).WaitAsync(TimeSpan.FromMinutes(3));
            Assert.Null(r.Error);
            var model = job.Spec().Build(0);
            var info = Checkpoint.LoadInto(model.Store, r.ModelPath!);
            Assert.Equal("nesterov", info.Extra["outer_optimizer"]);
            Assert.Equal(reference, model.Store.Values);
        }
    }
}

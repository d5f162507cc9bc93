// The one-process trainer: it learns (quadrants to 100%, a CNN on an IDX file written here), its
// step gradient is the PS's in-order sum of micro-batch gradients, it is bit-deterministic across
// thread counts, resumes at the exact step, and a steady-state step allocates nothing.
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests.Training;

[Collection("Serial")]
public class TrainerTests
{
    private const string SmallCnn = """
        {"name":"small-cnn","input":[1,14,14],"loss":"cross_entropy","layers":[
          {"type":"conv2d","out":6,"kernel":3,"padding":1},{"type":"relu"},{"type":"maxpool2d","kernel":2},
          {"type":"flatten"},{"type":"dropout","p":0.2},{"type":"dense","out":4}]}
        """;

    private static TrainJob Job(string specJson, int batch = 32, int micro = 0, string optimizer = "adam", float lr = 0.01f,
        int epochs = 1, long maxSteps = 0, int seed = 7) => new()
        {
            ModelSpecJson = ModelSpec.Parse(specJson).CanonicalJson, Dataset = "test", BatchSize = batch, MicroBatch = micro,
            Optimizer = optimizer, Lr = lr, Epochs = epochs, MaxSteps = maxSteps, Seed = seed,
        };

    /// <summary>4 classes of 14x14 images: a bright 3-pixel bar (two rows, two columns) at a jittered place, on noise.</summary>
    internal static void WriteStripesIdx(string dir, int trainCount, int testCount, int seed = 1)
    {
        Directory.CreateDirectory(dir);
        foreach (var (prefix, count) in new[] { ("train", trainCount), ("t10k", testCount) })
        {
            var rng = new Random(seed + count);
            var px = new byte[count * 14 * 14];
            var labels = new byte[count];
            for (int i = 0; i < count; i++)
            {
                int c = rng.Next(4), at = (c % 2 == 0 ? 3 : 8) + rng.Next(-1, 2);
                labels[i] = (byte)c;
                for (int r = 0; r < 14; r++)
                    for (int q = 0; q < 14; q++)
                    {
                        bool on = c < 2 ? r >= at && r < at + 3 : q >= at && q < at + 3;
                        px[i * 196 + r * 14 + q] = (byte)(on ? 160 + rng.Next(96) : rng.Next(110));
                    }
            }
            IdxWriter.WriteImages(Path.Combine(dir, $"{prefix}-images-idx3-ubyte"), px, count, 14, 14);
            IdxWriter.WriteLabels(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte"), labels);
        }
    }

    private static (Dataset Train, Dataset Test) Stripes(int train = 512, int test = 256)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"stripes-{Guid.NewGuid():N}");
        try
        {
            WriteStripesIdx(dir, train, test);
            var (tr, te) = DatasetSpec.Parse($"idx:{dir}:classes=4").Load();
            return (tr, te);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Quadrant_network_reaches_100_percent_training_accuracy()
    {
        var (train, _) = DatasetSpec.Parse("synthetic:quadrants:n=400:margin=0.05:seed=3").Load();
        var trainer = Job(Presets.Json("quadrant"), batch: 20, lr: 0.05f, epochs: 40).CreateTrainer(train.Count);
        trainer.Fit(train);
        var r = trainer.Evaluate(train);
        Assert.Equal(400, r.Samples);
        Assert.Equal(1.0, r.Accuracy);
    }

    [Fact]
    public void Cnn_learns_stripes_from_an_idx_file()
    {
        var (train, test) = Stripes();
        var trainer = Job(SmallCnn, batch: 32, lr: 0.01f, epochs: 10, maxSteps: 60).CreateTrainer(train.Count);
        var losses = new List<double>();
        trainer.StepCompleted = m => losses.Add(m.Loss);
        var last = trainer.Fit(train, test);
        Assert.Equal(60, trainer.Step);
        Assert.Equal(60, losses.Count);
        double first = losses[0], final = losses.TakeLast(5).Average();
        Assert.True(first > 1.2, $"initial loss {first} should be near ln 4");
        // Stated factor: the mean loss of the last 5 steps is at most a fifth of the first step's.
        Assert.True(final < first / 5, $"loss fell from {first:F3} to {final:F3} only");
        Assert.True(last.TestAccuracy >= 0.9, $"test accuracy {last.TestAccuracy}");
    }

    [Fact]
    public void Step_gradient_is_the_in_order_sum_of_micro_batch_gradients()
    {
        var (train, _) = Stripes(128, 16);
        var job = Job(SmallCnn, batch: 32, micro: 8);
        var a = job.CreateTrainer(train.Count);
        var b = job.CreateTrainer(train.Count);
        int[][] mbs = [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15], [16, 17, 18, 19, 20, 21, 22, 23], [24, 25, 26, 27, 28, 29, 30, 31]];
        a.TrainStep(train, mbs);
        // The PS side: each micro-batch gradient from zero with scale 1/B, summed left to right.
        var sum = new float[b.Model.ParameterCount];
        for (int i = 0; i < mbs.Length; i++)
        {
            b.ComputeGradient(train, mbs[i], 1f / 32, step: 0, microBatch: i);
            var g = b.Model.Store.Grads;
            for (int j = 0; j < sum.Length; j++) sum[j] = i == 0 ? g[j] : sum[j] + g[j];
        }
        Assert.Equal(sum, a.LastGradient.ToArray());
    }

    [Fact]
    public void A_non_finite_gradient_stops_the_step_naming_it_and_applies_nothing()
    {
        const string mlp = """{"input":[1,14,14],"layers":[{"type":"flatten"},{"type":"dense","out":16},{"type":"tanh"},{"type":"dense","out":4}]}""";
        var (train, _) = Stripes(64, 16);
        var trainer = Job(mlp, batch: 16, micro: 8).CreateTrainer(train.Count);
        trainer.TrainStep(train, [Enumerable.Range(0, 8).ToArray(), Enumerable.Range(8, 8).ToArray()]);
        var values = trainer.Model.Store.Values;
        values[values.Length - 1] = float.PositiveInfinity; // the last layer's bias: the logits, the loss and its gradient blow up
        var before = values.ToArray();
        var e = Assert.Throws<InvalidOperationException>(() => trainer.TrainStep(train, [Enumerable.Range(16, 8).ToArray(), Enumerable.Range(24, 8).ToArray()]));
        Assert.Contains("micro-batch 0 at step 1 is not finite", e.Message);
        Assert.Equal(1, trainer.Step);
        Assert.Equal(before, values);
    }

    [Fact]
    public void Micro_batches_give_the_full_batch_gradient_up_to_rounding()
    {
        const string mlp = """{"input":[1,14,14],"layers":[{"type":"flatten"},{"type":"dense","out":16},{"type":"tanh"},{"type":"dense","out":4}]}""";
        var (train, _) = Stripes(64, 16);
        int[] all = Enumerable.Range(0, 32).ToArray();
        var whole = Job(mlp).CreateTrainer(train.Count);
        whole.TrainStep(train, [all]);
        var split = Job(mlp).CreateTrainer(train.Count);
        split.TrainStep(train, all.Chunk(8).ToArray());
        var w = whole.LastGradient.ToArray();
        var s = split.LastGradient.ToArray();
        double scale = w.Max(v => Math.Abs(v));
        Assert.True(scale > 1e-4);
        for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(w[i] - s[i]) <= 1e-5 * scale + 1e-7, $"grad[{i}]: {w[i]} vs {s[i]}");
    }

    private static float[] TrainBits(int threads, int micro)
    {
        var (train, _) = Stripes(256, 16);
        int saved = Compute.Threads;
        Compute.Threads = threads;
        try
        {
            var t = Job(SmallCnn, batch: 64, micro: micro, epochs: 2, maxSteps: 6).CreateTrainer(train.Count);
            t.Fit(train);
            return t.Model.Store.Values.ToArray();
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void Same_seed_same_bits_with_one_or_two_threads()
    {
        var one = TrainBits(1, 16);
        Assert.Equal(one, TrainBits(2, 16));
        Assert.Equal(one, TrainBits(1, 16));
        // The full batch as one micro-batch sums in another order (and draws other dropout masks): not asserted equal.
        Assert.Equal(TrainBits(1, 64), TrainBits(2, 64));
    }

    [Fact]
    public void Resuming_at_a_step_continues_bit_for_bit()
    {
        var (train, _) = Stripes(128, 16);   // 4 steps per epoch at batch 32
        var straight = Job(SmallCnn, epochs: 3, maxSteps: 10).CreateTrainer(train.Count);
        straight.Fit(train);

        var first = Job(SmallCnn, epochs: 3, maxSteps: 6).CreateTrainer(train.Count);
        first.Fit(train);
        Assert.Equal(6, first.Step);
        var second = Job(SmallCnn, epochs: 3, maxSteps: 10).CreateTrainer(train.Count);
        first.Model.Store.Values.CopyTo(second.Model.Store.Values, 0);
        first.Model.Store.Buffers.CopyTo(second.Model.Store.Buffers, 0);
        for (int i = 0; i < first.Optimizer.State.Count; i++) first.Optimizer.State[i].Data.CopyTo(second.Optimizer.State[i].Data, 0);
        second.Resume(first.Step, first.Epoch);
        second.Fit(train);
        Assert.Equal(10, second.Step);
        Assert.Equal(straight.Model.Store.Values, second.Model.Store.Values);
    }

    [Fact]
    public void Evaluate_matches_a_hand_count_of_argmax_hits()
    {
        var (train, test) = Stripes(64, 40);
        var t = Job(SmallCnn).CreateTrainer(train.Count);
        t.Fit(train);
        var r = t.Evaluate(test);
        var x = new Tensor(test.Count, 1, 14, 14);
        var labels = new int[test.Count];
        test.Gather(Enumerable.Range(0, test.Count).ToArray(), x, labels);
        var y = t.Model.Forward(x, StepContext.Eval).ToArray();
        int hits = 0;
        double loss = 0;
        for (int i = 0; i < test.Count; i++)
        {
            var row = y.AsSpan(i * 4, 4);
            int arg = 0;
            for (int j = 1; j < 4; j++) if (row[j] > row[arg]) arg = j;
            if (arg == labels[i]) hits++;
            double max = row[arg], z = 0;
            foreach (var v in row) z += Math.Exp(v - max);
            loss += Math.Log(z) + max - row[labels[i]];
        }
        Assert.Equal((double)hits / test.Count, r.Accuracy);
        Assert.Equal(loss / test.Count, r.Loss, 4);
    }

    [Fact]
    public void Steady_state_step_allocates_nothing()
    {
        var (train, _) = Stripes(64, 16);
        int saved = Compute.Threads;
        Compute.Threads = 1;
        try
        {
            var t = Job(SmallCnn, batch: 32, micro: 16).CreateTrainer(train.Count);
            int[][] mbs = [Enumerable.Range(0, 16).ToArray(), Enumerable.Range(16, 16).ToArray()];
            for (int i = 0; i < 3; i++) t.TrainStep(train, mbs);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5; i++) t.TrainStep(train, mbs);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void Bad_options_and_mismatched_data_are_clear_errors()
    {
        var (train, _) = Stripes(64, 16);
        Assert.Contains("micro-batch 40", Assert.Throws<ArgumentException>(() => Job(SmallCnn, batch: 32, micro: 40).CreateTrainer(64)).Message);
        var (quad, _) = DatasetSpec.Parse("synthetic:quadrants:n=64").Load();
        var t = Job(SmallCnn).CreateTrainer(train.Count);
        Assert.Contains("the model takes (1,14,14)", Assert.Throws<ArgumentException>(() => t.Fit(quad)).Message);
        var tooBig = Job(SmallCnn, batch: 128).CreateTrainer(train.Count);
        Assert.Contains("fewer than one", Assert.Throws<ArgumentException>(() => tooBig.Fit(train)).Message);
    }
}

// Training-time augmentation inside the trainer: a micro-batch gradient with crop+flip equals the plain
// gradient on images augmented by a naive reference keyed (seed, step, micro-batch, sample); with it off
// the gradient is the model's own forward/backward on the raw samples; evaluation never augments.
using DistTrain.Data;
using DistTrain.Data.Augmentation;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests.Training;

[Collection("Serial")]
public class TrainerAugmentationTests
{
    // Dropout too, so the test also holds that augmentation does not disturb the (step, micro-batch) draws.
    private const string SmallCnn = """
        {"name":"small-cnn","input":[1,12,10],"loss":"cross_entropy","layers":[
          {"type":"conv2d","out":4,"kernel":3,"padding":1},{"type":"relu"},{"type":"maxpool2d","kernel":2},
          {"type":"flatten"},{"type":"dropout","p":0.2},{"type":"dense","out":3}]}
        """;
    private const int H = 12, W = 10, Seed = 5;

    private static TrainJob Job(string augment) => new()
    {
        ModelSpecJson = ModelSpec.Parse(SmallCnn).CanonicalJson, Dataset = "test", BatchSize = 16, Optimizer = "adam",
        Lr = 0.01f, Epochs = 1, Seed = Seed, Augment = augment,
    };

    private static Dataset Images(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n * H * W];
        for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble();
        var labels = Enumerable.Range(0, n).Select(_ => rng.Next(3)).ToArray();
        return new Dataset("images", [1, H, W], x, labels, 3);
    }

    /// <summary>Zero-pad, window at (dy,dx), mirror: written from the definition, pixel by pixel.</summary>
    private static float Pixel(float[] img, int y, int x, int dy, int dx, bool flip)
    {
        int sx = (flip ? W - 1 - x : x) + dx, sy = y + dy;
        return sy is >= 0 and < H && sx is >= 0 and < W ? img[sy * W + sx] : 0f;
    }

    [Fact]
    public void Augmented_gradient_equals_the_plain_gradient_on_reference_augmented_images()
    {
        var data = Images(40, 1);
        int[] indices = [3, 17, 0, 39, 22, 8, 8, 30];
        const long step = 12; const int mb = 2;
        var aug = ImageAugmentation.Parse("crop:2,flip");

        var augmented = Job("crop:2,flip").CreateTrainer(data.Count);
        augmented.ComputeGradient(data, indices, 1f / 16, step, mb);
        var got = augmented.Model.Store.Grads.ToArray();

        // The same samples, augmented by the reference into a new dataset, through a trainer without augmentation.
        var feats = new float[indices.Length * H * W];
        for (int i = 0; i < indices.Length; i++)
        {
            var img = data.Features.AsSpan(indices[i] * H * W, H * W).ToArray();
            var (dy, dx, flip) = aug.Draw(Seed, step, mb, i);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) feats[i * H * W + y * W + x] = Pixel(img, y, x, dy, dx, flip);
        }
        var pre = new Dataset("pre", [1, H, W], feats, indices.Select(i => data.Labels[i]).ToArray(), 3);
        var plain = Job("none").CreateTrainer(data.Count);
        plain.ComputeGradient(pre, Enumerable.Range(0, indices.Length).ToArray(), 1f / 16, step, mb);
        Assert.Equal(plain.Model.Store.Grads, got);

        // And the augmentation changed something (else the test above proves nothing).
        plain.ComputeGradient(data, indices, 1f / 16, step, mb);
        Assert.NotEqual(plain.Model.Store.Grads, got);
    }

    [Fact]
    public void Without_augmentation_the_gradient_is_the_models_forward_backward_on_the_raw_samples()
    {
        var data = Images(24, 2);
        int[] indices = [5, 1, 20, 9];
        var t = Job("none").CreateTrainer(data.Count);
        Assert.False(t.Options.Augmentation.Enabled);
        t.ComputeGradient(data, indices, 0.25f, step: 3, microBatch: 1);
        var got = t.Model.Store.Grads.ToArray();

        var model = ModelSpec.Parse(SmallCnn).Build(Seed);
        var x = new Tensor(indices.Length, 1, H, W);
        var labels = new int[indices.Length];
        data.Gather(indices, x, labels);
        model.Store.ZeroGrad();
        var y = model.Forward(x, new StepContext(true, Seed, 3, 1));
        var dy = new Tensor(y.Shape);
        ModelSpec.Parse(SmallCnn).CreateLoss().Compute(y, labels, null, dy, 0.25f);
        model.Backward(dy);
        Assert.Equal(model.Store.Grads, got);
    }

    [Fact]
    public void Evaluation_is_never_augmented()
    {
        var data = Images(64, 3);
        var test = Images(50, 4);
        var augmented = Job("crop:2,flip").CreateTrainer(data.Count);
        augmented.Fit(data);
        // A plain trainer holding the same trained weights (and BatchNorm-free model) must score identically.
        var plain = Job("none").CreateTrainer(data.Count);
        augmented.Model.Store.Values.AsSpan().CopyTo(plain.Model.Store.Values);
        Assert.Equal(plain.Evaluate(test), augmented.Evaluate(test));
        Assert.Equal(plain.Evaluate(data), augmented.Evaluate(data));
    }

    [Fact]
    public void Augmented_steps_are_reproducible_and_allocate_nothing()
    {
        var data = Images(64, 5);
        int[][] mbs = [Enumerable.Range(0, 8).ToArray(), Enumerable.Range(8, 8).ToArray()];
        int saved = Compute.Threads;
        Compute.Threads = 1;
        try
        {
            var a = Job("crop:2,flip").CreateTrainer(data.Count);
            var b = Job("crop:2,flip").CreateTrainer(data.Count);
            for (int i = 0; i < 3; i++) { a.TrainStep(data, mbs); b.TrainStep(data, mbs); }
            Assert.Equal(a.Model.Store.Values, b.Model.Store.Values);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 4; i++) a.TrainStep(data, mbs);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void Augmenting_a_model_without_image_input_is_a_clear_error()
    {
        var job = new TrainJob
        {
            ModelSpecJson = Presets.Spec("quadrant").CanonicalJson, Dataset = "synthetic:quadrants", Augment = "flip",
        };
        var e = Assert.Throws<ArgumentException>(() => job.CreateTrainer(100));
        Assert.Contains("needs image inputs (C,H,W)", e.Message);
        Assert.Contains("--augment none", e.Message);
        Assert.Contains("rotate", Assert.Throws<ArgumentException>(() => Job("rotate").CreateTrainer(10)).Message);
    }
}

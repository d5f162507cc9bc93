// Contract 2: a micro-batch gradient is bit-identical when computed twice and with 1 or 2 threads;
// dropout masks follow (seed, step, micro-batch, layer) only.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]
public class DeterminismTests
{
    private static (double Loss, float[] Grads) Gradient(int threads, StepContext ctx)
    {
        int saved = Compute.Threads;
        Compute.Threads = threads;
        try
        {
            var m = TestModels.SmallCnn(seed: 11);
            var x = GradCheck.Fill(new Tensor(5, 1, 12, 12), new Random(12), null);
            double loss = m.TrainStepGradient(x, [0, 4, 2, 2, 1], null, new SoftmaxCrossEntropy(), 1f / 8, ctx);
            return (loss, (float[])m.Store.Grads.Clone());
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void MicroBatchGradientIsBitIdenticalTwiceAndAcrossThreadCounts()
    {
        var ctx = new StepContext(true, Seed: 42, Step: 9, MicroBatch: 3);
        var a = Gradient(1, ctx);
        var b = Gradient(1, ctx);
        var c = Gradient(2, ctx);
        Assert.Contains(a.Grads, g => g != 0);
        Assert.Equal(a.Loss, b.Loss);
        Assert.Equal(a.Grads, b.Grads);
        Assert.Equal(a.Loss, c.Loss);
        Assert.Equal(a.Grads, c.Grads);
        // Another micro-batch id draws another dropout mask, so the gradient changes.
        Assert.NotEqual(a.Grads, Gradient(1, ctx with { MicroBatch = 4 }).Grads);
    }

    private static float[] Mask(StepContext ctx, int layerIndex, int n = 4096)
    {
        var t = new float[n];
        Dropout.FillMask(t, 0.3f, ctx.LayerSeed(layerIndex));
        return t;
    }

    [Fact]
    public void DropoutMaskIsReproducibleAndDiffersWhenAnyKeyChanges()
    {
        var ctx = new StepContext(true, Seed: 1, Step: 2, MicroBatch: 3);
        var m = Mask(ctx, 5);
        Assert.Equal(m, Mask(ctx, 5));
        foreach (var other in new[] { Mask(ctx with { Seed = 2 }, 5), Mask(ctx with { Step = 3 }, 5), Mask(ctx with { MicroBatch = 4 }, 5), Mask(ctx, 6) })
        {
            Assert.NotEqual(m, other);
            // Independent masks agree on about p² + (1−p)² = 58% of elements, not on all.
            double agree = m.Zip(other).Count(z => z.First == z.Second) / (double)m.Length;
            Assert.InRange(agree, 0.54, 0.62);
        }
    }

    [Fact]
    public void DropoutKeepsAboutOneMinusPAndScalesByItsInverse()
    {
        var m = Mask(new StepContext(true, Seed: 77), 0, 100_000);
        Assert.All(m, v => Assert.True(v == 0f || v == 1f / 0.7f));
        double kept = m.Count(v => v != 0) / (double)m.Length;
        Assert.InRange(kept, 0.7 - 0.005, 0.7 + 0.005);   // ±3.5σ for 100k Bernoulli(0.7)
        // The expectation is preserved: mean of x ⊙ mask ≈ mean of x for x = 1.
        Assert.InRange(m.Average(v => (double)v), 0.99, 1.01);
    }

    [Fact]
    public void DropoutInAModelUsesItsLayerIndexAndIsIdentityInEval()
    {
        var model = new DistTrain.Nn.Models.Sequential([64], [new Dense(64, 64), new Dropout(0.3f), new Dropout(0.3f)]);
        var x = GradCheck.Fill(new Tensor(2, 64), new Random(3), null);
        var ctx = new StepContext(true, Seed: 5, Step: 1, MicroBatch: 0);
        var h = model.Layers[0].Forward(x, ctx).ToArray();
        var y1 = model.Layers[1].Forward(new Tensor(h, 0, 2, 64), ctx).ToArray();
        var expected = Mask(ctx, 1, 128);
        for (int i = 0; i < 128; i++) Assert.Equal(h[i] * expected[i], y1[i]);
        Assert.Equal(h, model.Forward(x, StepContext.Eval).ToArray());
    }

    /// <summary>Sequential runs ReLU → MaxPool2d as one fused pool: loss, every parameter gradient and the input
    /// gradient must equal the unfused chain's bit for bit, for the cnn preset's shapes (28×28 and 14×14 planes:
    /// the 2x2 rows' whole and masked blocks) with 1 and 2 threads.</summary>
    [Fact]
    public void ReluMaxPoolFusionChangesNoBit()
    {
        int saved = Compute.Threads;
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Compute.Threads = threads;
                (double, float[], float[], float[]) Run(bool fuse)
                {
                    var m = DistTrain.Nn.Models.ModelBuilder.Build(DistTrain.Nn.Models.Presets.Spec("cnn"), 5);
                    Assert.True(m.FuseReluPool);   // on by default
                    m.FuseReluPool = fuse;
                    m.InputGrad = true;
                    var x = GradCheck.Fill(new Tensor(3, 1, 28, 28), new Random(6), null);
                    var ctx = new StepContext(true, Seed: 1, Step: 0, MicroBatch: 0);
                    double loss = m.TrainStepGradient(x, [3, 7, 1], null, new SoftmaxCrossEntropy(), 1f / 3, ctx);
                    var grads = (float[])m.Store.Grads.Clone();
                    var output = m.Forward(x, ctx).ToArray();
                    var dOut = GradCheck.Fill(new Tensor(3, 10), new Random(7), null);
                    var dx = m.Backward(dOut).ToArray();
                    return (loss, grads, output, dx);
                }
                var (fl, fg, fo, fdx) = Run(true);
                var (ul, ug, uo, udx) = Run(false);
                Assert.Equal(ul, fl);
                Assert.Contains(fg, g => g != 0);
                Assert.Equal(ug.Select(BitConverter.SingleToInt32Bits), fg.Select(BitConverter.SingleToInt32Bits));
                Assert.Equal(uo.Select(BitConverter.SingleToInt32Bits), fo.Select(BitConverter.SingleToInt32Bits));
                Assert.Equal(udx.Select(BitConverter.SingleToInt32Bits), fdx.Select(BitConverter.SingleToInt32Bits));
            }
        }
        finally { Compute.Threads = saved; }
    }
}

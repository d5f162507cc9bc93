// Steady-state training steps allocate nothing on the managed heap (workspaces are reused).
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]
public class AllocationTests
{
    private static long AllocatedOverSteps(Sequential m, int[] sample, int batch, int classes)
    {
        int saved = Compute.Threads;
        Compute.Threads = 1;
        try
        {
            var x = GradCheck.Fill(new Tensor([batch, .. sample]), new Random(1), null);
            var labels = Enumerable.Range(0, batch).Select(i => i % classes).ToArray();
            var loss = new SoftmaxCrossEntropy();
            for (int s = 0; s < 3; s++) Step(m, x, labels, loss, s);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int s = 3; s < 6; s++) Step(m, x, labels, loss, s);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }
        finally { Compute.Threads = saved; }
    }

    private static void Step(Sequential m, Tensor x, int[] labels, Loss loss, int step) =>
        m.TrainStepGradient(x, labels, null, loss, 1f / labels.Length, new StepContext(true, Seed: 3, Step: step, MicroBatch: 1));

    [Fact]
    public void MlpStepAllocatesNothingAfterWarmUp() => Assert.Equal(0, AllocatedOverSteps(TestModels.Mlp(), [1, 28, 28], 8, 10));

    [Fact]
    public void MlpStepOnTwoAlternatingInputBuffersAllocatesNothing()
    {
        // A trainer that double-buffers its batches hands the first layer (Flatten) two tensors in turn.
        var m = TestModels.Mlp();
        var xs = new[] { new Tensor(8, 1, 28, 28), new Tensor(8, 1, 28, 28) };
        int[] labels = [0, 1, 2, 3, 4, 5, 6, 7];
        var loss = new SoftmaxCrossEntropy();
        for (int s = 0; s < 4; s++) Step(m, xs[s % 2], labels, loss, s);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int s = 4; s < 8; s++) Step(m, xs[s % 2], labels, loss, s);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void CnnStepAllocatesNothingAfterWarmUp() => Assert.Equal(0, AllocatedOverSteps(TestModels.SmallCnn(), [1, 12, 12], 4, 5));

    /// <summary>Presets whose loss compares with the input (autoencoders) or whose step adds a KL term: a steady-state
    /// step of the preset itself, with its own loss, allocates nothing.</summary>
    [Theory]
    [InlineData("conv_autoencoder")]
    [InlineData("vae")]
    [InlineData("perceptron")]
    [InlineData("rbm")]
    public void PresetStepAllocatesNothingAfterWarmUp(string preset)
    {
        int saved = Compute.Threads;
        Compute.Threads = 1;
        try
        {
            var spec = Presets.Spec(preset);
            var m = spec.Build(2);
            var loss = spec.CreateLoss();
            var x = GradCheck.Fill(new Tensor([4, .. m.InputShape]), new Random(1), r => (float)r.NextDouble());
            var targets = loss.ComparesWithTargets ? x.Reshape([4, .. m.OutputShape]) : null;
            int[] labels = [0, 1, 1, 0];
            void Run(int step) => m.TrainStepGradient(x, labels, targets, loss, 0.25f, new StepContext(true, Seed: 3, Step: step, MicroBatch: 1));
            for (int s = 0; s < 3; s++) Run(s);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int s = 3; s < 6; s++) Run(s);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally { Compute.Threads = saved; }
    }
}

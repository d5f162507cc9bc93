// Every layer's Backward (input and parameter gradients) against central finite differences,
// at several shapes including odd ones, batch 1 and 3.
using DistTrain.Nn.Layers;
using Xunit;

namespace DistTrain.Nn.Tests;

public class LayerGradientTests
{
    // ReLUs inside and after a block put kinks near some points; those are detected and skipped.
    private static readonly GradCheck.Options Block = new() { MaxChecks = 40, H = 2e-3f, Atol = 3e-3, MaxKinkFraction = 0.35 };
    private static readonly GradCheck.Options Kinked = new() { Sample = GradCheck.AwayFromZero };

    [Theory]
    [InlineData(1, 5, 3)]
    [InlineData(3, 7, 1)]
    [InlineData(3, 1, 9)]
    public void Dense(int batch, int inF, int outF)
    {
        GradCheck.Layer(() => new Dense(inF, outF), [inF], batch);
        GradCheck.Layer(() => new Dense(inF, outF, bias: false), [inF], batch);
    }

    [Fact]
    public void DenseOverLastDimensionOfRank3Input() => GradCheck.Layer(() => new Dense(4, 3), [5, 4], 3);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ReLU(int batch) => GradCheck.Layer(() => new ReLU(), [3, 5], batch, Kinked);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void LeakyReLU(int batch) => GradCheck.Layer(() => new LeakyReLU(0.2f), [13], batch, Kinked);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Sigmoid(int batch) => GradCheck.Layer(() => new Sigmoid(), [2, 3, 3], batch, new() { Sample = r => (float)(r.NextDouble() * 8 - 4) });

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Tanh(int batch) => GradCheck.Layer(() => new Tanh(), [17], batch, new() { Sample = r => (float)(r.NextDouble() * 4 - 2) });

    [Theory]
    [InlineData(1, "none")]
    [InlineData(3, "none")]
    [InlineData(3, "tanh")]
    public void GELU(int batch, string approximate) =>
        GradCheck.Layer(() => new GELU(approximate), [11], batch, new() { Sample = r => (float)(r.NextDouble() * 6 - 3) });

    [Theory]
    [InlineData(1, 7)]
    [InlineData(3, 1)]
    [InlineData(3, 10)]
    public void Softmax(int batch, int k) => GradCheck.Layer(() => new Softmax(), [2, k], batch, new() { Sample = r => (float)(r.NextDouble() * 4 - 2) });

    [Theory]
    [InlineData(1, 2, 3, 5, 7, 3, 1, 1)]
    [InlineData(3, 1, 2, 6, 5, 2, 2, 0)]
    [InlineData(3, 3, 2, 7, 7, 3, 2, 1)]
    [InlineData(1, 2, 4, 4, 4, 1, 1, 0)]
    public void Conv2d(int batch, int c, int oc, int h, int w, int k, int stride, int pad) =>
        GradCheck.Layer(() => new Conv2d(c, oc, k, stride, pad), [c, h, w], batch, new() { MaxChecks = 40 });

    [Fact]
    public void Conv2dRectangularKernelWithoutBias() =>
        GradCheck.Layer(() => new Conv2d(2, 3, 2, 3, stride: 1, padding: 1, bias: false), [2, 4, 5], 3, new() { MaxChecks = 40 });

    // Distinct values at least 0.05 apart, so a ±0.01 step never changes which element is the max.
    private static Func<Random, float> Distinct()
    {
        int n = 0;
        return r => (float)((n++ * 37 % 211) * 0.05 - 5 + 0.001 * r.NextDouble());
    }

    [Theory]
    [InlineData(1, 2, 5, 6, 2, 2)]
    [InlineData(3, 3, 7, 7, 3, 2)]
    [InlineData(3, 1, 4, 4, 2, 1)]
    public void MaxPool2d(int batch, int c, int h, int w, int k, int s) =>
        GradCheck.Layer(() => new MaxPool2d(k, s), [c, h, w], batch, new() { Sample = Distinct() });

    [Theory]
    [InlineData(1, 2, 5, 6, 2, 2)]
    [InlineData(3, 3, 7, 7, 3, 2)]
    [InlineData(3, 1, 4, 4, 2, 1)]
    public void AvgPool2d(int batch, int c, int h, int w, int k, int s) =>
        GradCheck.Layer(() => new AvgPool2d(k, s), [c, h, w], batch);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Flatten(int batch) => GradCheck.Layer(() => new Flatten(), [2, 3, 5], batch);

    [Theory]
    [InlineData(1, 0.3f)]
    [InlineData(3, 0.5f)]
    public void DropoutInTraining(int batch, float p) => GradCheck.Layer(() => new Dropout(p), [4, 5], batch);

    [Fact]
    public void DropoutInEvalIsIdentity() =>
        GradCheck.Layer(() => new Dropout(0.5f), [9], 3, new() { Ctx = StepContext.Eval });

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ResidualBlockIdentityShortcut(int batch) =>
        GradCheck.Layer(() => ResidualBlock.Basic(2, 2), [2, 5, 5], batch, Block);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ResidualBlockProjectionShortcut(int batch) =>
        GradCheck.Layer(() => ResidualBlock.Basic(2, 3, stride: 2), [2, 5, 6], batch, Block);

    [Fact]
    public void ResidualBlockWithCustomPathsAndANormSlot() =>
        // The norm slot takes any layer; here a Tanh stands in for BatchNorm2d to check the plumbing.
        GradCheck.Layer(() => ResidualBlock.Basic(3, 4, stride: 1, norm: _ => new Tanh()), [3, 4, 4], 3,
            Block);

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 2)]
    public void ResidualBlockWithBatchNorm2d(int batch, int stride) =>
        GradCheck.Layer(() => ResidualBlock.Basic(2, 3, stride, norm: c => new BatchNorm2d(c)), [2, 5, 5], batch, Block);
}

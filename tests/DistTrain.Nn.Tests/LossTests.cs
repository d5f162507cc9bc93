// Losses: gradients against finite differences, values against closed forms computed in double.
using DistTrain.Nn.Losses;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class LossTests
{
    private static Tensor Random(int seed, float spread, params int[] shape) =>
        GradCheck.Fill(new Tensor(shape), new Random(seed), r => (float)((r.NextDouble() * 2 - 1) * spread));

    [Theory]
    [InlineData(1, 10)]
    [InlineData(3, 7)]
    [InlineData(3, 1)]
    public void SoftmaxCrossEntropyGradient(int b, int k)
    {
        var labels = Enumerable.Range(0, b).Select(i => (i * 5 + 1) % k).ToArray();
        GradCheck.Loss(new SoftmaxCrossEntropy(), Random(b * 10 + k, 3, b, k), labels, null);
        GradCheck.Loss(new SoftmaxCrossEntropy(), Random(b * 11 + k, 3, b, k), [], Probabilities(b, k));
    }

    [Theory]
    [InlineData(1, 10, 0.1f)]
    [InlineData(3, 7, 0.3f)]
    [InlineData(2, 1, 0.1f)]
    public void SoftmaxCrossEntropyWithLabelSmoothingGradient(int b, int k, float eps)
    {
        var labels = Enumerable.Range(0, b).Select(i => (i * 5 + 1) % k).ToArray();
        GradCheck.Loss(new SoftmaxCrossEntropy(eps), Random(b * 10 + k, 3, b, k), labels, null);
        GradCheck.Loss(new SoftmaxCrossEntropy(eps), Random(b * 11 + k, 3, b, k), [], Probabilities(b, k));
    }

    /// <summary>Against −Σ_k target_k · log softmax(z)_k in double with target = (1 − ε)·onehot + ε/K, and the
    /// closed form at equal logits (log K for every ε); hard labels equal their one-hot soft targets.</summary>
    [Fact]
    public void LabelSmoothingValueMatchesTheSmoothedTargetInDouble()
    {
        const int b = 4, k = 6; const float eps = 0.2f;
        var z = Random(3, 4, b, k);
        int[] labels = [0, 5, 2, 2];
        var d = new Tensor(b, k);
        double loss = new SoftmaxCrossEntropy(eps).Compute(z, labels, null, d, 0.25f);
        double expected = 0;
        for (int i = 0; i < b; i++)
        {
            var zi = z.ToArray().AsSpan(i * k, k).ToArray().Select(v => (double)v).ToArray();
            double m = zi.Max(), lse = m + Math.Log(zi.Sum(v => Math.Exp(v - m)));
            for (int c = 0; c < k; c++)
            {
                double t = (c == labels[i] ? 1 - eps : 0) + eps / k;
                expected += t * (lse - zi[c]);
                Assert.Equal(0.25 * (Math.Exp(zi[c] - lse) - t), d[i * k + c], 1e-6);
            }
        }
        Assert.Equal(expected, loss, 4);

        var oneHot = new Tensor(b, k);
        for (int i = 0; i < b; i++) oneHot[i * k + labels[i]] = 1f;
        var d2 = new Tensor(b, k);
        Assert.Equal(loss, new SoftmaxCrossEntropy(eps).Compute(z, [], oneHot, d2, 0.25f), 4);
        for (int i = 0; i < d.Length; i++) Assert.Equal(d[i], d2[i], 1e-7);

        var flat = new Tensor(2, k);
        Assert.Equal(2 * Math.Log(k), new SoftmaxCrossEntropy(eps).Compute(flat, [1, 3], null, new Tensor(2, k), 1f), 5);
        Assert.Throws<ArgumentException>(() => new SoftmaxCrossEntropy(1f));
        Assert.Throws<ArgumentException>(() => new SoftmaxCrossEntropy(-0.1f));
    }

    private static Tensor Probabilities(int b, int k)
    {
        var t = Random(99, 1, b, k);
        for (int i = 0; i < b; i++)
        {
            var row = t.Span.Slice(i * k, k);
            for (int c = 0; c < k; c++) row[c] = Math.Abs(row[c]) + 0.01f;
            float s = 0; foreach (var v in row) s += v;
            for (int c = 0; c < k; c++) row[c] /= s;
        }
        return t;
    }

    [Fact]
    public void SoftmaxCrossEntropyOverTimeStepsReadsRows() =>
        GradCheck.Loss(new SoftmaxCrossEntropy(), Random(5, 3, 2, 3, 4), [0, 3, 1, 2, 2, 0], null);

    [Fact]
    public void SoftmaxCrossEntropyValueIsStableForHugeLogits()
    {
        var z = new Tensor(2, 3);
        z.CopyFrom([1000f, 0f, -1000f, 1f, 2f, 3f]);
        var d = new Tensor(2, 3);
        double loss = new SoftmaxCrossEntropy().Compute(z, [1, 2], null, d, 0.5f);
        // Sample 0: lse ≈ 1000 exactly, loss 1000 − 0. Sample 1: log(e+e²+e³) − 3.
        double expected = 1000 + (Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3)) - 3);
        Assert.Equal(expected, loss, 4);
        Assert.Equal(0.5f, d[0], 5);           // softmax 1 at the max, label elsewhere
        Assert.Equal(-0.5f, d[1], 5);
        Assert.All(d.ToArray(), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void SoftmaxCrossEntropyRejectsOutOfRangeLabel()
    {
        var e = Assert.Throws<ArgumentException>(() => new SoftmaxCrossEntropy().Compute(new Tensor(2, 3), [0, 3], null, new Tensor(2, 3), 1f));
        Assert.Contains("label 3 of sample 1", e.Message);
    }

    [Theory]
    [InlineData(1, 4)]
    [InlineData(3, 5)]
    public void MeanSquaredErrorGradient(int b, int f) =>
        GradCheck.Loss(new MeanSquaredError(), Random(b + f, 2, b, f), [], Random(7, 2, b, f));

    [Fact]
    public void MeanSquaredErrorSumOverBatchSizeIsTorchMean()
    {
        var y = new Tensor(2, 2); y.CopyFrom([1f, 2f, 3f, 4f]);
        var t = new Tensor(2, 2); t.CopyFrom([0f, 0f, 1f, 1f]);
        var d = new Tensor(2, 2);
        double sum = new MeanSquaredError().Compute(y, [], t, d, 0.5f);
        // torch.nn.MSELoss()(y, t) = (1 + 4 + 4 + 9) / 4 = 4.5, and Σ_i loss_i / B must equal it.
        Assert.Equal(4.5, sum / 2, 12);
        // scale 1/B gives torch's gradient 2(y − t)/(B·F).
        Assert.Equal([0.5f, 1f, 1f, 1.5f], d.ToArray());
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(3, 1)]
    public void BinaryCrossEntropyWithLogitsGradient(int b, int f)
    {
        var targets = GradCheck.Fill(new Tensor(b, f), new Random(3), r => (float)r.NextDouble());
        GradCheck.Loss(new BinaryCrossEntropyWithLogits(), Random(b * 3 + f, 4, b, f), [], targets);
        if (f == 1)
            GradCheck.Loss(new BinaryCrossEntropyWithLogits(), Random(b, 4, b, f), Enumerable.Range(0, b).Select(i => i % 2).ToArray(), null);
    }

    [Fact]
    public void BinaryCrossEntropyWithLogitsMatchesClosedFormAndIsStable()
    {
        var z = new Tensor(3, 1); z.CopyFrom([100f, -100f, 0.5f]);
        var d = new Tensor(3, 1);
        double sum = new BinaryCrossEntropyWithLogits().Compute(z, [0, 0, 1], null, d, 1f);
        double expected = 100 + Math.Log(1 + Math.Exp(-100)) + Math.Log(1 + Math.Exp(-100)) + Math.Log(1 + Math.Exp(-0.5));
        Assert.Equal(expected, sum, 6);
        Assert.Equal(1f, d[0], 6);
        Assert.Equal(0f, d[1], 6);
        Assert.Equal(1 / (1 + Math.Exp(-0.5)) - 1, d[2], 6);
    }

    [Fact]
    public void BinaryCrossEntropyRejectsLabelOtherThanZeroOrOne() =>
        Assert.Throws<ArgumentException>(() => new BinaryCrossEntropyWithLogits().Compute(new Tensor(2, 1), [0, 2], null, new Tensor(2, 1), 1f));
}

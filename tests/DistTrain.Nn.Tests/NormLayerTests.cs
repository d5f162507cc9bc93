// BatchNorm1d/2d and LayerNorm: gradients against finite differences (train and eval), running
// statistics against a closed-form double computation, eval mode on running stats, PyTorch names,
// bad shapes, and no allocation in a steady-state step.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Tests.Support;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]  // measures allocations
public class NormLayerTests
{
    private static readonly StepContext Train = new(true);

    [Theory]
    [InlineData(2, 3, 4, 5)]
    [InlineData(3, 1, 1, 7)]
    [InlineData(1, 2, 3, 3)]
    [InlineData(4, 5, 2, 1)]
    public void BatchNorm2d_gradients_match_finite_differences_in_train_and_eval(int b, int c, int h, int w)
    {
        var rng = new Random(b * 100 + c * 10 + h + w);
        var bn = new BatchNorm2d(c);
        var store = GradCheckRnn.Bind(bn, [c, h, w]);
        GradCheckRnn.Perturb(store, rng, 0.5f);
        var x = GradCheckRnn.RandomTensor(rng, 2f, b, c, h, w);
        Assert.True(GradCheckRnn.Check(bn, store, x, Train) > 1e-3);
        // Eval: running stats that are not 0/1, so the affine map is non-trivial.
        for (int i = 0; i < c; i++) { bn.RunningMean.Value[i] = 0.3f * i - 0.2f; bn.RunningVar.Value[i] = 0.5f + i; }
        Assert.True(GradCheckRnn.Check(bn, store, x, StepContext.Eval) > 1e-3);
    }

    [Theory]
    [InlineData(3, 7)]
    [InlineData(2, 1)]
    [InlineData(5, 4)]
    public void BatchNorm1d_gradients_match_finite_differences(int b, int f)
    {
        var rng = new Random(b * 31 + f);
        var bn = new BatchNorm1d();
        var store = GradCheckRnn.Bind(bn, [f]);
        GradCheckRnn.Perturb(store, rng, 0.5f);
        Assert.Equal(f, bn.NumFeatures);
        Assert.True(GradCheckRnn.Check(bn, store, GradCheckRnn.RandomTensor(rng, 1.5f, b, f), Train) > 1e-3);
    }

    [Fact]
    public void BatchNorm1d_accepts_channels_by_length()
    {
        var rng = new Random(5);
        var bn = new BatchNorm1d(3);
        var store = GradCheckRnn.Bind(bn, [3, 4]);
        GradCheckRnn.Perturb(store, rng, 0.5f);
        GradCheckRnn.Check(bn, store, GradCheckRnn.RandomTensor(rng, 1f, 2, 3, 4), Train);
    }

    [Fact]
    public void BatchNorm2d_running_stats_and_outputs_match_closed_form()
    {
        const int b = 3, c = 2, h = 3, w = 5, s = h * w, n = b * s;
        var rng = new Random(7);
        var bn = new BatchNorm2d(c);
        var store = GradCheckRnn.Bind(bn, [c, h, w]);
        GradCheckRnn.Perturb(store, rng, 0.5f);
        double[] rm = new double[c], rv = [1.0, 1.0];
        for (int step = 0; step < 3; step++)
        {
            var x = GradCheckRnn.RandomTensor(rng, 2f, b, c, h, w);
            for (int i = 0; i < x.Length; i++) x[i] += 1.5f * step; // shifting mean
            var y = bn.Forward(x, Train);
            for (int ch = 0; ch < c; ch++)
            {
                double sum = 0, sq = 0;
                for (int i = 0; i < b; i++) for (int k = 0; k < s; k++) sum += x[(i * c + ch) * s + k];
                double mean = sum / n;
                for (int i = 0; i < b; i++) for (int k = 0; k < s; k++) { double d = x[(i * c + ch) * s + k] - mean; sq += d * d; }
                double var = sq / n;
                rm[ch] = 0.9 * rm[ch] + 0.1 * mean;
                rv[ch] = 0.9 * rv[ch] + 0.1 * sq / (n - 1);
                for (int i = 0; i < b; i++)
                    for (int k = 0; k < s; k++)
                    {
                        int o = (i * c + ch) * s + k;
                        double expected = (x[o] - mean) / Math.Sqrt(var + 1e-5) * bn.Weight.Value[ch] + bn.Bias.Value[ch];
                        Assert.Equal(expected, y[o], 4e-5);
                    }
                Assert.Equal(rm[ch], bn.RunningMean.Value[ch], 2e-6);
                Assert.Equal(rv[ch], bn.RunningVar.Value[ch], 2e-6);
            }
            Assert.Equal(step + 1, bn.NumBatchesTracked.Value[0]);
        }

        // Eval uses the running statistics and leaves them (and the counter) alone.
        var xe = GradCheckRnn.RandomTensor(rng, 2f, 2, c, h, w);
        var ye = bn.Forward(xe, StepContext.Eval);
        for (int i = 0; i < xe.Length; i++)
        {
            int ch = i / s % c;
            double expected = (xe[i] - rm[ch]) / Math.Sqrt(rv[ch] + 1e-5) * bn.Weight.Value[ch] + bn.Bias.Value[ch];
            Assert.Equal(expected, ye[i], 4e-5);
        }
        Assert.Equal(3f, bn.NumBatchesTracked.Value[0]);
        Assert.Equal(rm[1], bn.RunningMean.Value[1], 2e-6);
    }

    [Fact]
    public void BatchNorm_has_pytorch_names_shapes_and_init()
    {
        var bn = new BatchNorm2d(4);
        var store = GradCheckRnn.Bind(bn, [4, 2, 2]);
        Assert.Equal(["weight", "bias", "running_mean", "running_var", "num_batches_tracked"], bn.OwnParams.Select(p => p.LocalName));
        Assert.Equal([false, false, true, true, true], bn.OwnParams.Select(p => p.IsBuffer));
        Assert.Empty(bn.NumBatchesTracked.Shape);
        Assert.Equal(8, store.Count);
        Assert.All(bn.Weight.Value.ToArray(), v => Assert.Equal(1f, v));
        Assert.All(bn.RunningVar.Value.ToArray(), v => Assert.Equal(1f, v));
        Assert.Equal("BatchNorm2d(4, eps=1e-05, momentum=0.1)", bn.ToString());
        Assert.Equal("LayerNorm((3,4), eps=1e-05)", new LayerNorm([3, 4]).ToString());
    }

    [Fact]
    public void BatchNorm_rejects_bad_shapes_and_single_value_batches()
    {
        Assert.Throws<ArgumentException>(() => new BatchNorm2d(3).Build([4, 2, 2]));
        Assert.Throws<ArgumentException>(() => new BatchNorm2d().Build([4, 2]));
        Assert.Throws<ArgumentException>(() => new BatchNorm1d(0));
        var bn = new BatchNorm1d(3);
        GradCheckRnn.Bind(bn, [3]);
        var ex = Assert.Throws<ArgumentException>(() => bn.Forward(new Tensor(1, 3), Train));
        Assert.Contains("more than one value", ex.Message);
        bn.Forward(new Tensor(1, 3), StepContext.Eval); // eval with one sample is fine
        Assert.Throws<ArgumentException>(() => bn.Forward(new Tensor(2, 4), Train));
    }

    [Theory]
    [InlineData(new[] { 7 }, null)]
    [InlineData(new[] { 3, 5 }, null)]
    [InlineData(new[] { 2, 3, 4 }, new[] { 3, 4 })]
    [InlineData(new[] { 1 }, null)]
    public void LayerNorm_gradients_match_finite_differences(int[] sample, int[]? normalized)
    {
        var rng = new Random(sample.Sum());
        var ln = new LayerNorm(normalized);
        var store = GradCheckRnn.Bind(ln, sample);
        GradCheckRnn.Perturb(store, rng, 0.5f);
        foreach (int batch in new[] { 1, 3 })
        {
            var x = GradCheckRnn.RandomTensor(rng, 2f, [batch, .. sample]);
            double largest = GradCheckRnn.Check(ln, store, x, Train);
            Assert.True(largest > 1e-3);
        }
    }

    [Fact]
    public void LayerNorm_output_matches_closed_form()
    {
        var rng = new Random(3);
        var ln = new LayerNorm([2, 3]);
        var store = GradCheckRnn.Bind(ln, [4, 2, 3]);
        GradCheckRnn.Perturb(store, rng, 0.5f);
        Assert.Equal([2, 3], ln.Weight.Shape);
        var x = GradCheckRnn.RandomTensor(rng, 3f, 2, 4, 2, 3);
        var y = ln.Forward(x, Train);
        for (int row = 0; row < 8; row++)
        {
            double mean = 0, var = 0;
            for (int k = 0; k < 6; k++) mean += x[row * 6 + k];
            mean /= 6;
            for (int k = 0; k < 6; k++) var += (x[row * 6 + k] - mean) * (x[row * 6 + k] - mean);
            var /= 6;
            for (int k = 0; k < 6; k++)
                Assert.Equal((x[row * 6 + k] - mean) / Math.Sqrt(var + 1e-5) * ln.Weight.Value[k] + ln.Bias.Value[k], y[row * 6 + k], 3e-5);
        }
        Assert.Throws<ArgumentException>(() => new LayerNorm([3]).Build([4, 2]));
    }

    [Fact]
    public void Norm_layers_allocate_nothing_in_a_steady_state_step()
    {
        var rng = new Random(1);
        var bn = new BatchNorm2d(4);
        GradCheckRnn.Bind(bn, [4, 5, 5]);
        var x = GradCheckRnn.RandomTensor(rng, 1f, 8, 4, 5, 5);
        var dy = GradCheckRnn.RandomTensor(rng, 1f, 8, 4, 5, 5);
        Assert.Equal(0, GradCheckRnn.AllocatedBytes(() => { bn.Forward(x, Train); bn.Backward(dy); }));

        var ln = new LayerNorm();
        GradCheckRnn.Bind(ln, [6, 33]);
        var xl = GradCheckRnn.RandomTensor(rng, 1f, 4, 6, 33);
        var dl = GradCheckRnn.RandomTensor(rng, 1f, 4, 6, 33);
        Assert.Equal(0, GradCheckRnn.AllocatedBytes(() => { ln.Forward(xl, Train); ln.Backward(dl); }));
    }

    /// <summary>BatchNorm's one-pass rows against the four TensorPrimitives passes they replace: the same bits, on
    /// lengths around every vector width (tails included) and with negative zeros and large values.</summary>
    [Fact]
    public void OnePassNormalizeRowsEqualTheFourPassFormBitForBit()
    {
        var rng = new Random(8);
        foreach (int n in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 49, 196, 784 })
        {
            var x = Enumerable.Range(0, n).Select(i => i % 13 == 0 ? -0f : (float)((rng.NextDouble() - 0.5) * (i % 5 == 0 ? 1e4 : 3))).ToArray();
            var dy = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            float mean = 0.37f, invStd = 1.9f, w = -0.8f, b = 0.15f, a = -0.021f, c = 0.013f, k = 1.37f;

            var h4 = new float[n]; var y4 = new float[n];
            System.Numerics.Tensors.TensorPrimitives.Subtract(x, mean, h4);
            System.Numerics.Tensors.TensorPrimitives.Multiply(h4, invStd, h4);
            System.Numerics.Tensors.TensorPrimitives.Multiply(h4, w, y4);
            System.Numerics.Tensors.TensorPrimitives.Add(y4, b, y4);
            var h1 = new float[n]; var y1 = new float[n];
            Elementwise.NormalizeAffine(x, mean, invStd, w, b, h1, y1);
            Assert.Equal(h4.Select(BitConverter.SingleToInt32Bits), h1.Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(y4.Select(BitConverter.SingleToInt32Bits), y1.Select(BitConverter.SingleToInt32Bits));

            var d4 = new float[n];
            System.Numerics.Tensors.TensorPrimitives.Multiply(h4, a, d4);
            System.Numerics.Tensors.TensorPrimitives.Add(d4, dy, d4);
            System.Numerics.Tensors.TensorPrimitives.Add(d4, c, d4);
            System.Numerics.Tensors.TensorPrimitives.Multiply(d4, k, d4);
            var d1 = new float[n];
            Elementwise.NormalizeBackward(h1, dy, a, c, k, d1);
            Assert.Equal(d4.Select(BitConverter.SingleToInt32Bits), d1.Select(BitConverter.SingleToInt32Bits));
        }
    }
}

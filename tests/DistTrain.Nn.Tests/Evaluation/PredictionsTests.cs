// Batched eval-mode prediction equals one sample at a time (any batch size, a short last batch), and the
// confusion matrix's counts, accuracy and per-class accuracy equal a direct count.
using DistTrain.Nn.Evaluation;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests.Evaluation;

public sealed class PredictionsTests
{
    [Fact]
    public void Batched_predictions_equal_single_sample_forward()
    {
        var model = Presets.Spec("quadrant").Build(3);
        var rng = new Random(5);
        int n = 23;
        var x = new float[n * 2];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var outputs = Predictions.Outputs(model, x, n, batch: 7);
        var classes = Predictions.Classes(model, x, n, batch: 5);
        var one = new Tensor(1, 2);
        for (int s = 0; s < n; s++)
        {
            one.CopyFrom(x.AsSpan(s * 2, 2));
            var y = model.Forward(one, StepContext.Eval).ToArray();
            for (int k = 0; k < 4; k++) Assert.Equal(y[k], outputs[s * 4 + k]);
            int best = 0;
            for (int k = 1; k < 4; k++) if (y[k] > y[best]) best = k;
            Assert.Equal(best, classes[s]);
        }
        Assert.Throws<ArgumentException>(() => Predictions.Outputs(model, x, n + 1));
    }

    [Fact]
    public void Confusion_matrix_counts_match_a_direct_count()
    {
        var rng = new Random(11);
        int k = 4, n = 500;
        var actual = new int[n]; var predicted = new int[n];
        for (int i = 0; i < n; i++) { actual[i] = rng.Next(k - 1); predicted[i] = rng.Next(3) == 0 ? rng.Next(k) : actual[i]; }
        var m = new ConfusionMatrix(k);
        m.AddRange(actual, predicted);
        Assert.Equal(n, m.Total);
        for (int a = 0; a < k; a++)
            for (int p = 0; p < k; p++)
                Assert.Equal(Enumerable.Range(0, n).Count(i => actual[i] == a && predicted[i] == p), m[a, p]);
        Assert.Equal(Enumerable.Range(0, n).Count(i => actual[i] == predicted[i]) / (double)n, m.Accuracy, 12);
        var per = m.PerClassAccuracy();
        for (int c = 0; c < k - 1; c++)
            Assert.Equal(Enumerable.Range(0, n).Count(i => actual[i] == c && predicted[i] == c) / (double)actual.Count(v => v == c), per[c], 12);
        Assert.True(double.IsNaN(per[k - 1])); // class 3 never occurs as a true label
        var back = ConfusionMatrix.FromRows(m.Rows());
        Assert.Equal(m.Rows(), back.Rows());
        Assert.Throws<ArgumentException>(() => m.Add(k, 0));
    }
}

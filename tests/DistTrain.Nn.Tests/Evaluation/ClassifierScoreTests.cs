// The classifier score against closed forms (K for confident, evenly spread images; 1 for identical beliefs), against
// exp(H(p(y)) − mean H(p(y|x))) written out by hand for a small set, and Of(model) against the softmax of the model's
// own forward pass.
using DistTrain.Nn.Evaluation;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests.Evaluation;

public sealed class ClassifierScoreTests
{
    [Fact]
    public void ConfidentEvenlySpreadImagesScoreKAndIdenticalBeliefsScoreOne()
    {
        const int k = 4, n = 12;
        var oneHot = new double[n * k];
        for (int i = 0; i < n; i++) oneHot[i * k + i % k] = 1;
        var s = ClassifierScore.FromProbabilities(oneHot, n, k);
        Assert.Equal(k, s.InceptionScore, 12);
        Assert.Equal(1, s.MeanConfidence, 12);
        Assert.All(s.ClassShare, v => Assert.Equal(0.25, v, 12));

        var same = new double[n * k];
        for (int i = 0; i < n; i++) { same[i * k] = 0.7; same[i * k + 1] = 0.1; same[i * k + 2] = 0.1; same[i * k + 3] = 0.1; }
        var collapsed = ClassifierScore.FromProbabilities(same, n, k);
        Assert.Equal(1, collapsed.InceptionScore, 12);
        Assert.Equal(new[] { 1.0, 0, 0, 0 }, collapsed.ClassShare);   // mode collapse shows in the histogram
    }

    [Fact]
    public void ScoreIsTheExponentOfTheEntropyGap()
    {
        double[] p = [0.9, 0.1, 0.0, 0.2, 0.5, 0.3, 0.25, 0.25, 0.5];
        double[] m = [(0.9 + 0.2 + 0.25) / 3, (0.1 + 0.5 + 0.25) / 3, (0.0 + 0.3 + 0.5) / 3];
        double hm = -m.Sum(v => v * Math.Log(v));
        double hc = -(0.9 * Math.Log(0.9) + 0.1 * Math.Log(0.1) + 0.2 * Math.Log(0.2) + 0.5 * Math.Log(0.5) + 0.3 * Math.Log(0.3)
                      + 0.25 * Math.Log(0.25) * 2 + 0.5 * Math.Log(0.5)) / 3;
        var s = ClassifierScore.FromProbabilities(p, 3, 3);
        Assert.Equal(Math.Exp(hm - hc), s.InceptionScore, 12);
        Assert.Equal(hm, s.MarginalEntropy, 12);
        Assert.Equal(hc, s.ConditionalEntropy, 12);
        Assert.Equal((0.9 + 0.5 + 0.5) / 3, s.MeanConfidence, 12);
        Assert.Equal(new[] { 1 / 3.0, 1 / 3.0, 1 / 3.0 }, s.ClassShare);
    }

    [Fact]
    public void OfAModelIsTheScoreOfItsSoftmax()
    {
        var model = Presets.Spec("quadrant").Build(3);
        var rng = new Random(2);
        const int n = 300;
        var x = new float[n * 2];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var p = new double[n * 4];
        var one = new Tensor(1, 2);
        for (int i = 0; i < n; i++)
        {
            one.CopyFrom(x.AsSpan(i * 2, 2));
            var y = model.Forward(one, StepContext.Eval).ToArray();
            double z = y.Sum(v => Math.Exp(v));
            for (int j = 0; j < 4; j++) p[i * 4 + j] = Math.Exp(y[j]) / z;
        }
        var expected = ClassifierScore.FromProbabilities(p, n, 4);
        var actual = ClassifierScore.Of(model, x, n);
        Assert.Equal(expected.InceptionScore, actual.InceptionScore, 9);
        Assert.Equal(expected.ClassShare, actual.ClassShare);
        Assert.InRange(actual.InceptionScore, 1.01, 4);
    }
}

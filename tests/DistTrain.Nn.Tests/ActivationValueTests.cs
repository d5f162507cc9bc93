// Activation values against double-precision closed forms (GELU's erf from its Maclaurin series).
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class ActivationValueTests
{
    private static double ErfSeries(double x)
    {
        // erf x = 2/√π Σ_n (−1)^n x^(2n+1) / (n! (2n+1)); converges to double precision for |x| ≤ 4 in < 80 terms.
        double term = x, sum = x;
        for (int n = 1; n < 120; n++)
        {
            term *= -x * x / n;
            sum += term / (2 * n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    private static float[] Run(Layer layer, float[] xs)
    {
        var m = new Sequential([xs.Length], [layer]);
        var x = new Tensor(1, xs.Length); x.CopyFrom(xs);
        return m.Forward(x, StepContext.Eval).ToArray();
    }

    [Fact]
    public void GeluIsTheExactErfFormWithinFloatResolution()
    {
        var xs = Enumerable.Range(0, 161).Select(i => -4f + i * 0.05f).ToArray();
        var y = Run(new GELU(), xs);
        for (int i = 0; i < xs.Length; i++)
        {
            double expected = 0.5 * xs[i] * (1 + ErfSeries(xs[i] / Math.Sqrt(2)));
            Assert.True(Math.Abs(y[i] - expected) <= 1e-6 * Math.Max(1, Math.Abs(xs[i])), $"GELU({xs[i]}) = {y[i]}, expected {expected}");
        }
    }

    [Fact]
    public void GeluTanhSigmoidSoftmaxMatchClosedForms()
    {
        float[] xs = [-3f, -0.5f, 0f, 0.25f, 2f];
        var gt = Run(new GELU("tanh"), xs);
        var sg = Run(new Sigmoid(), xs);
        var th = Run(new Tanh(), xs);
        var sm = Run(new Softmax(), xs);
        double z = xs.Sum(v => Math.Exp(v));
        for (int i = 0; i < xs.Length; i++)
        {
            double x = xs[i];
            Assert.Equal(0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))), gt[i], 5);
            Assert.Equal(1 / (1 + Math.Exp(-x)), sg[i], 6);
            Assert.Equal(Math.Tanh(x), th[i], 6);
            Assert.Equal(Math.Exp(x) / z, sm[i], 6);
        }
        Assert.Equal([-0.03f * 3, -0.5f * 0.03f, 0f, 0.25f, 2f], Run(new LeakyReLU(0.03f), xs));
        Assert.Equal([0f, 0f, 0f, 0.25f, 2f], Run(new ReLU(), xs));
    }
}

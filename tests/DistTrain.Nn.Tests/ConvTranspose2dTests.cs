// ConvTranspose2d against its definition (a naive scatter loop, in double: y[n,o,i·s−p+a,j·s−p+b] +=
// x[n,c,i,j]·w[c,o,a,b]), against a small case worked by hand, and its backward against finite differences.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class ConvTranspose2dTests
{
    private static double[] Naive(float[] x, float[] w, float[]? bias, int batch, int c, int h, int wd, int oc, int k, int s, int p, int op)
    {
        int oh = (h - 1) * s - 2 * p + k + op, ow = (wd - 1) * s - 2 * p + k + op;
        var y = new double[batch * oc * oh * ow];
        for (int n = 0; n < batch; n++)
            for (int o = 0; o < oc; o++)
                for (int i = 0; i < oh * ow; i++)
                    y[(n * oc + o) * oh * ow + i] = bias?[o] ?? 0;
        for (int n = 0; n < batch; n++)
        for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < h; i++)
        for (int j = 0; j < wd; j++)
        for (int o = 0; o < oc; o++)
        for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
        {
            int r = i * s - p + a, q = j * s - p + b;
            if (r < 0 || r >= oh || q < 0 || q >= ow) continue;
            y[((n * oc + o) * oh + r) * ow + q] += (double)x[((n * c + ci) * h + i) * wd + j] * w[((ci * oc + o) * k + a) * k + b];
        }
        return y;
    }

    [Theory]
    [InlineData(1, 1, 1, 3, 3, 2, 1, 0, 0)]
    [InlineData(2, 3, 2, 4, 5, 3, 2, 1, 1)]
    [InlineData(3, 8, 4, 7, 7, 4, 2, 1, 0)]   // the conv autoencoder's upsampling shape (7 → 14)
    [InlineData(2, 16, 8, 5, 6, 3, 1, 1, 0)]  // 3x3 stride 1 pad 1: the shape Conv2d may run as Winograd
    [InlineData(1, 2, 3, 3, 2, 5, 3, 2, 2)]
    public void ForwardMatchesTheScatterDefinition(int batch, int c, int oc, int h, int w, int k, int s, int p, int op)
    {
        var layer = new ConvTranspose2d(c, oc, k, s, p, op);
        var model = new Sequential([c, h, w], [layer], seed: 3);
        var x = GradCheck.Fill(new Tensor([batch, c, h, w]), new Random(batch + k), null);
        var y = model.Forward(x, StepContext.Eval).ToArray();
        var expected = Naive(x.ToArray(), layer.Weight.Value.ToArray(), layer.Bias!.Value.ToArray(), batch, c, h, w, oc, k, s, p, op);
        Assert.Equal(expected.Length, y.Length);
        Assert.Equal([oc, (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op], model.OutputShape);
        for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-5 + 1e-5 * Math.Abs(expected[i]), $"y[{i}] = {y[i]}, expected {expected[i]}");
    }

    [Fact]
    public void StrideTwoKernelTwoTilesEachInputIntoItsOwnBlock()
    {
        // One channel, ones kernel, stride 2: each input pixel becomes a 2x2 block of itself (plus the bias).
        var layer = new ConvTranspose2d(1, 1, 2, stride: 2);
        var model = new Sequential([1, 2, 2], [layer]);
        layer.Weight.Value.Span.Fill(1f);
        layer.Bias!.Value[0] = 0.5f;
        var y = model.Forward(new Tensor([1f, 2f, 3f, 4f], 0, 1, 1, 2, 2), StepContext.Eval).ToArray();
        Assert.Equal([1.5f, 1.5f, 2.5f, 2.5f, 1.5f, 1.5f, 2.5f, 2.5f, 3.5f, 3.5f, 4.5f, 4.5f, 3.5f, 3.5f, 4.5f, 4.5f], y);
    }

    [Theory]
    [InlineData(1, 2, 3, 3, 4, 3, 1, 0, 0)]
    [InlineData(3, 2, 2, 4, 3, 3, 2, 1, 1)]
    [InlineData(2, 3, 2, 3, 3, 4, 2, 1, 0)]
    [InlineData(2, 9, 3, 4, 4, 3, 1, 1, 0)]
    public void BackwardMatchesFiniteDifferences(int batch, int c, int oc, int h, int w, int k, int s, int p, int op)
    {
        GradCheck.Layer(() => new ConvTranspose2d(c, oc, k, s, p, op), [c, h, w], batch, new() { MaxChecks = 40 });
        GradCheck.Layer(() => new ConvTranspose2d(c, oc, k, s, p, op, bias: false), [c, h, w], batch, new() { MaxChecks = 40 });
    }

    [Fact]
    public void ParametersHavePyTorchNamesAndLayout()
    {
        var model = ModelSpec.Parse("""
            {"input":[4,7,7],"loss":"mse","layers":[{"type":"conv_transpose2d","out":2,"kernel":4,"stride":2,"padding":1,"name":"up"}]}
            """).Build();
        Assert.Equal([2, 14, 14], model.OutputShape);
        Assert.Equal(["up.weight (4,2,4,4)", "up.bias (2)"], model.Parameters().Select(p => p.ToString()));
        Assert.Equal("ConvTranspose2d(4, 2, kernel_size=4, stride=2, padding=1)", model.Layers[0].ToString());
    }

    [Fact]
    public void BadSpecsNameTheFieldAndTheFix()
    {
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""
            {"input":[4,7,7],"layers":[{"type":"deconv","out":2,"kernel":3,"stride":2,"output_padding":2}]}
            """));
        Assert.Contains("output_padding", e.Message);
        Assert.Contains("smaller than the stride", e.Message);
        e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""
            {"input":[4,1,1],"layers":[{"type":"conv_transpose2d","out":2,"kernel":1,"padding":1}]}
            """));
        Assert.Contains("leaves no output", e.Message);
        Assert.Throws<ArgumentException>(() => new ConvTranspose2d(2, 2, 3, stride: 2, outputPadding: 2));
    }
}

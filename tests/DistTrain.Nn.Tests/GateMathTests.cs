// GateMath's sigmoid and tanh: accuracy against double precision over a sweep that includes the
// clamps and tiny inputs, NaN kept, and the same bits for an element whether it falls in the
// Vector256 body or the scalar tail (so results do not depend on span length or machine).
using DistTrain.Nn.Layers;
using Xunit;

namespace DistTrain.Nn.Tests;

public class GateMathTests
{
    private static float[] Sweep()
    {
        var v = new List<float> { 0f, -0f, 1e-30f, -1e-7f, 1e-3f, 0.5f, -0.5f, 1f, -1f, 9f, -9f, 20f, -20f, 44f, -44f, 87f, -87f, 88.5f, -88.5f, 100f, -100f, 1e30f, -1e30f };
        for (int i = -4000; i <= 4000; i++) v.Add(i * 0.00437f);
        return [.. v];
    }

    [Fact]
    public void Sigmoid_and_tanh_match_double_precision()
    {
        var x = Sweep();
        var s = new float[x.Length]; var t = new float[x.Length];
        GateMath.Sigmoid(x, s);
        GateMath.Tanh(x, t);
        for (int i = 0; i < x.Length; i++)
        {
            double es = 1 / (1 + Math.Exp(-(double)x[i])), et = Math.Tanh(x[i]);
            Assert.True(Math.Abs(s[i] - es) <= 1.5e-7 * Math.Max(1e-30, Math.Abs(es)) + 1e-38, $"sigmoid({x[i]:R}) = {s[i]:R}, expected {es:R}");
            Assert.True(Math.Abs(t[i] - et) <= 2.5e-7 * Math.Abs(et) + 6e-8, $"tanh({x[i]:R}) = {t[i]:R}, expected {et:R}");
        }
        Assert.Equal(1f, s[Array.IndexOf(x, 100f)]);
        Assert.Equal(-1f, t[Array.IndexOf(x, -100f)]);
        var nan = new float[] { float.NaN, 1, 2, 3, 4, 5, 6, 7, float.NaN };
        GateMath.Sigmoid(nan, nan);
        Assert.True(float.IsNaN(nan[0]) && float.IsNaN(nan[8]));
    }

    [Fact]
    public void An_element_gets_the_same_bits_in_the_vector_body_and_the_scalar_tail()
    {
        var x = Sweep();
        var whole = new float[x.Length]; var single = new float[1];
        foreach (var op in new Action<ReadOnlySpan<float>, Span<float>>[] { GateMath.Sigmoid, GateMath.Tanh })
        {
            op(x, whole);   // mostly Vector256 blocks
            for (int i = 0; i < x.Length; i++)
            {
                op(x.AsSpan(i, 1), single);   // scalar path
                Assert.Equal(BitConverter.SingleToInt32Bits(whole[i]), BitConverter.SingleToInt32Bits(single[0]));
            }
        }
    }
}

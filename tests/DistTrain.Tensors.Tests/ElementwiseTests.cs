// Elementwise operators through the shared drivers: length sweep 0..257 against closed forms in double
// precision and bit-identity with the portable path, a row per SIMD path; deterministic reductions, and bad operands.
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using DistTrain.Tensors.Kernels.Operators;
using DistTrain.Tests;
using System.Runtime.Intrinsics;
using Xunit;

namespace DistTrain.Tensors.Tests;

public class ElementwiseTests
{
    private static double Tanh(double u) => Math.Tanh(u);
    private static double GeluRef(double x) => 0.5 * x * (1 + Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    /// <summary>erf by its series of positive terms, 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(1·3·…·(2n+1)) (no cancellation; ~1e-15 here).</summary>
    private static double Erf(double x)
    {
        double term = x, sum = x;
        for (int n = 1; n < 200 && Math.Abs(term) > 1e-18 * Math.Abs(sum); n++) sum += term *= 2 * x * x / (2 * n + 1);
        return 2 / Math.Sqrt(Math.PI) * Math.Exp(-x * x) * sum;
    }
    private static double Phi(double x) => 0.5 * (1 + Erf(x / Math.Sqrt(2)));

    // name, op (x, dy, out), closed form (x, dy) -> expected, tolerance (absolute + relative)
    public static IEnumerable<object[]> Ops()
    {
        yield return new object[] { "relu_backward" };
        yield return new object[] { "leaky_relu" };
        yield return new object[] { "leaky_relu_backward" };
        yield return new object[] { "gelu" };
        yield return new object[] { "gelu_backward" };
        yield return new object[] { "gelu_erf" };
        yield return new object[] { "gelu_erf_backward" };
        yield return new object[] { "sigmoid_backward" };
        yield return new object[] { "tanh_backward" };
        yield return new object[] { "clamp" };
        yield return new object[] { "exp" };
        yield return new object[] { "axpy" };
    }

    private static void Run(string op, float[] x, float[] dy, float[] o)
    {
        switch (op)
        {
            case "relu_backward": Elementwise.ReluBackward(x, dy, o); break;
            case "leaky_relu": Elementwise.LeakyRelu(x, o, 0.1f); break;
            case "leaky_relu_backward": Elementwise.LeakyReluBackward(x, dy, o, 0.1f); break;
            case "gelu": Elementwise.Gelu(x, o); break;
            case "gelu_backward": Elementwise.GeluBackward(x, dy, o); break;
            case "gelu_erf": Elementwise.GeluErf(x, o); break;
            case "gelu_erf_backward": Elementwise.GeluErfBackward(x, dy, o); break;
            case "sigmoid_backward": Elementwise.SigmoidBackward(x, dy, o); break;
            case "tanh_backward": Elementwise.TanhBackward(x, dy, o); break;
            case "clamp": Elementwise.Clamp(x, o, -0.5f, 2f); break;
            case "exp": Elementwise.Exp(x, o); break;
            case "axpy": dy.CopyTo(o, 0); Elementwise.Axpy(1.5f, x, o); break;
        }
    }

    private static double Expected(string op, double x, double dy) => op switch
    {
        "relu_backward" => x > 0 ? dy : 0,
        "leaky_relu" => x > 0 ? x : 0.1 * x,
        "leaky_relu_backward" => x > 0 ? dy : 0.1 * dy,
        "gelu" => GeluRef(x),
        "gelu_backward" => dy * (GeluRef(x + 1e-5) - GeluRef(x - 1e-5)) / 2e-5,
        "gelu_erf" => x * Phi(x),
        "gelu_erf_backward" => dy * (Phi(x) + x * Math.Exp(-x * x / 2) / Math.Sqrt(2 * Math.PI)),
        "sigmoid_backward" => dy * x * (1 - x),
        "tanh_backward" => dy * (1 - x * x),
        "clamp" => Math.Min(Math.Max(x, -0.5), 2),
        "exp" => Math.Exp(x),
        "axpy" => 1.5 * x + dy,
        _ => throw new ArgumentException(op),
    };

    public static IEnumerable<object[]> OpsOnEveryPath() => SimdRows.Cross(Ops());

    [SkippableTheory, MemberData(nameof(OpsOnEveryPath))]
    public void LengthSweepMatchesClosedFormOnEveryPath(string op, SimdPath path)
    {
        SimdRows.Require(path);
        for (int n = 0; n <= 257; n++)
        {
            var x = ConvTests.Random(n, n); var dy = ConvTests.Random(n, n + 1000);
            for (int i = 0; i < n; i++) x[i] *= 6f;   // [-6, 6]: saturating GELU/exp regions too
            float[] RunOn(SimdPath p)
            {
                using var _ = Simd.Force(p);
                var o = new float[n];
                Run(op, x, dy, o);
                return o;
            }
            var got = RunOn(path);
            for (int i = 0; i < n; i++)
            {
                double e = Expected(op, x[i], dy[i]);
                Assert.True(Math.Abs(got[i] - e) <= 2e-6 + 2e-6 * Math.Abs(e), $"{op} {path} n={n} [{i}] x={x[i]}: {got[i]} vs {e}");
            }
            if (path != SimdPath.Portable) Assert.Equal(RunOn(SimdPath.Portable), got);   // bit-identical across SIMD paths
        }
    }

    [Fact]
    public void ExpHandlesExtremes()
    {
        var x = new[] { -1000f, -87.5f, -87f, 0f, 1e-8f, 88f, 200f, float.NaN, float.NegativeInfinity };
        var y = new float[x.Length];
        Elementwise.Exp(x, y);
        Assert.Equal(0f, y[0]); Assert.Equal(0f, y[1]); Assert.Equal(1f, y[3]);
        Assert.True(Math.Abs(y[2] - Math.Exp(-87)) <= 1e-6 * Math.Exp(-87));
        Assert.True(float.IsFinite(y[5]) && float.IsFinite(y[6]) && y[6] == y[5]);
        Assert.True(float.IsNaN(y[7])); Assert.Equal(0f, y[8]);
    }

    [Fact]
    public void FixedOrderSumsMatchTheirScalarDefinitionAndAreCloseToTheTrueSum()
    {
        for (int n = 0; n <= 257; n++)
        {
            var x = ConvTests.Random(n, n);
            Assert.Equal(Reductions.SumFixedReference(x), Reductions.SumFixed(x));
            double exact = x.Sum(v => (double)v);
            Assert.True(Math.Abs(Reductions.SumFixed(x) - exact) <= 1e-5 * (1 + n));
            var y = ConvTests.Random(n, n + 1);
            double dot = x.Zip(y, (a, b) => (double)a * b).Sum();
            Assert.True(Math.Abs(Reductions.DotFixed(x, y) - dot) <= 1e-5 * (1 + n));
        }
    }

    [Fact]
    public void BiasAddAndColumnSums()
    {
        const int rows = 5, cols = 7;
        var x = ConvTests.Random(rows * cols, 1); var bias = ConvTests.Random(cols, 2);
        var y = (float[])x.Clone();
        Elementwise.AddBiasRows(y, rows, bias);
        for (int i = 0; i < y.Length; i++) Assert.Equal(x[i] + bias[i % cols], y[i]);
        var sums = new float[cols];
        Reductions.AddColumnSums(x, rows, cols, sums);
        for (int j = 0; j < cols; j++)
        {
            float s = 0; for (int r = 0; r < rows; r++) s += x[r * cols + j];
            Assert.Equal(s, sums[j]);
        }
        var planes = (float[])x.Clone();   // (B=1, C=5, P=7)
        var cb = ConvTests.Random(rows, 3);
        Elementwise.AddBiasChannels(planes, 1, cb, cols);
        for (int i = 0; i < planes.Length; i++) Assert.Equal(x[i] + cb[i / cols], planes[i]);
    }

    [Fact]
    public void InPlaceWorksAndBadOperandsAreNamed()
    {
        var x = ConvTests.Random(40, 1); var copy = (float[])x.Clone(); var o = new float[40];
        Elementwise.Gelu(x, o); Elementwise.Gelu(copy, copy);
        Assert.Equal(o, copy);
        var e = Assert.Throws<ArgumentException>(() => Elementwise.Gelu(new float[3], new float[4]));
        Assert.Contains("x has 3", e.Message); Assert.Contains("y has 4", e.Message);
        e = Assert.Throws<ArgumentException>(() => Elementwise.ReluBackward(new float[3], new float[2], new float[3]));
        Assert.Equal("y", e.ParamName);
        var buf = new float[10];
        Assert.Throws<ArgumentException>(() => Elementwise.Unary(buf.AsSpan(0, 8), buf.AsSpan(1, 8), new GeluOperator()));
        Assert.Throws<ArgumentException>(() => Elementwise.Clamp(buf, buf, 2f, 1f));
        Assert.Throws<ArgumentException>(() => Elementwise.AddBiasRows(new float[10], 3, new float[3]));
    }
    // Every operator's Vector256 and Vector512 forms give the scalar form's bits in every lane. This runs
    // the Vector512 code even on machines without AVX-512 (in software there), so its logic is checked
    // wherever the tests run.
    [Fact]
    public void VectorFormsEqualScalarFormLaneByLane()
    {
        CheckUnary(new GeluOperator()); CheckUnary(new LeakyReluOperator(0.2f)); CheckUnary(new ClampOperator(-1f, 0.5f));
        CheckUnary(new ExpOperator()); CheckUnary(new ExpShiftOperator(1.5f));
        CheckBinary(new GeluBackwardOperator()); CheckBinary(new ReluBackwardOperator()); CheckBinary(new LeakyReluBackwardOperator(0.2f));
        CheckUnary(new GeluErfOperator()); CheckBinary(new GeluErfBackwardOperator());
        CheckBinary(new SigmoidBackwardOperator()); CheckBinary(new TanhBackwardOperator()); CheckBinary(new AxpyOperator(-0.7f));
    }

    private static float[] Inputs(int seed)
    {
        var a = ConvTests.Random(64, seed);
        for (int i = 0; i < a.Length; i++) a[i] *= 30f;
        a[0] = 0f; a[1] = -0f; a[2] = 100f; a[3] = -100f; a[4] = float.NaN; a[5] = 1e-30f;
        return a;
    }

    private static void CheckUnary<TOp>(TOp op) where TOp : struct, IUnaryOperator
    {
        var x = Inputs(1);
        for (int i = 0; i + 16 <= x.Length; i += 16)
        {
            var v512 = op.Invoke(Vector512.Create(x, i));
            var v256 = op.Invoke(Vector256.Create(x, i));
            for (int l = 0; l < 16; l++)
            {
                float s = op.Invoke(x[i + l]);
                Same(s, v512.GetElement(l));
                if (l < 8) Same(s, v256.GetElement(l));
            }
        }
    }

    private static void Same(float scalar, float lane)
    {
        if (float.IsNaN(scalar)) Assert.True(float.IsNaN(lane));   // NaN payloads may differ; NaN-ness may not
        else Assert.Equal(BitConverter.SingleToInt32Bits(scalar), BitConverter.SingleToInt32Bits(lane));
    }

    private static void CheckBinary<TOp>(TOp op) where TOp : struct, IBinaryOperator
    {
        var x = Inputs(2); var y = Inputs(3);
        for (int i = 0; i + 16 <= x.Length; i += 16)
        {
            var v512 = op.Invoke(Vector512.Create(x, i), Vector512.Create(y, i));
            var v256 = op.Invoke(Vector256.Create(x, i), Vector256.Create(y, i));
            for (int l = 0; l < 16; l++)
            {
                float s = op.Invoke(x[i + l], y[i + l]);
                Same(s, v512.GetElement(l));
                if (l < 8) Same(s, v256.GetElement(l));
            }
        }
    }
}

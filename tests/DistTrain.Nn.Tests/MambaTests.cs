// The selective scan against a naive double-precision recurrence written from the formula; the scan's
// backward, the Mamba mixer and the residual block against finite differences; the mamba preset's
// mamba_ssm parameter names, no allocation per step, the same bits on 1 and 2 threads and the scan's portable
// bits on each vector path (a row per path).
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]  // measures allocations and sets Compute.Threads
public class MambaTests
{
    /// <summary>h_t = exp(Δ_t A) h₍t−1₎ + Δ_t B_t u_t, y_t = C_t·h_t + D u_t per channel, in double; A (Di,N).</summary>
    internal static double[] NaiveScan(int t, int di, int n, float[] u, float[] delta, float[] a, float[] bm, float[] cm, float[] d)
    {
        var y = new double[t * di];
        for (int c = 0; c < di; c++)
        {
            var h = new double[n];
            for (int s = 0; s < t; s++)
            {
                double acc = (double)d[c] * u[s * di + c];
                for (int k = 0; k < n; k++)
                {
                    h[k] = Math.Exp((double)delta[s * di + c] * a[c * n + k]) * h[k] + (double)delta[s * di + c] * bm[s * n + k] * u[s * di + c];
                    acc += cm[s * n + k] * h[k];
                }
                y[s * di + c] = acc;
            }
        }
        return y;
    }

    private static float[] Rand(Random r, int count, double lo, double hi) =>
        Enumerable.Range(0, count).Select(_ => (float)(lo + r.NextDouble() * (hi - lo))).ToArray();

    [Theory]
    [InlineData(28, 128, 16)]
    [InlineData(5, 7, 3)]
    [InlineData(1, 20, 1)]
    public void Scan_matches_the_naive_double_reference(int t, int di, int n)
    {
        var r = new Random(t * 100 + di);
        var u = Rand(r, t * di, -2, 2); var delta = Rand(r, t * di, 0.001, 1.5);
        var a = Rand(r, di * n, -4, -0.05); var bm = Rand(r, t * n, -1, 1); var cm = Rand(r, t * n, -1, 1); var d = Rand(r, di, -1, 1);
        var at = new float[n * di];
        for (int c = 0; c < di; c++) for (int k = 0; k < n; k++) at[k * di + c] = a[c * n + k];
        var y = new float[t * di];
        SelectiveScan.Forward(t, di, n, u, delta, at, bm, cm, n, d, y, new float[t * n * di], new float[t * n * di]);
        var expected = NaiveScan(t, di, n, u, delta, a, bm, cm, d);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - expected[i]) <= 2e-5 + 2e-5 * Math.Abs(expected[i]), $"y[{i}] = {y[i]}, reference {expected[i]}");
    }

    [Fact]
    public void Scan_backward_matches_double_precision_finite_differences()
    {
        // Central differences of the naive double scan (step 1e-4) against SelectiveScan.Backward, for every input.
        const int t = 4, di = 29, n = 3;   // a 16-channel block (AVX-512), an 8-channel block and a 5-channel rest
        var r = new Random(3);
        var u = Rand(r, t * di, -2, 2); var delta = Rand(r, t * di, 0.05, 1.2);
        var a = Rand(r, di * n, -3, -0.1); var bm = Rand(r, t * n, -1, 1); var cm = Rand(r, t * n, -1, 1); var d = Rand(r, di, -1, 1);
        var dy = Rand(r, t * di, -1, 1);
        var at = new float[n * di];
        for (int c = 0; c < di; c++) for (int k = 0; k < n; k++) at[k * di + c] = a[c * n + k];
        var h = new float[t * n * di]; var abar = new float[t * n * di];
        SelectiveScan.Forward(t, di, n, u, delta, at, bm, cm, n, d, new float[t * di], h, abar);
        float[] du = new float[t * di], dDelta = new float[t * di], dat = new float[n * di], dbm = new float[t * n], dcm = new float[t * n], dd = new float[di];
        SelectiveScan.Backward(t, di, n, u, delta, at, bm, cm, n, d, h, abar, dy, du, dDelta, dat, dbm, dcm, dd,
            new float[SelectiveScan.ScratchLength(t, di, n)], new double[2 * t * n]);

        double L() => NaiveScan(t, di, n, u, delta, a, bm, cm, d).Select((v, i) => v * dy[i]).Sum();
        void Check(string what, float[] values, Func<int, float> analytic)
        {
            for (int i = 0; i < values.Length; i++)
            {
                float v = values[i];
                values[i] = v + 1e-3f; double lp = L();
                values[i] = v - 1e-3f; double lm = L();
                values[i] = v;
                double num = (lp - lm) / ((double)(v + 1e-3f) - (v - 1e-3f));
                Assert.True(Math.Abs(num - analytic(i)) <= 1e-4 + 1e-3 * Math.Abs(num), $"{what}[{i}]: analytic {analytic(i)}, numeric {num}");
            }
        }
        Check("u", u, i => du[i]);
        Check("delta", delta, i => dDelta[i]);
        Check("A", a, i => dat[(i % n) * di + i / n]);
        Check("B", bm, i => dbm[i]);
        Check("C", cm, i => dcm[i]);
        Check("D", d, i => dd[i]);
    }

    [SkippableTheory, MemberData(nameof(SimdRows.VectorPaths), MemberType = typeof(SimdRows))]
    public void Scan_gives_the_portable_bits_on_every_vector_path(SimdPath path)
    {
        SimdRows.Require(path);
        const int t = 6, di = 45, n = 5;   // a 16-channel block, two 8-channel blocks, a 5-channel rest
        var r = new Random(11);
        var u = Rand(r, t * di, -2, 2); var delta = Rand(r, t * di, 0.01, 1.2); var at = Rand(r, n * di, -3, -0.1);
        var bm = Rand(r, t * n, -1, 1); var cm = Rand(r, t * n, -1, 1); var d = Rand(r, di, -1, 1); var dy = Rand(r, t * di, -1, 1);
        int[] Run(SimdPath p)
        {
            using var _ = Simd.Force(p);
            var y = new float[t * di]; var h = new float[t * n * di]; var abar = new float[t * n * di];
            SelectiveScan.Forward(t, di, n, u, delta, at, bm, cm, n, d, y, h, abar);
            float[] du = new float[t * di], dDelta = new float[t * di], dat = new float[n * di], dbm = new float[t * n], dcm = new float[t * n], dd = new float[di];
            SelectiveScan.Backward(t, di, n, u, delta, at, bm, cm, n, d, h, abar, dy, du, dDelta, dat, dbm, dcm, dd,
                new float[SelectiveScan.ScratchLength(t, di, n)], new double[2 * t * n]);
            return y.Concat(du).Concat(dDelta).Concat(dat).Concat(dbm).Concat(dcm).Concat(dd).Select(BitConverter.SingleToInt32Bits).ToArray();
        }
        Assert.Equal(Run(SimdPath.Portable), Run(path));
    }

    private static readonly GradCheck.Options Smooth = new() { MaxChecks = 30, H = 4e-3f, Atol = 2e-3, Rtol = 2e-2 };

    [Theory]
    [InlineData(1, 5, 4, 3)]
    [InlineData(2, 3, 6, 2)]
    public void Mixer_gradients_match_finite_differences(int b, int t, int dModel, int dState)
    {
        var model = new Sequential([t, dModel], [("mixer", (Layer)new Mamba(dModel, dState, expand: 2, dConv: 3))], seed: 2) { InputGrad = true };
        GradCheck.Model(model, b, Smooth);
    }

    [Fact]
    public void Block_gradients_match_finite_differences()
    {
        var model = new Sequential([6, 4], [("block", (Layer)new MambaBlock(4, 3, 2, 4))], seed: 5) { InputGrad = true };
        var rng = new Random(7);
        foreach (ref var v in model.Store.Values.AsSpan()) v += (float)(rng.NextDouble() * 2 - 1) * 0.1f;
        GradCheck.Model(model, 2, Smooth);
    }

    [Fact]
    public void Mamba_preset_has_mamba_ssm_names_and_init()
    {
        var model = Presets.Spec("mamba").Build(seed: 1);
        var names = model.Store.All.Select(p => $"{p.Name} {Tensor.ShapeString(p.Shape)}").ToList();
        foreach (var expected in new[] { "block1.norm.weight (64)", "block1.mixer.in_proj.weight (256,64)", "block1.mixer.conv1d.weight (128,1,4)",
                     "block1.mixer.conv1d.bias (128)", "block1.mixer.x_proj.weight (36,128)", "block1.mixer.dt_proj.weight (128,4)",
                     "block1.mixer.dt_proj.bias (128)", "block1.mixer.A_log (128,16)", "block1.mixer.D (128)", "block2.mixer.out_proj.weight (64,128)" })
            Assert.Contains(expected, names);
        Assert.DoesNotContain(names, s => s.Contains("in_proj.bias") || s.Contains("out_proj.bias") || s.Contains("x_proj.bias"));
        var mixer = ((MambaBlock)model.Layers[2]).Mixer;
        Assert.Equal(MathF.Log(5f), mixer.ALog.Value[4]);
        // softplus(dt_proj.bias) lies in [0.001, 0.1], log-uniformly.
        Assert.All(mixer.DtBias.Value.ToArray(), v => Assert.InRange(Math.Log(1 + Math.Exp(v)), 0.001 - 1e-6, 0.1 + 1e-6));
        Assert.Equal([10], model.OutputShape);
    }

    private static (double Loss, float[] Grads) PresetGradient(int threads)
    {
        int saved = Compute.Threads;
        Compute.Threads = threads;
        try
        {
            var m = Presets.Spec("mamba").Build(seed: 4);
            var x = GradCheck.Fill(new Tensor(5, 1, 28, 28), new Random(8), r => r.NextSingle());
            double loss = m.TrainStepGradient(x, [0, 4, 2, 9, 1], null, new SoftmaxCrossEntropy(), 0.2f, new StepContext(true, Seed: 3, Step: 2, MicroBatch: 1));
            return (loss, (float[])m.Store.Grads.Clone());
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void Mamba_gradient_is_bit_identical_twice_and_on_two_threads()
    {
        var a = PresetGradient(1);
        var b = PresetGradient(1);
        var c = PresetGradient(2);
        Assert.Contains(a.Grads, g => g != 0);
        Assert.Equal(a.Loss, b.Loss);
        Assert.Equal(a.Grads, b.Grads);
        Assert.Equal(a.Loss, c.Loss);
        Assert.Equal(a.Grads, c.Grads);
    }

    [Fact]
    public void Mamba_step_allocates_nothing_after_warm_up()
    {
        int saved = Compute.Threads;
        Compute.Threads = 1;
        try
        {
            var m = Presets.Spec("mamba").Build(seed: 1);
            var x = GradCheck.Fill(new Tensor(3, 1, 28, 28), new Random(1), null);
            int[] labels = [1, 2, 3];
            var loss = new SoftmaxCrossEntropy();
            void Step(int s) => m.TrainStepGradient(x, labels, null, loss, 1f / 3, new StepContext(true, Seed: 3, Step: s));
            for (int s = 0; s < 3; s++) Step(s);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int s = 3; s < 6; s++) Step(s);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally { Compute.Threads = saved; }
    }
}

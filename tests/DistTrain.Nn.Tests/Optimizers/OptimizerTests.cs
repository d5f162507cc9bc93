// Every optimizer against a double-precision PyTorch-formula reference and against hand-computed
// traces; bit-identical results on every SIMD path (a row per path); the factory's names and errors.
using DistTrain.Nn.Optimizers;
using DistTrain.Tensors;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Nn.Tests.Optimizers;

[CollectionDefinition("OptimizerSimd", DisableParallelization = true)]
public sealed class OptimizerSimdCollection;

[Collection("OptimizerSimd")]
public class OptimizerTests
{
    // β etc. as float, then widened: the reference sees exactly the hyper-parameters the optimizer uses.
    public static TheoryData<string, float> Cases() => new()
    {
        { "sgd", 0f }, { "sgd", 0.05f },
        { "momentum", 0f }, { "momentum", 0.05f }, { "momentum-ema", 0f }, { "momentum-ema", 0.05f },
        { "nesterov", 0f }, { "nesterov", 0.05f },
        { "adagrad", 0f }, { "adagrad", 0.05f },
        { "rmsprop", 0f }, { "rmsprop", 0.05f },
        { "adam", 0f }, { "adam", 0.05f }, { "adamw", 0.01f }, { "adamw", 0.2f },
    };

    private static (Optimizer, RefOptimizer) Make(string name, float wd, int n)
    {
        var o = new OptimizerOptions { WeightDecay = wd, Momentum = 0.8f, LrDecay = name == "adagrad" ? 0.01f : 0f,
            InitialAccumulatorValue = name == "adagrad" ? 0.1f : 0f, MomentumForm = name == "momentum-ema" ? MomentumForm.Ema : MomentumForm.Classic };
        var opt = OptimizerFactory.Create(name == "momentum-ema" ? "momentum" : name, n, o);
        RefOptimizer r = name switch
        {
            "sgd" => new RefSgd(n, wd),
            "momentum" => new RefMomentum(n, 0.8f, ema: false, nesterov: false, wd),
            "momentum-ema" => new RefMomentum(n, 0.8f, ema: true, nesterov: false, wd),
            "nesterov" => new RefMomentum(n, 0.8f, ema: false, nesterov: true, wd),
            "adagrad" => new RefAdagrad(n, 1e-10f, 0.01f, 0.1f, wd),
            "rmsprop" => new RefRmsProp(n, 0.99f, 1e-8f, wd),
            "adam" => new RefAdam(n, 0.9f, 0.999f, 1e-8f, wd, decoupled: false),
            "adamw" => new RefAdam(n, 0.9f, 0.999f, 1e-8f, wd, decoupled: true),
            _ => throw new ArgumentException(name),
        };
        return (opt, r);
    }

    // A fixed gradient sequence, |g| in [0.1, 1.3] with both signs, so ratios like m/√v are well conditioned.
    private static float Grad(int step, int i) => (float)((0.1 + 1.2 * ((i * 37 + step * 11) % 29) / 28.0) * ((i + step) % 3 == 0 ? -1 : 1));
    private static float Init(int i) => (float)Math.Sin(i * 0.7 + 0.3);
    private static float Lr(long t) => 0.05f * (1 + 0.1f * t);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_double_precision_reference_over_six_steps(string name, float wd)
    {
        const int n = 37; // two 16-lane blocks and a 5-element tail
        var (opt, reference) = Make(name, wd, n);
        var p = new float[n];
        var pd = new double[n];
        for (int i = 0; i < n; i++) pd[i] = p[i] = Init(i);
        var g = new float[n];
        var gd = new double[n];
        for (int t = 1; t <= 6; t++)
        {
            for (int i = 0; i < n; i++) gd[i] = g[i] = Grad(t, i);
            opt.Step(p, g, Lr(t), t);
            reference.Step(pd, gd, Lr(t), t);
        }
        for (int i = 0; i < n; i++)
            Assert.True(Math.Abs(p[i] - pd[i]) <= 2e-6 * Math.Max(1, Math.Abs(pd[i])), $"{name} wd={wd} [{i}]: {p[i]} vs reference {pd[i]}");
        var state = opt.State;
        for (int s = 0; s < state.Count; s++)
            for (int i = 0; i < n; i++)
                Assert.True(Math.Abs(state[s].Data[i] - reference.State[s][i]) <= 2e-6 * Math.Max(1, Math.Abs(reference.State[s][i])),
                    $"{name} state {state[s].Name}[{i}]: {state[s].Data[i]} vs {reference.State[s][i]}");
    }

    private static float[] Run(Optimizer o, float p0, params float[] grads) => Run(o, 0.1f, p0, grads);

    private static float[] Run(Optimizer o, float lr, float p0, float[] grads)
    {
        var p = new[] { p0 };
        var trace = new float[grads.Length];
        for (int t = 1; t <= grads.Length; t++) { o.Step(p, [grads[t - 1]], lr, t); trace[t - 1] = p[0]; }
        return trace;
    }

    [Fact]
    public void Hand_computed_traces()
    {
        // lr 0.1 unless given; classic: v = 1, 2.9, 5.61 -> p = 0.9, 0.61, 0.049
        Assert.Equal([0.9f, 0.61f, 0.049f], Run(new Momentum(1, 0.9f), 1f, 1, 2, 3), new Tol(1e-6f));
        // EMA: v = 0.1, 0.29, 0.561 -> p = 0.99, 0.961, 0.9049
        Assert.Equal([0.99f, 0.961f, 0.9049f], Run(new Momentum(1, 0.9f, MomentumForm.Ema), 1f, 1, 2, 3), new Tol(1e-6f));
        // Nesterov: v = 1, 1.9; steps 1 + 0.9·1 = 1.9, 1 + 0.9·1.9 = 2.71 -> p = 0.81, 0.539
        Assert.Equal([0.81f, 0.539f], Run(new Nesterov(1, 0.9f), 1f, 1, 1), new Tol(1e-6f));
        // SGD with L2 0.5: 1 − 0.1·(1 + 0.5) = 0.85
        Assert.Equal([0.85f], Run(new Sgd(1, 0.5f), 1f, 1), new Tol(1e-7f));
        // Adagrad: s = 9, 25 -> p = 1 − 0.1·3/3 = 0.9, 0.9 − 0.1·4/5 = 0.82
        Assert.Equal([0.9f, 0.82f], Run(new Adagrad(1), 1f, 3, 4), new Tol(1e-6f));
        // Adam, first step: m̂ = g, v̂ = g² -> p = 1 − 0.1·2/(2 + 1e-8) = 0.9; second step with the same g too
        Assert.Equal([0.9f, 0.8f], Run(new Adam(1), 1f, 2, 2), new Tol(1e-6f));
        // AdamW: 1·(1 − 0.1·0.01) = 0.999, then − 0.1 -> 0.899
        Assert.Equal([0.899f], Run(new AdamW(1, weightDecay: 0.01f), 1f, 2), new Tol(1e-6f));
        // RMSprop, lr 0.01: s = 0.01·4 = 0.04 -> p = 1 − 0.01·2/0.2 = 0.9
        Assert.Equal([0.9f], Run(new RmsProp(1), 0.01f, 1f, [2f]), new Tol(1e-6f));
    }

    private sealed class Tol(float eps) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= eps;
        public int GetHashCode(float x) => 0;
    }

    // Each vector path against the portable one. The Avx512 row needs no AVX-512: ForceVector512ForTests runs the
    // 16-lane body (in software where the CPU lacks it, with the same IEEE results), so it runs on every machine.
    public static IEnumerable<object[]> NamesOnEveryVectorPath() =>
        SimdRows.Cross(new[] { "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw" }.Select(n => new object[] { n }),
            [SimdPath.Avx2, SimdPath.Avx512]);

    [SkippableTheory, MemberData(nameof(NamesOnEveryVectorPath))]
    public void Every_simd_path_gives_the_same_bits(string name, SimdPath path)
    {
        if (path != SimdPath.Avx512) SimdRows.Require(path);
        foreach (var n in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1031 })
        {
            var (p0, s0) = FourSteps(name, n, SimdPath.Portable);
            var (p, st) = FourSteps(name, n, path);
            Assert.Equal(Bits(p0), Bits(p));
            Assert.Equal(s0.Length, st.Length);
            for (int s = 0; s < s0.Length; s++) Assert.Equal(Bits(s0[s]), Bits(st[s]));
        }
    }

    /// <summary>Four steps of <paramref name="name"/> over <paramref name="n"/> parameters on <paramref name="path"/>:
    /// the parameters and the optimizer state.</summary>
    private static (float[] P, float[][] S) FourSteps(string name, int n, SimdPath path)
    {
        using var _ = Simd.Force(path);
        Elementwise.ForceVector512ForTests = path == SimdPath.Avx512;
        try
        {
            var opt = OptimizerFactory.Create(name, n, new OptimizerOptions { WeightDecay = 0.03f });
            var p = new float[n];
            for (int i = 0; i < n; i++) p[i] = Init(i);
            var g = new float[n];
            for (int t = 1; t <= 4; t++)
            {
                for (int i = 0; i < n; i++) g[i] = Grad(t, i) * (i % 5 == 0 ? 1e-3f : 1f);
                opt.Step(p, g, Lr(t), t);
            }
            return (p, opt.State.Select(s => s.Data.ToArray()).ToArray());
        }
        finally { Elementwise.ForceVector512ForTests = false; }
    }

    private static int[] Bits(float[] x) => x.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public void Factory_knows_every_name_and_lists_them_for_an_unknown_one()
    {
        foreach (var name in OptimizerFactory.Names) Assert.Equal(5, OptimizerFactory.Create(name, 5).Length);
        Assert.IsType<AdamW>(OptimizerFactory.Create(" AdamW ", 3));
        Assert.Equal(0.01f, ((AdamW)OptimizerFactory.Create("adamw", 3)).WeightDecay);
        Assert.Equal(0f, ((Adam)OptimizerFactory.Create("adam", 3)).WeightDecay);
        Assert.Equal(1e-10f, ((Adagrad)OptimizerFactory.Create("adagrad", 3)).Eps);
        var e = Assert.Throws<ArgumentException>(() => OptimizerFactory.Create("adamax", 3));
        Assert.Contains("adamax", e.Message);
        foreach (var name in OptimizerFactory.Names) Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Bad_hyper_parameters_and_lengths_are_named()
    {
        Assert.Contains("beta1", Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(3, beta1: 1f)).Message);
        Assert.Contains("weightDecay", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(3, -1f)).Message);
        var opt = new Adam(4);
        Assert.Contains("length 4", Assert.Throws<ArgumentException>(() => opt.Step(new float[4], new float[3], 0.1f, 1)).Message);
        Assert.Contains("1-based", Assert.Throws<ArgumentOutOfRangeException>(() => opt.Step(new float[4], new float[4], 0.1f, 0)).Message);
    }

    [Fact]
    public void A_step_allocates_nothing()
    {
        foreach (var name in OptimizerFactory.Names)
        {
            var opt = OptimizerFactory.Create(name, 1000, new OptimizerOptions { WeightDecay = 0.01f });
            var p = new float[1000];
            var g = new float[1000];
            g.AsSpan().Fill(0.5f);
            opt.Step(p, g, 0.1f, 1); // warm up (JIT)
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (int t = 2; t < 10; t++) opt.Step(p, g, 0.1f, t);
            Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
        }
    }
}

// The RBM on a tiny machine (3 visible, 2 hidden units) whose distributions can be enumerated: its free energy
// against the sum over hidden states, the CD-1 gradient (mean over many seeded chains) against the exact
// expectation over h0 ~ p(h|v0), v1 ~ p(v|h0), a long chain's negative statistics against the model's own
// expectation under p(v) ∝ exp(−F(v)), and the draws' dependence on (seed, step, micro-batch, sample) only.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class RbmTests
{
    private const int V = 3, H = 2;
    private static readonly float[] W = [0.8f, -1.1f, 0.4f, -0.6f, 0.9f, 1.2f];   // (H,V)
    private static readonly float[] C = [0.3f, -0.5f], B = [-0.2f, 0.4f, 0.1f];
    private static readonly float[] V0 = [1f, 0f, 1f];

    private static (Sequential Model, Rbm Rbm) Tiny(int k)
    {
        var rbm = new Rbm(V, H, k);
        var model = new Sequential([V], [rbm]);
        W.CopyTo(rbm.Weight.Value.Span); C.CopyTo(rbm.HiddenBias.Value.Span); B.CopyTo(rbm.VisibleBias.Value.Span);
        return (model, rbm);
    }

    private static double Sig(double z) => 1 / (1 + Math.Exp(-z));
    private static double[] Bits(int n, int mask) => Enumerable.Range(0, n).Select(i => (double)((mask >> i) & 1)).ToArray();
    private static double PH(int j, double[] v) => Sig(C[j] + Enumerable.Range(0, V).Sum(i => W[j * V + i] * v[i]));
    private static double PV(int i, double[] h) => Sig(B[i] + Enumerable.Range(0, H).Sum(j => W[j * V + i] * h[j]));
    private static double Bern(double p, double x) => x == 1 ? p : 1 - p;

    /// <summary>CD gradient of W by the layer: mean over <paramref name="n"/> copies of v0, each with its own chain.</summary>
    private static double[] LayerGradient(int k, int n, StepContext ctx)
    {
        var (model, _) = Tiny(k);
        var x = new Tensor(n, V);
        for (int s = 0; s < n; s++) V0.CopyTo(x.Span.Slice(s * V, V));
        model.TrainStepGradient(x, new int[n], x, new NoOutputLoss(), 1f / n, ctx);
        return model.Store.Grads.Take(H * V).Select(g => (double)g).ToArray();
    }

    private static double[] Positive() =>
        Enumerable.Range(0, H * V).Select(e => PH(e / V, V0.Select(v => (double)v).ToArray()) * V0[e % V]).ToArray();

    [Fact]
    public void FreeEnergyIsMinusLogOfTheSumOverHiddenStates()
    {
        var (_, rbm) = Tiny(1);
        for (int m = 0; m < 1 << V; m++)
        {
            var v = Bits(V, m);
            double z = 0;
            for (int hm = 0; hm < 1 << H; hm++)
            {
                var h = Bits(H, hm);
                double e = 0;
                for (int i = 0; i < V; i++) e -= B[i] * v[i];
                for (int j = 0; j < H; j++) { e -= C[j] * h[j]; for (int i = 0; i < V; i++) e -= h[j] * W[j * V + i] * v[i]; }
                z += Math.Exp(-e);
            }
            Assert.Equal(-Math.Log(z), rbm.FreeEnergy(v.Select(d => (float)d).ToArray()), 5);
        }
    }

    [Fact]
    public void Cd1GradientMatchesTheEnumeratedExpectation()
    {
        // E[σ(c+Wv1) v1ᵀ] over h0 ~ p(h|v0), v1 ~ p(v|h0); the gradient is that minus σ(c+Wv0) v0ᵀ.
        var v0 = V0.Select(v => (double)v).ToArray();
        var negative = new double[H * V];
        for (int hm = 0; hm < 1 << H; hm++)
        {
            var h = Bits(H, hm);
            double ph = 1;
            for (int j = 0; j < H; j++) ph *= Bern(PH(j, v0), h[j]);
            for (int vm = 0; vm < 1 << V; vm++)
            {
                var v1 = Bits(V, vm);
                double pv = ph;
                for (int i = 0; i < V; i++) pv *= Bern(PV(i, h), v1[i]);
                for (int e = 0; e < H * V; e++) negative[e] += pv * PH(e / V, v1) * v1[e % V];
            }
        }
        var positive = Positive();
        const int n = 40_000;
        var g = LayerGradient(1, n, new StepContext(true, Seed: 3, Step: 1, MicroBatch: 0));
        for (int e = 0; e < H * V; e++)
            Assert.True(Math.Abs(g[e] - (negative[e] - positive[e])) < 4 * 0.5 / Math.Sqrt(n),   // 4σ of a mean of values in [0,1]
                $"dW[{e}] {g[e]:F4} vs exact {negative[e] - positive[e]:F4}");
    }

    [Fact]
    public void LongChainReachesTheModelsOwnStatistics()
    {
        // p(v) ∝ exp(−F(v)); the model's ⟨σ(c+Wv) vᵀ⟩ under it is what CD-k's negative phase tends to as k grows.
        var (_, rbm) = Tiny(1);
        var pv = new double[1 << V];
        for (int m = 0; m < pv.Length; m++) pv[m] = Math.Exp(-rbm.FreeEnergy(Bits(V, m).Select(d => (float)d).ToArray()));
        double z = pv.Sum();
        var model = new double[H * V];
        for (int m = 0; m < pv.Length; m++)
        {
            var v = Bits(V, m);
            for (int e = 0; e < H * V; e++) model[e] += pv[m] / z * PH(e / V, v) * v[e % V];
        }
        var positive = Positive();
        const int n = 40_000;
        var g = LayerGradient(25, n, new StepContext(true, Seed: 8, Step: 4, MicroBatch: 2));
        for (int e = 0; e < H * V; e++)
            Assert.True(Math.Abs(g[e] - (model[e] - positive[e])) < 4 * 0.5 / Math.Sqrt(n) + 2e-3,
                $"dW[{e}] {g[e]:F4} vs model expectation {model[e] - positive[e]:F4}");
    }

    [Fact]
    public void DrawsFollowSeedStepMicroBatchOnly()
    {
        var ctx = new StepContext(true, Seed: 1, Step: 2, MicroBatch: 3);
        var a = LayerGradient(1, 64, ctx);
        Assert.Equal(a, LayerGradient(1, 64, ctx));
        Assert.NotEqual(a, LayerGradient(1, 64, ctx with { MicroBatch = 4 }));
        Assert.NotEqual(a, LayerGradient(1, 64, ctx with { Step = 3 }));
    }

    [Fact]
    public void RbmPresetLearnsToReconstructItsTrainingImages()
    {
        // Bars: each 6x6 image lights one row or one column. CD-1 on them lowers the mean-field reconstruction error.
        var spec = ModelSpec.Parse("""
            {"input":[1,6,6],"loss":"none","layers":[{"type":"flatten"},{"type":"rbm","hidden":12,"k":1}]}
            """);
        var model = spec.Build(2);
        var rng = new Random(4);
        var x = new Tensor(32, 1, 6, 6);
        for (int s = 0; s < 32; s++)
        {
            int bar = rng.Next(12);
            for (int p = 0; p < 6; p++) x.Span[s * 36 + (bar < 6 ? bar * 6 + p : p * 6 + bar - 6)] = 1f;
        }
        double Error() { var y = model.Forward(x, StepContext.Eval).Span; double e = 0; for (int i = 0; i < y.Length; i++) e += (y[i] - x.Span[i]) * (y[i] - x.Span[i]); return e / y.Length; }
        double before = Error();
        var opt = DistTrain.Nn.Optimizers.OptimizerFactory.Create("momentum", model.ParameterCount);
        for (int step = 0; step < 300; step++)
        {
            model.TrainStepGradient(x, new int[32], x, spec.CreateLoss(), 1f / 32, new StepContext(true, Seed: 1, Step: step));
            opt.Step(model.Store.Values, model.Store.Grads, 0.1f, step + 1);
        }
        double after = Error();
        Assert.True(after < 0.5 * before, $"reconstruction MSE {before:F4} → {after:F4}");
    }
}

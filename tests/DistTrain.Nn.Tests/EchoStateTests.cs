// The echo state network: the reservoir's states against its equations computed in double, the spectral-radius
// estimate against matrices whose eigenvalues are known, the ridge readout (statistics summed over micro-batches,
// one Cholesky solve) against the normal equations built from the whole design matrix and solved by Gaussian
// elimination in double, and the esn preset's one-step NRMSE on a small Mackey–Glass set.
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Training.Solvers;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class EchoStateTests
{
    private const int T = 12, N = 5, Washout = 3;

    private static Sequential Tiny(int seed = 4) => ModelSpec.Parse($$"""
        {"input":[{{T}},1],"loss":"mse","layers":[
          {"type":"esn","units":{{N}},"spectral_radius":0.8,"leak":0.6,"input_scale":0.5,"density":0.5,"washout":{{Washout}}},
          {"type":"dense","out":2}]}
        """).Build((ulong)seed);

    private static Dataset RandomSet(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n * T];
        var y = new float[n * T * 2];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < y.Length; i++) y[i] = (float)(rng.NextDouble() * 2 - 1);
        return new Dataset("random", [T, 1], x, new int[n], 0, y);
    }

    /// <summary>The readout's input per step, [u_t | h_t], from the reservoir's equations in double.</summary>
    private static double[][] StatesInDouble(EchoStateReservoir r, float[] u)
    {
        var w = r.OwnParams.Single(p => p.LocalName == "weight_hh").Value.ToArray();
        var wIn = r.OwnParams.Single(p => p.LocalName == "weight_ih").Value.ToArray();
        var b = r.OwnParams.Single(p => p.LocalName == "bias_ih").Value.ToArray();
        var h = new double[N];
        var rows = new double[T][];
        for (int t = 0; t < T; t++)
        {
            var next = new double[N];
            for (int i = 0; i < N; i++)
            {
                double pre = b[i] + wIn[i] * u[t];
                for (int j = 0; j < N; j++) pre += w[i * N + j] * h[j];
                next[i] = (1 - r.Leak) * h[i] + r.Leak * Math.Tanh(pre);
            }
            h = next;
            rows[t] = [u[t], .. h];
        }
        return rows;
    }

    [Fact]
    public void ReservoirStatesFollowTheLeakyEquations()
    {
        var model = Tiny();
        var r = (EchoStateReservoir)model.Layers[0];
        var data = RandomSet(2, 1);
        var y = r.Forward(new Tensor(data.Features, 0, 2, T, 1), StepContext.Eval).ToArray();
        for (int s = 0; s < 2; s++)
        {
            var expected = StatesInDouble(r, data.Features.AsSpan(s * T, T).ToArray());
            for (int t = 0; t < T; t++)
                for (int j = 0; j <= N; j++)
                    Assert.True(Math.Abs(y[(s * T + t) * (N + 1) + j] - expected[t][j]) < 1e-5, $"sample {s} step {t} feature {j}");
        }
    }

    [Fact]
    public void SpectralRadiusEstimateMatchesKnownEigenvalues()
    {
        // A scaled rotation has eigenvalues 0.7·e^{±iθ}: a complex pair, where the plain power method never settles.
        double c = 0.7 * Math.Cos(1.1), s = 0.7 * Math.Sin(1.1);
        float[] rotation = [(float)c, (float)-s, 0, (float)s, (float)c, 0, 0, 0, 0.3f];
        Assert.Equal(0.7, EchoStateReservoir.EstimateSpectralRadius(rotation, 3), 3);
        // Upper triangular: the eigenvalues are the diagonal, ρ = 1.5 whatever sits above it.
        float[] triangular = [0.2f, 3f, -2f, 0f, -1.5f, 4f, 0f, 0f, 0.9f];
        Assert.Equal(1.5, EchoStateReservoir.EstimateSpectralRadius(triangular, 3), 3);

        // The reservoir is scaled to the radius it was asked for.
        var r = new EchoStateReservoir(60, spectralRadius: 0.95f, density: 0.2f);
        _ = new Sequential([10, 1], [r], seed: 2);
        Assert.Equal(0.95, EchoStateReservoir.EstimateSpectralRadius(r.Recurrent.Value.Span, 60), 2);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    public void RidgeReadoutMatchesTheClosedFormInDouble(int microBatch)
    {
        const int n = 7, p = N + 2, o = 2;
        const double lambda = 1e-2;
        var model = Tiny();
        var r = (EchoStateReservoir)model.Layers[0];
        var data = RandomSet(n, 2);
        var fit = RidgeReadout.Fit(model, data, lambda, microBatch);
        Assert.Equal(n * (T - Washout), fit.Rows);

        // Normal equations (ΦᵀΦ + λI) W = ΦᵀY from the whole design matrix, Φ rows [u, h, 1], steps past the washout.
        var a = new double[p, p];
        var rhs = new double[p, o];
        for (int s = 0; s < n; s++)
        {
            var rows = StatesInDouble(r, data.Features.AsSpan(s * T, T).ToArray());
            for (int t = Washout; t < T; t++)
            {
                double[] phi = [.. rows[t], 1];
                for (int i = 0; i < p; i++)
                {
                    for (int j = 0; j < p; j++) a[i, j] += phi[i] * phi[j];
                    for (int k = 0; k < o; k++) rhs[i, k] += phi[i] * data.Targets![(s * T + t) * o + k];
                }
            }
        }
        for (int i = 0; i < p; i++) a[i, i] += lambda;
        var w = GaussianElimination(a, rhs, p, o);

        var dense = (Dense)model.Layers[1];
        for (int k = 0; k < o; k++)
        {
            for (int j = 0; j < p - 1; j++)
                Assert.True(Math.Abs(dense.Weight.Value[k * (p - 1) + j] - w[j, k]) < 1e-3 * (1 + Math.Abs(w[j, k])), $"weight[{k},{j}] {dense.Weight.Value[k * (p - 1) + j]} vs {w[j, k]}");
            Assert.True(Math.Abs(dense.Bias!.Value[k] - w[p - 1, k]) < 1e-3 * (1 + Math.Abs(w[p - 1, k])), $"bias[{k}]");
        }
    }

    private static double[,] GaussianElimination(double[,] a, double[,] b, int p, int o)
    {
        a = (double[,])a.Clone(); b = (double[,])b.Clone();
        for (int c = 0; c < p; c++)
        {
            int pivot = c;
            for (int i = c + 1; i < p; i++) if (Math.Abs(a[i, c]) > Math.Abs(a[pivot, c])) pivot = i;
            for (int j = 0; j < p; j++) (a[c, j], a[pivot, j]) = (a[pivot, j], a[c, j]);
            for (int k = 0; k < o; k++) (b[c, k], b[pivot, k]) = (b[pivot, k], b[c, k]);
            for (int i = 0; i < p; i++)
            {
                if (i == c) continue;
                double f = a[i, c] / a[c, c];
                for (int j = 0; j < p; j++) a[i, j] -= f * a[c, j];
                for (int k = 0; k < o; k++) b[i, k] -= f * b[c, k];
            }
        }
        var x = new double[p, o];
        for (int i = 0; i < p; i++) for (int k = 0; k < o; k++) x[i, k] = b[i, k] / a[i, i];
        return x;
    }

    [Fact]
    public void MackeyGlassIsReproducibleAndStaysInItsAttractor()
    {
        var a = MackeyGlass.Series(2000, seed: 3);
        Assert.Equal(a, MackeyGlass.Series(2000, seed: 3));
        Assert.NotEqual(a, MackeyGlass.Series(2000, seed: 3, split: DataSplit.Test));
        Assert.All(a, v => Assert.InRange(v, 0.2, 1.45));
        Assert.InRange(a.Average(), 0.8, 1.0);
        // Its fixed point x* = 1 (β/γ = 1 + x*¹⁰) is unstable at τ = 17: the series keeps swinging, it does not settle.
        var tail = a.AsSpan(1500).ToArray();
        Assert.True(tail.Max() - tail.Min() > 0.5, $"range {tail.Min()}..{tail.Max()}");
    }

    [Fact]
    public void EsnPresetPredictsMackeyGlassOneStepAheadBelowOnePercentNrmse()
    {
        var spec = Presets.Spec("esn");
        var model = spec.Build(1);
        var (train, test) = DatasetSpec.Parse("synthetic:mackey-glass:n=6:test-n=2").Load();
        var fit = RidgeReadout.Fit(model, train, 1e-6, 3);
        double nrmse = RidgeReadout.Nrmse(model, test);
        Assert.True(fit.TrainNrmse < 0.01, $"train NRMSE {fit.TrainNrmse}");
        Assert.True(nrmse < 0.01, $"test NRMSE {nrmse}");
        double persistence = RidgeReadout.PersistenceNrmse(model, test);
        Assert.True(persistence > 10 * nrmse, $"persistence {persistence} vs {nrmse}");
        // The same readout untrained (its random initial weights) is far off: the fit did the work.
        var untrained = spec.Build(1);
        Assert.True(RidgeReadout.Nrmse(untrained, test) > 0.5);
    }

    [Fact]
    public void OneStepFreeRunIsTheTeacherForcedPredictionAndLongerHorizonsFeedBack()
    {
        var spec = Presets.Spec("esn");
        var model = spec.Build(1);
        var (train, test) = DatasetSpec.Parse("synthetic:mackey-glass:n=4:test-n=1").Load();
        RidgeReadout.Fit(model, train, 1e-8, 4);
        const int stride = 50;
        var one = EchoStateForecast.FreeRun(model, test, horizon: 1, stride: stride);

        // The same errors from the model's ordinary forward: prediction at step start − 1 against the value at start.
        var y = model.Forward(new Tensor(test.Features, 0, 1, MackeyGlass.Window, 1), StepContext.Eval).ToArray();
        double se = 0, sp = 0; int count = 0;
        for (int start = 100; start < MackeyGlass.Window; start += stride, count++)
        {
            double truth = test.Features[start];
            se += (y[start - 1] - truth) * (y[start - 1] - truth);
            sp += (test.Features[start - 1] - truth) * (test.Features[start - 1] - truth);
        }
        double mean = test.Features.Average(v => (double)v), std = Math.Sqrt(test.Features.Average(v => (v - mean) * (v - mean)));
        Assert.Equal(count, one.Forecasts);
        Assert.Equal(Math.Sqrt(se / count) / std, one.Nrmse, 4);
        Assert.Equal(Math.Sqrt(sp / count) / std, one.PersistenceNrmse, 6);

        // Feeding predictions back compounds the error, and 84 steps ahead persistence is far off.
        var far = EchoStateForecast.FreeRun(model, test, horizon: 84, stride: stride);
        Assert.True(far.Nrmse > one.Nrmse);
        Assert.True(far.PersistenceNrmse > 0.5);
    }
}

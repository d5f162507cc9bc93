// The local-sgd outer optimizer against computations done here by other means: three rounds worked out by hand
// (values exact in float), a closed form of Nesterov momentum (b_k = Σ_j μ^(k−j) Δ_j, θ_K = θ_0 + η Σ_k (Δ_k + μ b_k))
// in double, plain averaging's bits, and the CLI's options with their errors.
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class OuterOptimizerTests
{
    [Fact]
    public void ThreeRoundsOfNesterovMatchTheHandComputation()
    {
        // C = 2 chunks whose deltas sum to (2, −4, 0): Δ = (1, −2, 0) every round; η = 0.5, μ = 0.5, θ_0 = (0, 1, 3).
        // Round 1: b = Δ,             θ += 0.5·(Δ + 0.5·Δ)    = 0.75·Δ   → (0.75, −0.5, 3)
        // Round 2: b = 0.5·Δ + Δ = 1.5Δ, θ += 0.5·(Δ + 0.75·Δ)  = 0.875·Δ  → (1.625, −2.25, 3)
        // Round 3: b = 0.75Δ + Δ = 1.75Δ, θ += 0.5·(Δ + 0.875·Δ) = 0.9375·Δ → (2.5625, −4.125, 3)
        var opt = new OuterNesterov(3, chunks: 2, lr: 0.5f, momentum: 0.5f);
        float[] theta = [0f, 1f, 3f], sum = [2f, -4f, 0f];
        float[][] expected = [[0.75f, -0.5f, 3f], [1.625f, -2.25f, 3f], [2.5625f, -4.125f, 3f]];
        float[][] buffer = [[1f, -2f, 0f], [1.5f, -3f, 0f], [1.75f, -3.5f, 0f]];
        for (int r = 0; r < 3; r++)
        {
            opt.Step(theta, sum, lr: 123f, t: r + 1); // the inner schedule's rate is not the outer one
            Assert.Equal(expected[r], theta);
            Assert.Equal(buffer[r], Assert.Single(opt.State).Data);
        }
        Assert.Equal("outer_momentum", opt.State[0].Name);
    }

    [Fact]
    public void NesterovOverManyRoundsMatchesTheClosedFormInDouble()
    {
        const int n = 257, chunks = 3, rounds = 12;
        const double eta = 0.7, mu = 0.9;
        var rng = new Random(7);
        var theta0 = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var sums = Enumerable.Range(0, rounds).Select(_ => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 0.02 - 0.01)).ToArray()).ToArray();
        var theta = theta0.ToArray();
        var opt = new OuterNesterov(n, chunks, (float)eta, (float)mu);
        foreach (var s in sums) opt.Step(theta, s, 0f, 0);
        for (int i = 0; i < n; i++)
        {
            double total = theta0[i];
            for (int k = 0; k < rounds; k++)
            {
                double b = 0;
                for (int j = 0; j <= k; j++) b += Math.Pow(mu, k - j) * (sums[j][i] / (double)chunks);
                total += eta * (sums[k][i] / (double)chunks + mu * b);
            }
            Assert.True(Math.Abs(theta[i] - total) <= 1e-5 * Math.Max(1, Math.Abs(total)), $"value {i}: {theta[i]} vs closed form {total}");
        }
        // Momentum moves further than averaging: 12 rounds of the same Δ go η·Σ_k (1 + μ(1 − μ^k)/(1 − μ)) ≈ 43.3 Δ, not 12 Δ.
        var same = new OuterNesterov(1, 1, (float)eta, (float)mu);
        float[] x = [0f];
        for (int k = 0; k < rounds; k++) same.Step(x, [1f], 0f, 0);
        double expected = Enumerable.Range(1, rounds).Sum(k => eta * (1 + mu * (1 - Math.Pow(mu, k)) / (1 - mu)));
        Assert.True(Math.Abs(x[0] - expected) <= 1e-6 * expected, $"{x[0]} vs {expected}");
        Assert.InRange(x[0], 43.3, 43.4);
    }

    [Fact]
    public void OuterSgdWithRateOneIsPlainAveragingBitForBit()
    {
        var rng = new Random(3);
        var sum = Enumerable.Range(0, 100).Select(_ => (float)rng.NextDouble()).ToArray();
        var a = Enumerable.Range(0, 100).Select(_ => (float)rng.NextDouble()).ToArray();
        var b = a.ToArray();
        new DeltaAveraging(100, 3).Step(a, sum, 0f, 1);
        var sgd = new OuterNesterov(100, 3, 1f, 0f);
        sgd.Step(b, sum, 0f, 1);
        Assert.Equal(a, b);
        Assert.Empty(sgd.State);
    }

    [Fact]
    public void TheShardOptimizerIsChosenByModeAndOuterOptimizer()
    {
        var job = new TrainJob { ModelSpecJson = DistTrain.Nn.Models.Presets.Resolve("mlp").CanonicalJson, Dataset = "synthetic:quadrants", Optimizer = "adam" };
        var local = new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 4);
        Assert.IsType<DeltaAveraging>(OuterOptimizer.ForShard(job, local, 10, 2));
        var nesterov = OuterOptimizer.ForShard(job, local with { Outer = OuterOptimizer.Parse("nesterov", null, null) }, 10, 2);
        Assert.Equal("OuterNesterov(chunks=2, lr=0.7, momentum=0.9)", nesterov.ToString());
        Assert.Equal(10, nesterov.State.Single().Data.Length);
        Assert.StartsWith("Adam", OuterOptimizer.ForShard(job, ModeOptions.Sync, 10, 2).ToString());
    }

    [Fact]
    public void ParsesTheOptionsWithDiLoCoDefaults()
    {
        Assert.Equal(OuterOptimizer.Plain, OuterOptimizer.Parse(null, null, null));
        Assert.Equal(new OuterOptimizer("nesterov", 0.7f, 0.9f), OuterOptimizer.Parse("Nesterov", null, null));
        Assert.Equal(new OuterOptimizer("nesterov", 0.5f, 0.8f), OuterOptimizer.Parse("nesterov", 0.5f, 0.8f));
        Assert.Equal(new OuterOptimizer("sgd", 1f, 0f), OuterOptimizer.Parse("sgd", null, null));
        var m = ModeOptions.Parse("local-sgd", null, 50, OuterOptimizer.Parse("nesterov", null, null));
        Assert.Equal("local-sgd(local_steps=50, outer=nesterov(lr=0.7, momentum=0.9))", m.ToString());
        Assert.Equal("nesterov", m.Metadata()["outer_optimizer"]);
        Assert.Equal("0.7", m.Metadata()["outer_lr"]);
        Assert.Equal("0.9", m.Metadata()["outer_momentum"]);
        Assert.False(ModeOptions.Sync.Metadata().ContainsKey("outer_optimizer"));
    }

    [Theory]
    [InlineData("adam", null, null, "--outer-optimizer 'adam' is unknown")]
    [InlineData(null, 0.5f, null, "--outer-lr and --outer-momentum need --outer-optimizer sgd or nesterov")]
    [InlineData("sgd", null, 0.9f, "--outer-momentum needs --outer-optimizer nesterov")]
    [InlineData("nesterov", 0f, null, "--outer-lr must be a positive number")]
    [InlineData("nesterov", null, 1f, "--outer-momentum must be in [0, 1)")]
    [InlineData("nesterov", null, -0.1f, "--outer-momentum must be in [0, 1)")]
    public void RejectsImpossibleOrMisplacedOptionsNamingThem(string? kind, float? lr, float? momentum, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => OuterOptimizer.Parse(kind, lr, momentum));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void AnOuterOptimizerOutsideLocalSgdIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => ModeOptions.Parse("sync", null, null, OuterOptimizer.Parse("nesterov", null, null)));
        Assert.Contains("--outer-optimizer applies only to --mode local-sgd", e.Message);
    }

    [Fact]
    public void CheckpointBoundariesFallOnTheRoundThatReachesThem()
    {
        // Sync: the step itself. Local-sgd with H = 4: the epoch end at plan step 10 is reached by round 3 (steps 8..11),
        // the next (20) by round 5 (steps 16..19 end at 20), 30 by round 8.
        Assert.Equal(10, ModeOptions.Sync.NextUnitAtBoundary(3, 10));
        Assert.Equal(20, ModeOptions.Sync.NextUnitAtBoundary(10, 10));
        var m = new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 4);
        Assert.Equal(3, m.NextUnitAtBoundary(0, 10));
        Assert.Equal(3, m.NextUnitAtBoundary(2, 10));
        Assert.Equal(5, m.NextUnitAtBoundary(3, 10));
        Assert.Equal(8, m.NextUnitAtBoundary(5, 10));
        // Brute force: round u reaches a boundary when (u−1)·H < k·every ≤ u·H for some k.
        for (int every = 1; every < 30; every++)
            for (long u = 0; u < 40; u++)
            {
                long next = u + 1;
                while (!Enumerable.Range(1, 200).Any(k => (next - 1) * 4 < (long)k * every && (long)k * every <= next * 4)) next++;
                Assert.Equal(next, m.NextUnitAtBoundary(u, every));
            }
    }
}

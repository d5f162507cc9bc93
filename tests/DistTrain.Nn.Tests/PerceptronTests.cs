// The perceptron preset trained by the ordinary Trainer (SGD, rate 1, batch 1 on the perceptron criterion) is
// Rosenblatt's rule: it changes the weights only on a mistake, by exactly y·(x, 1), and on a linearly separable
// set with margin γ and radius R (both of the bias-augmented points (x, 1), measured here in double) it stops
// making mistakes after at most (R/γ)² updates (Novikoff's bound).
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]
public class PerceptronTests
{
    private static TrainJob Job(int epochs) => new()
    {
        ModelSpecJson = Presets.Spec("perceptron").CanonicalJson, Dataset = "test",
        Optimizer = "sgd", Lr = 1f, BatchSize = 1, Epochs = epochs, Seed = 3,
    };

    /// <summary>Novikoff's (R/γ)² for the augmented points, with the generator's unit separator normalised with its bias.</summary>
    private static double Bound(Dataset d)
    {
        double norm = Math.Sqrt(Synthetic.SeparatorA * Synthetic.SeparatorA + Synthetic.SeparatorB * Synthetic.SeparatorB + Synthetic.SeparatorC * Synthetic.SeparatorC);
        double r2 = 0, gamma = double.MaxValue;
        for (int i = 0; i < d.Count; i++)
        {
            double x = d.Features[2 * i], y = d.Features[2 * i + 1], sign = d.Labels[i] == 1 ? 1 : -1;
            r2 = Math.Max(r2, x * x + y * y + 1);
            gamma = Math.Min(gamma, sign * (Synthetic.SeparatorA * x + Synthetic.SeparatorB * y + Synthetic.SeparatorC) / norm);
        }
        Assert.True(gamma > 0, "the set must be separable by the generator's line");
        return r2 / (gamma * gamma);
    }

    [Theory]
    [InlineData(300, 0.1f, 1)]
    [InlineData(500, 0.05f, 2)]
    [InlineData(200, 0.02f, 3)]
    public void StopsMakingMistakesWithinNovikoffsBoundAndUpdatesOnlyOnMistakes(int n, float margin, int seed)
    {
        var data = Synthetic.Separable(n, seed, margin);
        double bound = Bound(data);
        var job = Job(epochs: 40);
        var trainer = job.CreateTrainer(data.Count);
        var model = trainer.Model;
        Assert.All(model.Store.Values, v => Assert.Equal(0f, v));   // Rosenblatt starts from w = 0

        int updates = 0, lastMistakeEpoch = -1, offRule = 0;
        var before = new float[3];
        model.Store.Values.CopyTo(before, 0);
        trainer.StepCompleted = m =>
        {
            var after = model.Store.Values;
            bool changed = !after.AsSpan().SequenceEqual(before);
            if (changed)
            {
                updates++;
                lastMistakeEpoch = m.Epoch;
                // The update is y·(x, 1) for the step's sample: find it by its size (|Δb| = 1, Δw = ±x).
                if (Math.Abs(after[2] - before[2]) != 1f) offRule++;
            }
            after.CopyTo(before, 0);
        };
        trainer.Fit(data);

        Assert.Equal(0, offRule);
        Assert.True(updates > 0);
        Console.WriteLine($"perceptron n={n} margin={margin}: {updates} updates, bound {bound:F0}, last mistake in epoch {lastMistakeEpoch}");
        Assert.True(updates <= bound, $"{updates} updates, more than the bound (R/γ)² = {bound:F0}");
        Assert.True(lastMistakeEpoch < job.Epochs - 1, $"still making mistakes in epoch {lastMistakeEpoch}");

        // Converged: the step activation classifies every training point correctly.
        var x = new Tensor(data.Features, 0, n, 2);
        var s = model.Forward(x, StepContext.Eval).Span;
        for (int i = 0; i < n; i++) Assert.Equal(data.Labels[i] == 1, s[i] > 0);
    }

    [Fact]
    public void CriterionIsMaxOfZeroAndMinusYsAndItsGradientFiresOnMistakesAndTies()
    {
        var loss = new PerceptronCriterion();
        var y = new Tensor([2f, -0.5f, 0f, -3f], 0, 4, 1);
        var d = new Tensor(4, 1);
        // labels 1,1,0,0: scores 2 (right), −0.5 (wrong), 0 (tie: a mistake), −3 (right)
        double total = loss.Compute(y, [1, 1, 0, 0], null, d, 0.5f);
        Assert.Equal(0.5, total, 12);
        Assert.Equal([0f, -0.5f, 0.5f, 0f], d.ToArray());
        Assert.Equal(2, PerceptronCriterion.Mistakes(d));
        var e = Assert.Throws<ArgumentException>(() => loss.Compute(new Tensor(2, 3), [0, 1], null, new Tensor(2, 3), 1f));
        Assert.Contains("\"out\":1", e.Message);
    }
}

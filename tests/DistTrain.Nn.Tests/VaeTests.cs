// The VAE pieces: the reparameterization's draws (standard normal, keyed by seed/step/micro-batch/layer/sample),
// its KL term against values worked by hand, and the gradient of the whole objective (BCE summed over pixels + KL)
// with respect to every parameter against central finite differences of that objective, at a fixed ε.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class VaeTests
{
    [Fact]
    public void DrawsAreStandardNormalAndFollowTheirKeysOnly()
    {
        const int batch = 500, z = 200;
        var eps = new float[batch * z];
        Reparameterize.FillNormal(eps, batch, z, 12345);
        double mean = eps.Average(v => (double)v), var = eps.Average(v => (double)v * v) - mean * mean;
        Assert.InRange(mean, -0.01, 0.01);                  // σ of the mean = 1/√100000 ≈ 0.0032
        Assert.InRange(var, 0.985, 1.015);
        Assert.InRange(eps.Count(v => Math.Abs(v) > 1.96f) / (double)eps.Length, 0.047, 0.053);

        // A sample's draw depends on its position, not on the batch it sits in.
        var small = new float[3 * z];
        Reparameterize.FillNormal(small, 3, z, 12345);
        Assert.Equal(eps.AsSpan(0, 3 * z).ToArray(), small);
        Assert.NotEqual(eps.AsSpan(0, z).ToArray(), eps.AsSpan(z, z).ToArray());

        var ctx = new StepContext(true, Seed: 3, Step: 5, MicroBatch: 2);
        var keys = new[] { ctx, ctx with { Seed = 4 }, ctx with { Step = 6 }, ctx with { MicroBatch = 3 } }.Select(c => c.LayerSeed(4)).Append(ctx.LayerSeed(5));
        var first = new float[z];
        Reparameterize.FillNormal(first, 1, z, ctx.LayerSeed(4));
        foreach (var key in keys.Skip(1))
        {
            var other = new float[z];
            Reparameterize.FillNormal(other, 1, z, key);
            Assert.NotEqual(first, other);
        }
    }

    [Fact]
    public void KlTermMatchesHandValuesAndZeroScaleLeavesTheSamplingGradientAlone()
    {
        // Z = 2, two samples: (μ, log σ²) = ((0,0),(0,0)) → KL 0; ((1,−2),(ln 2, 0)) → −½[(1+ln2−1−2) + (1+0−4−1)] = 1 − ½ln2 + 2.
        var layer = new Reparameterize();
        var model = new Sequential([4], [layer]);
        var x = new Tensor([0f, 0f, 0f, 0f, 1f, -2f, MathF.Log(2f), 0f], 0, 2, 4);
        model.Forward(x, new StepContext(true, Seed: 1));
        double expected = 0 + (1 - 0.5 * Math.Log(2) + 2);
        Assert.Equal(expected, model.AddedLoss(1f), 5);

        var klWeighted = new Sequential([4], [new Reparameterize(klWeight: 0.25f)]);
        klWeighted.Forward(x, new StepContext(true, Seed: 1));
        Assert.Equal(0.25 * expected, klWeighted.AddedLoss(1f), 5);
    }

    [Fact]
    public void SamplingPathMatchesFiniteDifferences() =>
        GradCheck.Layer(() => new Reparameterize(), [6], 3, new() { Sample = r => (float)(r.NextDouble() * 2 - 1) });

    private const string Tiny = """
        {"input":[6],"loss":"bce_with_logits","reduction":"sum","target":"values","layers":[
          {"type":"dense","out":5},{"type":"tanh"},{"type":"dense","out":4},{"type":"reparameterize"},
          {"type":"dense","out":5},{"type":"tanh"},{"type":"dense","out":6}]}
        """;

    [Fact]
    public void ElboGradientMatchesFiniteDifferences()
    {
        var spec = ModelSpec.Parse(Tiny);
        var model = spec.Build(3);
        var loss = spec.CreateLoss();
        Assert.True(loss.ComparesWithTargets);
        var rng = new Random(5);
        var x = GradCheck.Fill(new Tensor(3, 6), rng, r => (float)r.NextDouble());   // pixel-like targets in [0,1)
        var ctx = new StepContext(true, Seed: 9, Step: 2, MicroBatch: 1);
        const float scale = 1f / 3;
        double Objective()
        {
            var y = model.Forward(x, ctx);
            return scale * (loss.Compute(y, [], x, new Tensor(y.Shape), scale) + model.AddedLoss(scale));
        }
        double sum = model.TrainStepGradient(x, [], x, loss, scale, ctx);
        Assert.Equal(sum * scale, Objective(), 10);
        var analytic = (float[])model.Store.Grads.Clone();
        var v = model.Store.Values;
        int checkedCount = 0;
        for (int i = 0; i < v.Length; i++)
        {
            float keep = v[i], h = 1e-2f;
            v[i] = keep + h; double lp = Objective();
            v[i] = keep - h; double lm = Objective();
            v[i] = keep;
            double num = (lp - lm) / ((double)(keep + h) - (keep - h));
            Assert.True(Math.Abs(num - analytic[i]) <= 2e-3 + 2e-2 * Math.Abs(num), $"{i}: analytic {analytic[i]}, numeric {num}");
            checkedCount++;
        }
        Assert.Equal(model.ParameterCount, checkedCount);
        Assert.Contains(analytic, g => Math.Abs(g) > 1e-3);

        // The KL term is part of it: without AddedLoss the encoder's gradient is different.
        model.ZeroGrad();
        var y = model.Forward(x, ctx);
        var dy = new Tensor(y.Shape);
        loss.Compute(y, [], x, dy, scale);
        model.Backward(dy);
        Assert.NotEqual(analytic, model.Store.Grads);
    }

    [Fact]
    public void VaePresetHasPyTorchExampleShapesAndSumsBceOverPixels()
    {
        var spec = Presets.Spec("vae");
        var model = spec.Build(1);
        Assert.Equal(784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784, model.ParameterCount);
        Assert.Equal([784], model.OutputShape);
        var loss = Assert.IsType<BinaryCrossEntropyWithLogits>(spec.CreateLoss());
        Assert.True(loss.Sum);
        // A logit of 0 against any target costs ln 2 per pixel: 784·ln 2 nats per image when summed.
        var y = new Tensor(2, 784);
        var t = GradCheck.Fill(new Tensor(2, 784), new Random(1), r => (float)r.NextDouble());
        Assert.Equal(2 * 784 * Math.Log(2), loss.Compute(y, [], t, new Tensor(2, 784), 1f), 6);
    }

    [Fact]
    public void SpecErrorsNameTheFieldAndTheFix()
    {
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""{"input":[5],"layers":[{"type":"reparameterize"}]}"""));
        Assert.Contains("even", e.Message);
        e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""{"input":[4],"loss":"cross_entropy","reduction":"sum","layers":[{"type":"dense","out":2}]}"""));
        Assert.Equal("reduction", e.Path);
        e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""{"input":[4],"loss":"bce_with_logits","target":"pixels","layers":[{"type":"dense","out":2}]}"""));
        Assert.Equal("target", e.Path);
    }
}

// The `gan` layer on the ordinary step: its two gradients (G's non-saturating loss through D; D's BCE on real → 1 and
// generated → 0) against central finite differences of the losses written out here in double from the two blocks,
// Forward leaving the gradient buffer alone and Backward adding scale · gradient, D's running statistics following the
// real samples only, the latents keyed per sample, and the optimizer groups the model declares.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class GanPairTests
{
    // Smooth (tanh, no kinks) so central differences are accurate; BatchNorm in training mode on both paths, a
    // transposed convolution on G's.
    private const string Tiny = """
        {"input":[1,4,4],"loss":"none","layers":[{"type":"gan","latent":3,"name":"gan",
          "generator":[{"type":"dense","out":6,"name":"fc"},{"type":"batchnorm1d","name":"bn"},{"type":"tanh","name":"a1"},
            {"type":"dense","out":8,"name":"fc2"},{"type":"reshape","shape":[2,2,2],"name":"r"},
            {"type":"conv_transpose2d","out":1,"kernel":2,"stride":2,"name":"up"},{"type":"tanh","name":"out"}],
          "discriminator":[{"type":"conv2d","out":3,"kernel":2,"stride":2,"name":"c"},{"type":"batchnorm2d","name":"bn"},{"type":"tanh","name":"a"},
            {"type":"flatten","name":"f"},{"type":"dense","out":1,"name":"out"}]}]}
        """;

    private static (Sequential Model, GanPair Gan) Build(string json = Tiny)
    {
        var model = ModelSpec.Parse(json).Build(3);
        return (model, (GanPair)model.Layers[0]);
    }

    private static Tensor RealImages(int b, int seed)
    {
        var rng = new Random(seed);
        var t = new Tensor(b, 1, 4, 4);
        for (int i = 0; i < t.Length; i++) t.Span[i] = (float)rng.NextDouble();
        return t;
    }

    private static double Softplus(double v) => Math.Max(v, 0) + Math.Log(1 + Math.Exp(-Math.Abs(v)));

    /// <summary>(L_D, L_G) summed over the batch, from the blocks directly: z as the layer draws it, real shown as 2x − 1.</summary>
    private static (double D, double G) Losses(GanPair gan, Tensor x, StepContext ctx)
    {
        int b = x.Dim(0);
        var z = new Tensor(b, gan.Latent);
        gan.FillLatent(z.Span, b, ctx);
        var fake = gan.Generator.Forward(z, ctx);
        var sf = gan.Discriminator.Forward(fake, ctx).ToArray();
        var real = new Tensor(x.Shape);
        for (int i = 0; i < x.Length; i++) real.Span[i] = 2 * x.Span[i] - 1;
        var sr = gan.Discriminator.Forward(real, ctx).ToArray();
        double d = 0, g = 0;
        for (int i = 0; i < b; i++) { d += Softplus(-(double)sr[i]) + Softplus(sf[i]); g += Softplus(-(double)sf[i]); }
        return (d, g);
    }

    [Fact]
    public void BothGradientsMatchFiniteDifferencesOfTheirOwnLoss()
    {
        var (model, gan) = Build();
        const int b = 5; const float scale = 0.25f;
        var x = RealImages(b, 3);
        var ctx = new StepContext(true, 9, 4, 2);
        model.ZeroGrad();
        model.Forward(x, ctx);
        double added = model.AddedLoss(scale);
        model.Backward(new Tensor(b, 1, 4, 4));
        var analytic = model.Store.Grads.ToArray();
        var (lossD, lossG) = Losses(gan, x, ctx);
        Assert.Equal(lossD + lossG, added, 5);
        Assert.Equal(lossD, gan.DiscriminatorLoss, 5);
        Assert.Equal(lossG, gan.GeneratorLoss, 5);

        var groups = model.ParameterGroups();
        Assert.Equal(["gan.generator", "gan.discriminator"], groups.Select(g => g.Name));
        Assert.Equal(0, groups[0].Offset);
        Assert.Equal(groups[0].End, groups[1].Offset);
        Assert.Equal(model.ParameterCount, groups[1].End);
        // G's parameters follow scale · ∂L_G, D's scale · ∂L_D: each player's gradient of its own loss only.
        var values = model.Store.Values;
        const float h = 1e-2f;
        var failures = new List<string>();
        for (int k = 0; k < values.Length; k++)
        {
            bool isG = k < groups[0].End;
            float v = values[k];
            values[k] = v + h; var up = Losses(gan, x, ctx);
            values[k] = v - h; var down = Losses(gan, x, ctx);
            values[k] = v;
            double numeric = scale * ((isG ? up.G - down.G : up.D - down.D) / (2 * h));
            if (Math.Abs(numeric - analytic[k]) > 2e-4 + 2e-2 * Math.Max(Math.Abs(numeric), Math.Abs(analytic[k])))
                failures.Add($"{(isG ? "G" : "D")}[{k}]: analytic {analytic[k]:G6}, numeric {numeric:G6}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(12)));
        Assert.Contains(analytic[..groups[0].End], g => Math.Abs(g) > 1e-3f);   // all zeros would pass the above
        Assert.Contains(analytic[groups[1].Offset..], g => Math.Abs(g) > 1e-3f);
    }

    [Fact]
    public void ForwardLeavesTheGradientsAloneAndBackwardAddsTheScaledGradient()
    {
        var (model, _) = Build();
        var x = RealImages(4, 5);
        var ctx = new StepContext(true, 1, 2, 0);
        model.ZeroGrad();
        model.Forward(x, ctx);
        model.AddedLoss(1f);
        model.Backward(new Tensor(4, 1, 4, 4));
        var unit = model.Store.Grads.ToArray();

        var prior = new float[unit.Length];
        for (int i = 0; i < prior.Length; i++) prior[i] = 0.125f * (i % 7);
        prior.CopyTo(model.Store.Grads, 0);
        model.Forward(x, ctx);
        Assert.Equal(prior, model.Store.Grads);              // the work of Forward went to the layer's stash
        model.AddedLoss(0.5f);
        model.Backward(new Tensor(4, 1, 4, 4));
        for (int i = 0; i < unit.Length; i++) Assert.Equal(MathF.FusedMultiplyAdd(0.5f, unit[i], prior[i]), model.Store.Grads[i]);

        model.Forward(x, ctx);                                 // no AddedLoss: Backward adds nothing
        var before = model.Store.Grads.ToArray();
        model.Backward(new Tensor(4, 1, 4, 4));
        Assert.Equal(before, model.Store.Grads);
    }

    [Fact]
    public void DiscriminatorRunningStatisticsFollowTheRealSamplesOnly()
    {
        var (model, gan) = Build();
        var (reference, refGan) = Build();
        var x = RealImages(6, 8);
        var ctx = new StepContext(true, 1, 0, 0);
        model.Forward(x, ctx);
        var real = new Tensor(x.Shape);
        for (int i = 0; i < x.Length; i++) real.Span[i] = 2 * x.Span[i] - 1;
        var z = new Tensor(6, 3);
        refGan.FillLatent(z.Span, 6, ctx);
        refGan.Generator.Forward(z, ctx);
        refGan.Discriminator.Forward(real, ctx);
        Assert.Equal(reference.Store.Buffers, model.Store.Buffers);
        Assert.NotEqual(ModelSpec.Parse(Tiny).Build(3).Store.Buffers, model.Store.Buffers);   // the statistics did move
    }

    [Fact]
    public void LatentsAreKeyedBySampleStepAndMicroBatch()
    {
        var (_, gan) = Build();
        var a = new float[5 * 3]; var b = new float[2 * 3]; var c = new float[2 * 3];
        gan.FillLatent(a, 5, new StepContext(true, 1, 3, 1));
        gan.FillLatent(b, 2, new StepContext(true, 1, 3, 1));
        gan.FillLatent(c, 2, new StepContext(true, 1, 3, 2));
        Assert.Equal(a[..6], b);       // row i depends on i alone, not on the batch size
        Assert.NotEqual(b, c);         // another micro-batch draws other latents
    }

    [Fact]
    public void SpecErrorsNameTheFix()
    {
        var wrongSize = Tiny.Replace("\"out\":1,\"kernel\":2", "\"out\":2,\"kernel\":2");
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse(wrongSize));
        Assert.Contains("generator makes (2,4,4)", e.Message);
        var twoLogits = Tiny.Replace("{\"type\":\"dense\",\"out\":1,\"name\":\"out\"}", "{\"type\":\"dense\",\"out\":2,\"name\":\"out\"}");
        e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse(twoLogits));
        Assert.Contains("one logit per sample", e.Message);
    }
}

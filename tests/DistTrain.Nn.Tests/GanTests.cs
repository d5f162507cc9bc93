// The GAN's two gradients against central finite differences of the losses written out here in double (D's BCE on
// real → 1 and generated → 0; G's non-saturating −log σ(D(G(z))) through D), D's weights untouched by G's gradient,
// a 1-D GAN that learns a Gaussian's mean and spread, and a run that is the same bits twice.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class GanTests
{
    // Smooth everywhere (tanh, no kinks) so central differences are exact to O(h²); BatchNorm in training mode and a
    // transposed convolution are on G's path, as in the DCGAN.
    private const string TinyGenerator = """
        {"input":[3],"loss":"none","layers":[
          {"type":"dense","out":6,"name":"fc"},{"type":"batchnorm1d","name":"bn"},{"type":"tanh","name":"a1"},
          {"type":"dense","out":8,"name":"fc2"},{"type":"reshape","shape":[2,2,2],"name":"r"},
          {"type":"conv_transpose2d","out":1,"kernel":2,"stride":2,"name":"up"},{"type":"tanh","name":"out"}]}
        """;
    private const string TinyDiscriminator = """
        {"input":[1,4,4],"loss":"bce_with_logits","layers":[
          {"type":"conv2d","out":3,"kernel":2,"stride":2,"name":"c"},{"type":"tanh","name":"a"},
          {"type":"flatten","name":"f"},{"type":"dense","out":1,"name":"out"}]}
        """;

    private static Gan Tiny(int seed = 1) =>
        new(ModelSpec.Parse(TinyGenerator).Build(3), ModelSpec.Parse(TinyDiscriminator).Build(4), new GanOptions { Seed = seed });

    private static double Softplus(double v) => Math.Max(v, 0) + Math.Log(1 + Math.Exp(-Math.Abs(v)));

    private static Tensor RandomImages(int b, int seed)
    {
        var rng = new Random(seed);
        var t = new Tensor(b, 1, 4, 4);
        for (int i = 0; i < t.Length; i++) t.Span[i] = (float)(rng.NextDouble() * 2 - 1);
        return t;
    }

    [Fact]
    public void GeneratorGradientThroughTheDiscriminatorMatchesFiniteDifferences()
    {
        var gan = Tiny();
        const int b = 5; const long step = 7;
        var dBefore = (float[])gan.Discriminator.Store.Values.Clone();
        var fake = gan.Generate(b, step);
        var (loss, _) = gan.GeneratorGradient(fake, step);
        var analytic = (float[])gan.Generator.Store.Grads.Clone();
        Assert.Equal(dBefore, gan.Discriminator.Store.Values);   // G's gradient went through D and left its weights alone

        // L(θ_G) = (1/B) Σ_i softplus(−s(G(z_i))) = −(1/B) Σ_i log σ(s(G(z_i))), z fixed by the step.
        double Objective()
        {
            var s = gan.Discriminator.Forward(gan.Generate(b, step), new StepContext(true)).Span;
            double sum = 0;
            for (int i = 0; i < b; i++) sum += Softplus(-(double)s[i]);
            return sum / b;
        }
        Assert.Equal(Objective(), loss, 6);
        CheckAll("generator", gan.Generator.Store.Values, analytic, Objective);
    }

    [Fact]
    public void DiscriminatorGradientMatchesFiniteDifferencesAndLeavesTheGeneratorAlone()
    {
        var gan = Tiny();
        const int b = 6; const long step = 2;
        var real = RandomImages(b, 11);
        var fake = new Tensor(b, 1, 4, 4);
        fake.CopyFrom(gan.Generate(b, step).Span);
        var gBefore = (float[])gan.Generator.Store.Values.Clone();
        var (loss, dx, dgz) = gan.DiscriminatorGradient(real, fake, step);
        var analytic = (float[])gan.Discriminator.Store.Grads.Clone();
        Assert.Equal(gBefore, gan.Generator.Store.Values);

        // L(θ_D) = (1/B) Σ_i softplus(−s(x_i)) + (1/B) Σ_i softplus(s(G(z_i))); the beliefs are the mean σ(s).
        double beliefReal = 0, beliefFake = 0;
        double Objective()
        {
            var ctx = new StepContext(true);
            var sr = gan.Discriminator.Forward(real, ctx).ToArray();
            var sf = gan.Discriminator.Forward(fake, ctx).ToArray();
            double sum = 0;
            beliefReal = beliefFake = 0;
            for (int i = 0; i < b; i++)
            {
                sum += Softplus(-(double)sr[i]) + Softplus(sf[i]);
                beliefReal += 1 / (1 + Math.Exp(-(double)sr[i])) / b;
                beliefFake += 1 / (1 + Math.Exp(-(double)sf[i])) / b;
            }
            return sum / b;
        }
        Assert.Equal(Objective(), loss, 6);
        Assert.Equal(beliefReal, dx, 6);
        Assert.Equal(beliefFake, dgz, 6);
        CheckAll("discriminator", gan.Discriminator.Store.Values, analytic, Objective);
    }

    private static void CheckAll(string what, float[] values, float[] analytic, Func<double> objective)
    {
        const float h = 1e-2f;
        var failures = new List<string>();
        for (int k = 0; k < values.Length; k++)
        {
            float v = values[k];
            values[k] = v + h; double up = objective();
            values[k] = v - h; double down = objective();
            values[k] = v;
            double numeric = (up - down) / (2 * h);
            if (Math.Abs(numeric - analytic[k]) > 2e-4 + 2e-2 * Math.Max(Math.Abs(numeric), Math.Abs(analytic[k])))
                failures.Add($"{what}[{k}]: analytic {analytic[k]:G6}, numeric {numeric:G6}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(12)));
        Assert.Contains(analytic, g => Math.Abs(g) > 1e-3f);   // a gradient that is all zeros would pass the above
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void OneDimensionalGanLearnsAGaussiansMeanAndSpread(int seed)
    {
        // G affine (x = a·z + b, which can be exactly N(μ, σ²)), D a 1-32-1 tanh MLP; real x ~ N(3, 0.5²), batch 64,
        // Adam 2e-3 (β₁ 0.5) for both. After 4,000 steps (about a second) G's samples have the target's mean and spread.
        const double mu = 3, sigma = 0.5;
        var g = ModelSpec.Parse("""{"input":[1],"loss":"none","layers":[{"type":"dense","out":1,"name":"affine"}]}""").Build((ulong)seed);
        var d = ModelSpec.Parse("""
            {"input":[1],"loss":"bce_with_logits","layers":[{"type":"dense","out":32,"name":"h"},{"type":"tanh","name":"a"},{"type":"dense","out":1,"name":"out"}]}
            """).Build((ulong)seed + 10);
        var gan = new Gan(g, d, new GanOptions { GeneratorLr = 2e-3f, DiscriminatorLr = 2e-3f, Seed = seed });
        const int b = 64;
        var real = new Tensor(b, 1);
        for (int step = 0; step < 4000; step++)
        {
            Reparameterize.FillNormal(real.Span, b, 1, SplitMix.Mix(0xDA7AUL ^ (ulong)step));
            for (int i = 0; i < b; i++) real.Span[i] = (float)(mu + sigma * real.Span[i]);
            gan.TrainStep(real);
        }
        var z = new Tensor(20000, 1);
        gan.FillLatent(z.Span, 20000, -1);
        var x = gan.Sample(z).ToArray();
        double mean = x.Average(v => (double)v), std = Math.Sqrt(x.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(mean, mu - 0.1, mu + 0.1);
        Assert.InRange(std, sigma - 0.1, sigma + 0.1);   // a collapsed G (std → 0) or one still spreading out fails here
    }

    [Fact]
    public void SameSeedGivesTheSameBitsAndAnotherSeedDoesNot()
    {
        float[][] Run(int seed)
        {
            var gan = new Gan(ModelSpec.Parse(GanSpecs.Generator(16)).Build(5), ModelSpec.Parse(GanSpecs.Discriminator).Build(6),
                new GanOptions { Seed = seed });
            var rng = new Random(3);
            var real = new Tensor(8, 1, 28, 28);
            for (int step = 0; step < 4; step++)
            {
                for (int i = 0; i < real.Length; i++) real.Span[i] = (float)(rng.NextDouble() * 2 - 1);
                gan.TrainStep(real);
            }
            return [gan.Generator.Store.Values, gan.Generator.Store.Buffers, gan.Discriminator.Store.Values, gan.Discriminator.Store.Buffers];
        }
        var a = Run(1);
        var b = Run(1);
        for (int i = 0; i < a.Length; i++) Assert.True(a[i].AsSpan().SequenceEqual(b[i]), $"array {i} differs between two runs with seed 1");
        var c = Run(2);   // only the latent draws differ
        Assert.False(a[0].AsSpan().SequenceEqual(c[0]));
        Assert.False(a[2].AsSpan().SequenceEqual(c[2]));
    }

    [Fact]
    public void MismatchedNetworksAreRefusedNamingBothShapes()
    {
        var g = ModelSpec.Parse(GanSpecs.Generator(8)).Build();
        var d = ModelSpec.Parse(TinyDiscriminator).Build();
        var e = Assert.Throws<ArgumentException>(() => new Gan(g, d));
        Assert.Contains("(1,28,28)", e.Message);
        Assert.Contains("(1,4,4)", e.Message);
    }

    [Fact]
    public void TheLearningRateFactorScalesBothRates()
    {
        // A factor of ½ on rates of 2e-3 is a GAN with rates of 1e-3 (halving is exact in float); a factor of 0 stops both.
        float[][] Run(float lr, float factor)
        {
            var gan = new Gan(ModelSpec.Parse(TinyGenerator).Build(3), ModelSpec.Parse(TinyDiscriminator).Build(4),
                new GanOptions { GeneratorLr = lr, DiscriminatorLr = lr, Seed = 2 }) { LrFactor = factor };
            for (int step = 0; step < 3; step++) gan.TrainStep(RandomImages(6, step));
            return [gan.Generator.Store.Values, gan.Discriminator.Store.Values];
        }
        var halved = Run(2e-3f, 0.5f);
        Assert.Equal(Run(1e-3f, 1f), halved);
        Assert.NotEqual(Run(2e-3f, 1f), halved);
        var stopped = Run(2e-3f, 0f);
        Assert.Equal(ModelSpec.Parse(TinyGenerator).Build(3).Store.Values, stopped[0]);
        Assert.Equal(ModelSpec.Parse(TinyDiscriminator).Build(4).Store.Values, stopped[1]);
    }
}

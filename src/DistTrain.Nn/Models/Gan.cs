// A generative adversarial network (Goodfellow et al. 2014) trained as DCGAN is (Radford et al. 2016): a generator G
// maps latents z ~ N(0, I) to samples, a discriminator D maps a sample to one logit s (D = σ(s) is its belief that
// the sample is real). One step, batch B, alternates two updates, each with its own Adam:
//   D: minimise −(1/B)Σ log σ(s(x)) − (1/B)Σ log(1 − σ(s(G(z))))   (BCE: real → 1, generated → 0), G held fixed;
//   G: minimise −(1/B)Σ log σ(s(G(z)))                               (the non-saturating loss: BCE of G(z) → 1),
//      its gradient back-propagated through D (D's input gradient) without changing D's weights.
// The G update reuses the step's G(z) and the D just updated (as PyTorch's DCGAN example does), so G runs forward once
// per step. Every draw is keyed: z by (seed, step), D's and G's per-layer draws by (seed, step, pass) — a run is the
// same bits on any machine. Letters: B batch, Z latent size, S sample shape (G's output = D's input).
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Optimizers;
using DistTrain.Tensors;

namespace DistTrain.Nn.Models;

/// <summary>Learning rates and Adam's β₁ of the two updates (DCGAN: 2e-4 and 0.5 for both), and the seed of z.</summary>
public sealed record GanOptions
{
    public float GeneratorLr { get; init; } = 2e-4f;
    public float DiscriminatorLr { get; init; } = 2e-4f;
    public float Beta1 { get; init; } = 0.5f;
    public int Seed { get; init; } = 1;
}

/// <summary>The mean losses of one step and D's mean beliefs: D(x) on real samples, D(G(z)) before and after D's update.</summary>
public readonly record struct GanStepStats(double DiscriminatorLoss, double GeneratorLoss, double RealBelief, double FakeBeliefBefore, double FakeBeliefAfter);

public sealed class Gan
{
    // Pass indices inside a step: the StepContext micro-batch of each forward, so each has its own layer draws.
    private const int GeneratorPass = 0, RealPass = 1, FakePass = 2, GeneratorLossPass = 3;
    private const ulong LatentDomain = 0x4C4154454E54UL; // "LATENT"

    private readonly BinaryCrossEntropyWithLogits _bce = new();
    private Tensor? _z, _dOut;
    private int[] _ones = [], _zeros = [];

    public Gan(Sequential generator, Sequential discriminator, GanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(discriminator);
        Options = options ?? new GanOptions();
        if (generator.InputShape.Length != 1)
            throw new ArgumentException($"The generator takes {Tensor.ShapeString(generator.InputShape)}; it must take a flat latent vector (Z), e.g. \"input\":[64].");
        if (!generator.OutputShape.AsSpan().SequenceEqual(discriminator.InputShape))
            throw new ArgumentException($"The generator makes {Tensor.ShapeString(generator.OutputShape)} but the discriminator takes " +
                                        $"{Tensor.ShapeString(discriminator.InputShape)}; they must agree.");
        if (discriminator.OutputShape.Aggregate(1, (a, b) => a * b) != 1)
            throw new ArgumentException($"The discriminator gives {Tensor.ShapeString(discriminator.OutputShape)}; it must give one logit per sample (a last dense layer with \"out\":1).");
        if (!(Options.GeneratorLr > 0) || !(Options.DiscriminatorLr > 0) || !(Options.Beta1 is >= 0 and < 1))
            throw new ArgumentException($"GAN learning rates must be positive and β₁ in [0, 1) (got G {Options.GeneratorLr}, D {Options.DiscriminatorLr}, β₁ {Options.Beta1}).");
        Generator = generator;
        Discriminator = discriminator;
        var adam = new OptimizerOptions { Beta1 = Options.Beta1 };
        GeneratorOptimizer = OptimizerFactory.Create("adam", generator.ParameterCount, adam);
        DiscriminatorOptimizer = OptimizerFactory.Create("adam", discriminator.ParameterCount, adam);
    }

    public Sequential Generator { get; }
    public Sequential Discriminator { get; }
    public Optimizer GeneratorOptimizer { get; }
    public Optimizer DiscriminatorOptimizer { get; }
    public GanOptions Options { get; }
    public int LatentSize => Generator.InputShape[0];
    /// <summary>Both learning rates are multiplied by this in the next steps (a decay schedule sets it per step); 1 by default.</summary>
    public float LrFactor
    {
        get;
        set => field = value is >= 0f and <= 1f ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "The learning-rate factor must be in [0, 1].");
    } = 1f;

    /// <summary>Steps taken; the next step's number (its z and draws are keyed by it).</summary>
    public long Step { get; private set; }

    /// <summary>z (B,Z) ~ N(0, I) for <paramref name="step"/>: a function of (seed, step, sample) alone.</summary>
    public void FillLatent(Span<float> z, int batch, long step) =>
        Reparameterize.FillNormal(z, batch, LatentSize, SplitMix.Mix((ulong)(uint)Options.Seed ^ SplitMix.Mix(LatentDomain ^ (ulong)step * 0x9E3779B97F4A7C15UL)));

    /// <summary>G(z) for the step's latents, in training mode (batch statistics); the tensor belongs to G's last layer.</summary>
    public Tensor Generate(int batch, long step)
    {
        var z = Workspace.Ensure(ref _z, batch, Generator.InputShape);
        FillLatent(z.Span, batch, step);
        return Generator.Forward(z, Context(step, GeneratorPass));
    }

    /// <summary>
    /// D's gradient (into Discriminator.Store.Grads, zeroed first) of the mean BCE on <paramref name="real"/> as 1 and
    /// <paramref name="fake"/> as 0, summed. Returns (loss, mean D(x), mean D(G(z))). G is untouched.
    /// </summary>
    public (double Loss, double RealBelief, double FakeBelief) DiscriminatorGradient(Tensor real, Tensor fake, long step)
    {
        int b = real.Dim(0);
        if (fake.Dim(0) != b) throw new ArgumentException($"A GAN step needs as many generated as real samples ({fake.Dim(0)} vs {b}).");
        Labels(b);
        Discriminator.InputGrad = false;   // D's update needs no gradient with respect to the images
        Discriminator.ZeroGrad();
        var (lossReal, beliefReal) = Pass(real, _ones, b, step, RealPass);
        var (lossFake, beliefFake) = Pass(fake, _zeros, b, step, FakePass);
        return (lossReal + lossFake, beliefReal, beliefFake);
    }

    /// <summary>
    /// G's gradient (into Generator.Store.Grads, zeroed first) of the non-saturating loss −(1/B)Σ log σ(s(G(z))), through
    /// D's input gradient. <paramref name="fake"/> must be G's latest output (G's layers hold its activations). D's
    /// weights are not changed (its gradient buffer is overwritten and not applied). Returns (loss, mean D(G(z))).
    /// </summary>
    public (double Loss, double FakeBelief) GeneratorGradient(Tensor fake, long step)
    {
        int b = fake.Dim(0);
        Labels(b);
        Discriminator.InputGrad = true;
        Discriminator.ZeroGrad();
        Generator.ZeroGrad();
        var s = Discriminator.Forward(fake, Context(step, GeneratorLossPass));
        var d = Workspace.Ensure(ref _dOut, b, Discriminator.OutputShape);
        double loss = _bce.Compute(s, _ones.AsSpan(0, b), null, d, 1f / b) / b;
        var dFake = Discriminator.Backward(d);
        Generator.Backward(dFake);
        return (loss, MeanBelief(s));
    }

    /// <summary>One step on a batch of real samples (B, ...S) in the range G's output has (tanh: [−1, 1]):
    /// D's update, then G's, each by its own Adam.</summary>
    public GanStepStats TrainStep(Tensor real)
    {
        ArgumentNullException.ThrowIfNull(real);
        if (real.Rank != Discriminator.InputShape.Length + 1 || !real.Shape.AsSpan(1).SequenceEqual(Discriminator.InputShape))
            throw new ArgumentException($"Real samples {real} do not match the discriminator's input (B, {string.Join(",", Discriminator.InputShape)}).", nameof(real));
        if (real.Dim(0) < 2)
            throw new ArgumentException($"A GAN step needs a batch of at least 2 (got {real.Dim(0)}).", nameof(real));
        long t = Step + 1;
        var fake = Generate(real.Dim(0), Step);
        var (lossD, dx, dgz1) = DiscriminatorGradient(real, fake, Step);
        DiscriminatorOptimizer.Step(Discriminator.Store.Values, Discriminator.Store.Grads, LrFactor == 1f ? Options.DiscriminatorLr : Options.DiscriminatorLr * LrFactor, t);
        var (lossG, dgz2) = GeneratorGradient(fake, Step);
        GeneratorOptimizer.Step(Generator.Store.Values, Generator.Store.Grads, LrFactor == 1f ? Options.GeneratorLr : Options.GeneratorLr * LrFactor, t);
        Step = t;
        return new GanStepStats(lossD, lossG, dx, dgz1, dgz2);
    }

    /// <summary>G's samples (B, ...S) for given latents, in evaluation mode (BatchNorm's running statistics).</summary>
    public Tensor Sample(Tensor z) => Generator.Forward(z, StepContext.Eval);

    private (double Loss, double Belief) Pass(Tensor x, int[] labels, int b, long step, int pass)
    {
        var s = Discriminator.Forward(x, Context(step, pass));
        var d = Workspace.Ensure(ref _dOut, b, Discriminator.OutputShape);
        double loss = _bce.Compute(s, labels.AsSpan(0, b), null, d, 1f / b) / b;
        double belief = MeanBelief(s);
        Discriminator.Backward(d);
        return (loss, belief);
    }

    private StepContext Context(long step, int pass) => new(true, (ulong)(uint)Options.Seed, step, pass);

    private static double MeanBelief(Tensor logits)
    {
        double sum = 0;
        foreach (var s in logits.Span) sum += 1.0 / (1.0 + Math.Exp(-(double)s));
        return sum / logits.Length;
    }

    private void Labels(int b)
    {
        if (_ones.Length >= b) return;
        _ones = new int[b];
        Array.Fill(_ones, 1);
        _zeros = new int[b];
    }
}

/// <summary>The default networks for 28×28 single-channel images (Fashion-MNIST): a small DCGAN.</summary>
public static class GanSpecs
{
    /// <summary>z (Z) → dense 64·7·7 + BN + ReLU → (64,7,7) → ConvTranspose2d 64→32 (4, stride 2, padding 1) + BN + ReLU → (32,14,14)
    /// → ConvTranspose2d 32→1 → tanh → (1,28,28). Weights N(0, 0.02²) as DCGAN.</summary>
    public static string Generator(int latent = 64) => $$"""
        {"name":"gan_generator","input":[{{latent}}],"loss":"none","layers":[
          {"type":"dense","out":3136,"bias":false,"init":"normal","init_scale":0.02,"name":"fc"},{"type":"batchnorm1d","name":"fc_bn"},{"type":"relu","name":"fc_relu"},
          {"type":"reshape","shape":[64,7,7],"name":"unflatten"},
          {"type":"conv_transpose2d","out":32,"kernel":4,"stride":2,"padding":1,"bias":false,"init":"normal","init_scale":0.02,"name":"up1"},
          {"type":"batchnorm2d","name":"up1_bn"},{"type":"relu","name":"up1_relu"},
          {"type":"conv_transpose2d","out":1,"kernel":4,"stride":2,"padding":1,"init":"normal","init_scale":0.02,"name":"up2"},{"type":"tanh","name":"out"}]}
        """;

    /// <summary>(1,28,28) → conv 1→32 (4, stride 2, padding 1) + LeakyReLU 0.2 → conv 32→64 + BN + LeakyReLU 0.2 → (64,7,7) → dense → one logit.</summary>
    public const string Discriminator = """
        {"name":"gan_discriminator","input":[1,28,28],"loss":"bce_with_logits","layers":[
          {"type":"conv2d","out":32,"kernel":4,"stride":2,"padding":1,"init":"normal","init_scale":0.02,"name":"c1"},{"type":"leaky_relu","slope":0.2,"name":"c1_act"},
          {"type":"conv2d","out":64,"kernel":4,"stride":2,"padding":1,"bias":false,"init":"normal","init_scale":0.02,"name":"c2"},
          {"type":"batchnorm2d","name":"c2_bn"},{"type":"leaky_relu","slope":0.2,"name":"c2_act"},
          {"type":"flatten","name":"flat"},{"type":"dense","out":1,"init":"normal","init_scale":0.02,"name":"out"}]}
        """;
}

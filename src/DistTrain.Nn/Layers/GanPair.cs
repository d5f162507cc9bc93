// A GAN (Goodfellow et al. 2014) as one layer of a model, so the ordinary training step trains it, in one process and
// on a cluster: a generator G and a discriminator D (two child blocks, two optimizer groups of the one flat vector). Its
// input is a micro-batch of real samples x in [0,1] (shown to D as 2x − 1, the range of G's tanh); its output is G(z)
// for the micro-batch's latents z ~ N(0, I), keyed by (seed, step, micro-batch, layer, sample) — so a cluster worker
// draws what one process draws. Each micro-batch yields both players' gradients at the same parameters:
//   D: ∂/∂θ_D of Σ softplus(−s(x)) + Σ softplus(s(G(z)))   (BCE: real → 1, generated → 0), G fixed;
//   G: ∂/∂θ_G of Σ softplus(−s(G(z)))                       (the non-saturating loss), through D's input gradient,
//      D's weights fixed;
// s = D's logit. Both are summed over micro-batches and applied in one step ("simultaneous" alternation: docs/models.md).
// The work needs D's activations of the real and the generated pass in turn, so it runs inside Forward, with unit loss
// scale, into a stash; AddedLoss gives the two losses' sum and the scale, and Backward adds scale · stash into the
// gradients. D's running statistics follow the real images only (the generated pass's update is undone), so a
// micro-batch leaves one set of batch statistics, the one a cluster worker gathers after the last forward.
// Letters: B samples, Z latent size, S sample shape.
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class GanPair : Layer
{
    // Distinct StepContext seeds for D's two passes, so a discriminator with dropout draws independently in each.
    private const ulong RealPass = 0x5245414CUL, FakePass = 0x46414B45UL;

    private Param[] _gParams = [], _dParams = [], _dBuffers = [];
    private float[] _prior = [], _stash = [], _dSave = [], _bufferSave = [], _fakeLogits = [];
    private Tensor? _real, _z, _dReal, _dFake, _dx;
    private int[] _latentShape = [], _sampleShape = [], _logitShape = [];
    private float _scale;

    public GanPair(int latent, Block generator, Block discriminator, float generatorLrScale = 1f, float discriminatorLrScale = 1f)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(discriminator);
        if (latent < 1) throw new ArgumentException($"GanPair: the latent size must be positive, not {latent}.", nameof(latent));
        if (!(generatorLrScale >= 0) || !(discriminatorLrScale >= 0) || !float.IsFinite(generatorLrScale) || !float.IsFinite(discriminatorLrScale))
            throw new ArgumentException($"GanPair: learning-rate factors must be finite and ≥ 0 (got G {generatorLrScale}, D {discriminatorLrScale}).");
        Latent = latent; Generator = generator; Discriminator = discriminator;
        GeneratorLrScale = generatorLrScale; DiscriminatorLrScale = discriminatorLrScale;
    }

    public int Latent { get; }
    public Block Generator { get; }
    public Block Discriminator { get; }
    public float GeneratorLrScale { get; }
    public float DiscriminatorLrScale { get; }
    /// <summary>Σ over the last Forward's samples of D's loss (real → 1, generated → 0).</summary>
    public double DiscriminatorLoss { get; private set; }
    /// <summary>Σ over the last Forward's samples of G's non-saturating loss −log σ(s(G(z))).</summary>
    public double GeneratorLoss { get; private set; }
    /// <summary>Mean D(x) = σ(s(x)) on the real samples and on the generated ones, last Forward.</summary>
    public double RealBelief { get; private set; }
    public double FakeBelief { get; private set; }

    public override IEnumerable<(string Name, Layer Layer)> Children => [("generator", Generator), ("discriminator", Discriminator)];

    public override IEnumerable<(Layer Scope, float LrScale)> OptimizerGroups => [(Generator, GeneratorLrScale), (Discriminator, DiscriminatorLrScale)];

    public override int[] Build(int[] inputShape)
    {
        _latentShape = [Latent];
        var made = Generator.Build(_latentShape);
        if (!made.AsSpan().SequenceEqual(inputShape))
            throw ShapeError(inputShape, $"the generator's output {Tensor.ShapeString(made)} (the real samples' shape)");
        var logit = Discriminator.Build(inputShape);
        if (logit.Aggregate(1, (a, b) => a * b) != 1)
            throw new ArgumentException($"Layer {Name} {this}: the discriminator gives {Tensor.ShapeString(logit)}; it must give one logit per sample (end in a dense layer with \"out\":1).");
        _sampleShape = inputShape;
        _logitShape = logit;
        return inputShape;
    }

    /// <summary>z (B,Z) ~ N(0, I) for this layer at (seed, step, micro-batch) of <paramref name="ctx"/>; row i depends on i alone.</summary>
    public void FillLatent(Span<float> z, int batch, in StepContext ctx) => Reparameterize.FillNormal(z, batch, Latent, ctx.LayerSeed(Index));

    // x (B,...S) real in [0,1] -> G(z) (B,...S); in training also both gradients (unit scale) into the stash.
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int b = x.Dim(0);
        if (_gParams.Length == 0 && _dParams.Length == 0) CollectParams();
        var real = Workspace.Ensure(ref _real, b, _sampleShape);
        var xs = x.Span; var rs = real.Span;
        for (int i = 0; i < rs.Length; i++) rs[i] = MathF.FusedMultiplyAdd(2f, xs[i], -1f);
        var z = Workspace.Ensure(ref _z, b, _latentShape);
        FillLatent(z.Span, b, ctx);
        _scale = 0f;
        var realCtx = ctx with { Seed = ctx.Seed ^ RealPass };
        var fakeCtx = ctx with { Seed = ctx.Seed ^ FakePass };
        if (!ctx.Training)
        {
            var gen = Generator.Forward(z, ctx);
            var fakeLogits = FakeLogits(Discriminator.Forward(gen, fakeCtx), b);
            Losses(Discriminator.Forward(real, realCtx).Span, fakeLogits);
            return gen;
        }

        Copy(_gParams, _prior, 0, grads: true); Copy(_dParams, _prior, Count(_gParams), grads: true);
        foreach (var p in _gParams) p.Grad.Clear();
        foreach (var p in _dParams) p.Grad.Clear();
        Generator.ComputeInputGrad = false;
        var fake = Generator.Forward(z, ctx);

        // Generated pass first: D's gradient (label 0), then D's input gradient of G's loss (label 1) with D's
        // parameter gradient kept as it was, then G's gradient; its running-statistics update is undone.
        Copy(_dBuffers, _bufferSave, 0, grads: false);
        var sf = Discriminator.Forward(fake, fakeCtx);
        var dFake = Workspace.Ensure(ref _dFake, b, _logitShape);
        var sfs = FakeLogits(sf, b); var df = dFake.Span;
        for (int i = 0; i < b; i++) df[i] = Sigmoid(sfs[i]);                  // ∂softplus(s)/∂s
        Discriminator.ComputeInputGrad = false;
        Discriminator.Backward(dFake);
        Copy(_dParams, _dSave, 0, grads: true);
        for (int i = 0; i < b; i++) df[i] = Sigmoid(sfs[i]) - 1f;             // ∂softplus(−s)/∂s
        Discriminator.ComputeInputGrad = true;
        var dGen = Discriminator.Backward(dFake);
        Restore(_dParams, _dSave, 0, grads: true);
        Generator.Backward(dGen);
        Restore(_dBuffers, _bufferSave, 0, grads: false);

        // Real pass last, so D's batch statistics are the ones a cluster worker gathers.
        var sr = Discriminator.Forward(real, realCtx);
        var dReal = Workspace.Ensure(ref _dReal, b, _logitShape);
        var srs = sr.Span; var dr = dReal.Span;
        for (int i = 0; i < b; i++) dr[i] = Sigmoid(srs[i]) - 1f;
        Discriminator.ComputeInputGrad = false;
        Discriminator.Backward(dReal);
        Losses(srs, sfs);

        Copy(_gParams, _stash, 0, grads: true); Copy(_dParams, _stash, Count(_gParams), grads: true);
        Restore(_gParams, _prior, 0, grads: true); Restore(_dParams, _prior, Count(_gParams), grads: true);
        return fake;
    }

    public override double AddedLoss(float scale)
    {
        _scale = scale;
        return DiscriminatorLoss + GeneratorLoss;
    }

    /// <summary>Adds scale · (both players' gradients of the last training Forward); no gradient reaches the real samples.</summary>
    public override Tensor Backward(Tensor dy)
    {
        if (_scale != 0f)
        {
            int o = AddScaled(_gParams, 0);
            AddScaled(_dParams, o);
        }
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _sampleShape);
        dx.Clear();
        return dx;
    }

    private int AddScaled(Param[] ps, int at)
    {
        foreach (var p in ps)
        {
            var g = p.Grad.Span;
            TensorPrimitives.FusedMultiplyAdd(_stash.AsSpan(at, g.Length), _scale, g, g);   // fused on every path: the same bits at any vector width
            at += g.Length;
        }
        return at;
    }

    private void Losses(ReadOnlySpan<float> sr, ReadOnlySpan<float> sf)
    {
        double d = 0, g = 0, br = 0, bf = 0;
        for (int i = 0; i < sr.Length; i++)
        {
            d += Softplus(-sr[i]) + Softplus(sf[i]);
            g += Softplus(-sf[i]);
            br += Sigmoid(sr[i]);
            bf += Sigmoid(sf[i]);
        }
        DiscriminatorLoss = d; GeneratorLoss = g;
        RealBelief = br / sr.Length; FakeBelief = bf / sf.Length;
    }

    // D's output tensor is reused by its next forward: the generated pass's logits are kept here.
    private ReadOnlySpan<float> FakeLogits(Tensor logits, int b)
    {
        if (_fakeLogits.Length < b) _fakeLogits = new float[b];
        logits.Span.CopyTo(_fakeLogits);
        return _fakeLogits.AsSpan(0, b);
    }

    private static double Softplus(double v) => Math.Max(v, 0) + Math.Log(1 + Math.Exp(-Math.Abs(v)));

    private static float Sigmoid(float s) => s >= 0 ? 1f / (1f + MathF.Exp(-s)) : MathF.Exp(s) / (1f + MathF.Exp(s));

    private void CollectParams()
    {
        static IEnumerable<Layer> All(Layer l) => l.Children.SelectMany(c => All(c.Layer)).Prepend(l);
        _gParams = All(Generator).SelectMany(l => l.OwnParams).Where(p => !p.IsBuffer).ToArray();
        _dParams = All(Discriminator).SelectMany(l => l.OwnParams).Where(p => !p.IsBuffer).ToArray();
        _dBuffers = All(Discriminator).SelectMany(l => l.OwnParams).Where(p => p.IsBuffer).ToArray();
        int n = Count(_gParams) + Count(_dParams);
        _prior = new float[n]; _stash = new float[n];
        _dSave = new float[Count(_dParams)];
        _bufferSave = new float[Count(_dBuffers)];
    }

    private static int Count(Param[] ps) => ps.Sum(p => p.Length);

    private static void Copy(Param[] ps, float[] to, int at, bool grads)
    {
        foreach (var p in ps) { (grads ? p.Grad : p.Value).Span.CopyTo(to.AsSpan(at, p.Length)); at += p.Length; }
    }

    private static void Restore(Param[] ps, float[] from, int at, bool grads)
    {
        foreach (var p in ps) { from.AsSpan(at, p.Length).CopyTo((grads ? p.Grad : p.Value).Span); at += p.Length; }
    }

    public override string ToString() => $"GanPair(latent={Latent}, lr_scale G={GeneratorLrScale}, D={DiscriminatorLrScale})";
}

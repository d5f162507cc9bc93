// The VAE's sampling step (Kingma & Welling's reparameterization): x = [μ | log σ²] (B,2Z) -> z = μ + ε·exp(½ log σ²)
// (B,Z), with ε ~ N(0,1) drawn from (seed, step, micro-batch, layer, sample) only — so a cluster draws what one
// process draws. It also adds the KL divergence KL(N(μ,σ²) ‖ N(0,1)) = −½ Σ_j (1 + log σ² − μ² − σ²) per sample
// to the objective through the Layer.AddedLoss hook (Keras's add_loss): the trainer adds Σ_i KL_i to the loss
// and the next Backward adds scale·∂KL/∂x. Draws happen in eval too (PyTorch's VAE example samples at test
// time, and the ELBO is an expectation over ε). Letters: B samples, Z latent size.
namespace DistTrain.Nn.Layers;

using DistTrain.Tensors;

public sealed class Reparameterize : Layer
{
    private int _z;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _x, _y, _eps, _dx;
    private float _klScale;   // set by AddedLoss for the last Forward; 0 = no KL gradient in Backward

    /// <param name="klWeight">β of a β-VAE: the KL term's weight (1 = the ELBO).</param>
    public Reparameterize(float klWeight = 1f)
    {
        if (!(klWeight >= 0) || !float.IsFinite(klWeight))
            throw new ArgumentException($"Reparameterize: kl_weight must be a finite number ≥ 0, not {klWeight}.", nameof(klWeight));
        KlWeight = klWeight;
    }

    public float KlWeight { get; }
    public int LatentSize => _z;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 1 || inputShape[0] % 2 != 0)
            throw ShapeError(inputShape, "(2Z): μ and log σ² side by side, from a dense layer with an even \"out\"");
        _z = inputShape[0] / 2;
        _inShape = inputShape;
        _outShape = [_z];
        return _outShape;
    }

    /// <summary>ε for every (sample, latent) of the batch: Box–Muller on 53-bit uniforms from SplitMix64 seeded per sample.</summary>
    public static void FillNormal(Span<float> eps, int batch, int z, ulong layerSeed)
    {
        for (int i = 0; i < batch; i++)
        {
            ulong state = SplitMix.Mix(layerSeed ^ SplitMix.Mix((ulong)i + 0x5A17UL));
            var row = eps.Slice(i * z, z);
            for (int j = 0; j < z; j += 2)
            {
                double u1 = 1.0 - (SplitMix.Mix(state) >> 11) * (1.0 / (1UL << 53));   // (0, 1]: log is finite
                state += 0x9E3779B97F4A7C15UL;
                double u2 = (SplitMix.Mix(state) >> 11) * (1.0 / (1UL << 53));
                state += 0x9E3779B97F4A7C15UL;
                double r = Math.Sqrt(-2.0 * Math.Log(u1)), a = 2.0 * Math.PI * u2;
                row[j] = (float)(r * Math.Cos(a));
                if (j + 1 < z) row[j + 1] = (float)(r * Math.Sin(a));
            }
        }
    }

    // x (B,2Z) = [μ | log σ²] -> z (B,Z)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0);
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        var eps = Workspace.Ensure(ref _eps, batch, _outShape);
        FillNormal(eps.Span, batch, _z, ctx.LayerSeed(Index));
        var xs = x.Span; var ys = y.Span; var es = eps.Span;
        for (int i = 0; i < batch; i++)
            for (int j = 0; j < _z; j++)
            {
                float mu = xs[i * 2 * _z + j], logVar = xs[i * 2 * _z + _z + j];
                ys[i * _z + j] = MathF.FusedMultiplyAdd(es[i * _z + j], MathF.Exp(0.5f * logVar), mu);
            }
        _x = x;
        _klScale = 0f;
        return y;
    }

    /// <summary>Σ_i β·KL_i over the last Forward's batch; the next Backward adds scale·β·∂KL/∂x.</summary>
    public override double AddedLoss(float scale)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: AddedLoss called before Forward.");
        int batch = x.Dim(0);
        var xs = x.Span;
        double total = 0;
        for (int i = 0; i < batch; i++)
        {
            double kl = 0;
            for (int j = 0; j < _z; j++)
            {
                double mu = xs[i * 2 * _z + j], logVar = xs[i * 2 * _z + _z + j];
                kl += 1 + logVar - mu * mu - Math.Exp(logVar);
            }
            total += -0.5 * kl;
        }
        _klScale = scale;
        return KlWeight * total;
    }

    // dz (B,Z) -> dx (B,2Z): dμ = dz + c·μ, d log σ² = ½·dz·ε·σ + c·½(σ² − 1), c = scale·β (0 without AddedLoss)
    public override Tensor Backward(Tensor dy)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int batch = x.Dim(0);
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        var xs = x.Span; var g = dy.Span; var es = _eps!.Span; var d = dx.Span;
        float c = _klScale * KlWeight;
        for (int i = 0; i < batch; i++)
            for (int j = 0; j < _z; j++)
            {
                int m = i * 2 * _z + j, v = m + _z, k = i * _z + j;
                float mu = xs[m], sigma = MathF.Exp(0.5f * xs[v]);
                d[m] = MathF.FusedMultiplyAdd(c, mu, g[k]);
                d[v] = MathF.FusedMultiplyAdd(c * 0.5f, sigma * sigma - 1f, 0.5f * g[k] * es[k] * sigma);
            }
        return dx;
    }

    public override string ToString() =>
        FormattableString.Invariant($"Reparameterize(latent={_z}{(KlWeight == 1f ? "" : $", kl_weight={KlWeight}")})");
}

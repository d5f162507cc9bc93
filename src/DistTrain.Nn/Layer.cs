// The layer contract: Build (shapes and parameters), ResetParameters, Forward, Backward.
// Shapes: B = batch; a layer sees per-sample shapes in Build and (B, ...) tensors in Forward.
using DistTrain.Tensors;

namespace DistTrain.Nn;

/// <summary>What a step needs to know inside Forward: train/eval, and the seeds for random draws
/// (dropout), which derive from (seed, step, micro-batch, layer) so a step is reproducible anywhere.</summary>
public readonly record struct StepContext(bool Training, ulong Seed = 0, long Step = 0, int MicroBatch = 0)
{
    public static StepContext Eval => new(false);

    /// <summary>A seed unique to this step, micro-batch and layer index.</summary>
    public ulong LayerSeed(int layerIndex) =>
        SplitMix.Mix(Seed ^ SplitMix.Mix((ulong)Step * 0x9E3779B97F4A7C15UL ^ SplitMix.Mix(((ulong)(uint)MicroBatch << 20) ^ (ulong)(uint)layerIndex)));
}

public static class SplitMix
{
    public static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

public abstract class Layer
{
    private readonly List<Param> _params = [];

    /// <summary>Index-based or user-given name; the prefix of this layer's parameter names.</summary>
    public string Name { get; internal set; } = "";
    /// <summary>Position in the flattened model, used to derive per-layer seeds.</summary>
    public int Index { get; internal set; }

    /// <summary>False for a model's first layer: Backward may then skip computing dx (nothing consumes it)
    /// and return a tensor whose contents are unspecified. Layers that ignore it stay correct.</summary>
    public bool ComputeInputGrad { get; set; } = true;

    /// <summary>This layer's own parameters and buffers (not its children's).</summary>
    public IReadOnlyList<Param> OwnParams => _params;

    /// <summary>Sub-layers with their local names (a residual block's convolutions), else empty.</summary>
    public virtual IEnumerable<(string Name, Layer Layer)> Children => [];

    /// <summary>Optimizer groups this layer makes of its sub-layers (a GAN's generator and discriminator): each sub-layer's
    /// parameters (its children's included) are stepped with the schedule's learning rate times the factor. Else empty.</summary>
    public virtual IEnumerable<(Layer Scope, float LrScale)> OptimizerGroups => [];

    protected Param DeclareParam(string localName, params int[] shape) => Add(new Param(localName, shape));
    protected Param DeclareBuffer(string localName, params int[] shape) => Add(new Param(localName, shape, isBuffer: true));

    private Param Add(Param p) { _params.Add(p); return p; }

    /// <summary>Checks the per-sample input shape, declares parameters, returns the per-sample output shape.
    /// Throws ArgumentException naming the layer and the shapes when they do not chain.</summary>
    public abstract int[] Build(int[] inputShape);

    /// <summary>Initialises parameters (after the store is bound) from <paramref name="rng"/>.</summary>
    public virtual void ResetParameters(Random rng) { }

    /// <summary>x (B, ...in) -> y (B, ...out). The returned tensor is owned by the layer and reused next call.</summary>
    public abstract Tensor Forward(Tensor x, in StepContext ctx);

    /// <summary>dy (B, ...out) -> dx (B, ...in); adds into parameter gradients. dx is owned by the layer.</summary>
    public abstract Tensor Backward(Tensor dy);

    /// <summary>
    /// Σ over the last Forward's samples of an extra term this layer adds to the objective (a VAE's KL divergence;
    /// Keras's add_loss), or 0. Called after Forward and before Backward with the loss scale; the next Backward then
    /// also adds scale · ∂term/∂input. Without the call Backward back-propagates dy alone.
    /// </summary>
    public virtual double AddedLoss(float scale) => 0;

    /// <summary>Configuration, PyTorch extra_repr style: `Dense(in=784, out=128)`.</summary>
    public abstract override string ToString();

    protected ArgumentException ShapeError(int[] inputShape, string expected) =>
        new($"Layer {Name} {this}: input shape {Tensor.ShapeString(inputShape)} does not fit; expected {expected}.");
}

/// <summary>Reusable workspace tensors: reallocated only when the batch size or shape changes,
/// so a steady-state training step allocates nothing.</summary>
public static class Workspace
{
    public static Tensor Ensure(ref Tensor? t, int batch, int[] sampleShape)
    {
        if (t is not null && t.Rank == sampleShape.Length + 1 && t.Dim(0) == batch &&
            t.Shape.AsSpan(1).SequenceEqual(sampleShape))
            return t;
        var shape = new int[sampleShape.Length + 1];
        shape[0] = batch;
        sampleShape.CopyTo(shape, 1);
        return t = new Tensor(shape);
    }

    public static Tensor Ensure(ref Tensor? t, int d0, int d1)
    {
        if (t is not null && t.Rank == 2 && t.Dim(0) == d0 && t.Dim(1) == d1) return t;
        return t = new Tensor(d0, d1);
    }
}

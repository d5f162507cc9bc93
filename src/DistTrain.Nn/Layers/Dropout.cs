// Inverted dropout (PyTorch nn.Dropout(p)): in training each element is kept with probability 1 − p
// and scaled by 1/(1 − p); in eval it is the identity. The mask is drawn from a counter-based RNG
// (SplitMix64 of the element index) seeded by ctx.LayerSeed(Index), so a step's mask depends only on
// (seed, step, micro-batch, layer) and is the same on every machine (DESIGN contract 2c).
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class Dropout : Layer
{
    private int[] _shape = [];
    private Tensor? _mask, _y, _dx;
    private bool _active;

    public Dropout(float p = 0.5f)
    {
        if (!(p >= 0f && p <= 1f)) throw new ArgumentException($"Dropout: probability p={p} must be in [0, 1].", nameof(p));
        P = p;
    }

    public float P { get; }

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length == 0) throw ShapeError(inputShape, "a per-sample shape with at least one dimension");
        _shape = inputShape;
        return inputShape;
    }

    // x (B, ...) -> y = x ⊙ mask, mask ∈ {0, 1/(1−p)}; identity in eval
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        _active = ctx.Training && P > 0f;
        if (!_active) return x;
        var mask = Workspace.Ensure(ref _mask, x.Dim(0), _shape);
        FillMask(mask.Span, P, ctx.LayerSeed(Index));
        var y = Workspace.Ensure(ref _y, x.Dim(0), _shape);
        TensorPrimitives.Multiply(x.Span, mask.Span, y.Span);
        return y;
    }

    // dy (B, ...) -> dx = dy ⊙ mask (the same mask as the forward)
    public override Tensor Backward(Tensor dy)
    {
        if (!_active) return dy;
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _shape);
        if (ComputeInputGrad) TensorPrimitives.Multiply(dy.Span, _mask!.Span, dx.Span);
        return dx;
    }

    /// <summary>mask[i] = u_i ≥ p ? 1/(1−p) : 0 with u_i uniform in [0,1) on a 2⁻²⁴ grid: element i takes
    /// 32 bits of SplitMix64(seed + (i/2 + 1)·γ), the high half for odd i.</summary>
    public static void FillMask(Span<float> mask, float p, ulong seed)
    {
        float scale = p < 1f ? 1f / (1f - p) : 0f;
        // Threshold in integer space: keep when (bits >> 8) ≥ p·2²⁴, exact for every p.
        uint threshold = (uint)Math.Ceiling(p * 16777216.0);
        ulong state = seed;
        int i = 0;
        for (; i + 1 < mask.Length; i += 2)
        {
            ulong r = SplitMix.Mix(state);
            state += 0x9E3779B97F4A7C15UL;
            mask[i] = ((uint)r >> 8) >= threshold ? scale : 0f;
            mask[i + 1] = ((uint)(r >> 32) >> 8) >= threshold ? scale : 0f;
        }
        if (i < mask.Length) mask[i] = ((uint)SplitMix.Mix(state) >> 8) >= threshold ? scale : 0f;
    }

    public override string ToString() => FormattableString.Invariant($"Dropout(p={P})");
}

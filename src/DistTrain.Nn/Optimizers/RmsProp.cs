// RMSprop in PyTorch's form (no momentum, not centered): s = αs + (1−α)g²; p -= lr·g/(√s + eps).
// L2: g += wd·p first. State: square_avg.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Nn.Optimizers;

public sealed class RmsProp : Optimizer
{
    private readonly float[] _sq;

    public RmsProp(int length, float alpha = 0.99f, float eps = 1e-8f, float weightDecay = 0f) : base(length)
    {
        Alpha = OptimizerOptions.CheckUnit(nameof(alpha), alpha);
        Eps = OptimizerOptions.CheckNonNegative(nameof(eps), eps);
        WeightDecay = OptimizerOptions.CheckNonNegative(nameof(weightDecay), weightDecay);
        _sq = new float[length];
    }

    public float Alpha { get; }
    public float Eps { get; }
    public float WeightDecay { get; }

    public override IReadOnlyList<(string Name, float[] Data)> State => [("square_avg", _sq)];

    public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t)
    {
        Elementwise.CheckLengths(this, values.Length, grads.Length);
        var op = new Op
        {
            P = ref MemoryMarshal.GetReference(values),
            G = ref Unsafe.AsRef(in MemoryMarshal.GetReference(grads)),
            S = ref MemoryMarshal.GetArrayDataReference(_sq),
            NegLr = -lr, Alpha = Alpha, OneMinusAlpha = 1f - Alpha, Eps = Eps, Wd = WeightDecay,
        };
        Elementwise.Run(ref op, Length);
    }

    public override string ToString() => $"RMSprop(alpha={Alpha}, eps={Eps}, weight_decay={WeightDecay})";

    private ref struct Op : IUpdateOp
    {
        public ref float P;
        public ref float G;
        public ref float S;
        public float NegLr, Alpha, OneMinusAlpha, Eps, Wd;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV>(nuint i) where TV : struct, IVec<TV>
        {
            var p = TV.Load(ref P, i);
            var g = TV.Load(ref G, i);
            if (Wd != 0f) g = TV.Fma(TV.Splat(Wd), p, g);
            var s = TV.Fma(TV.Splat(Alpha), TV.Load(ref S, i), TV.Splat(OneMinusAlpha) * g * g);
            TV.Store(s, ref S, i);
            var avg = TV.Sqrt(s) + TV.Splat(Eps);
            TV.Store(TV.Fma(TV.Splat(NegLr), g / avg, p), ref P, i);
        }
    }
}

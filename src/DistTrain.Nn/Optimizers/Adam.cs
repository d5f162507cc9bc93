// Adam in PyTorch's form: m = β1·m + (1−β1)g; v = β2·v + (1−β2)g²;
// p -= (lr/(1−β1^t))·m/(√v/√(1−β2^t) + eps). L2 (g += wd·p) here; AdamW (decoupled) reuses the update.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Nn.Optimizers;

public class Adam : Optimizer
{
    private readonly float[] _m, _v;
    private readonly bool _decoupled;

    public Adam(int length, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0f)
        : this(length, beta1, beta2, eps, weightDecay, decoupled: false) { }

    private protected Adam(int length, float beta1, float beta2, float eps, float weightDecay, bool decoupled) : base(length)
    {
        Beta1 = OptimizerOptions.CheckUnit(nameof(beta1), beta1);
        Beta2 = OptimizerOptions.CheckUnit(nameof(beta2), beta2);
        Eps = OptimizerOptions.CheckNonNegative(nameof(eps), eps);
        WeightDecay = OptimizerOptions.CheckNonNegative(nameof(weightDecay), weightDecay);
        _decoupled = decoupled;
        _m = new float[length];
        _v = new float[length];
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    public float WeightDecay { get; }

    public override IReadOnlyList<(string Name, float[] Data)> State => [("exp_avg", _m), ("exp_avg_sq", _v)];

    public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t)
    {
        Elementwise.CheckLengths(this, values.Length, grads.Length);
        Update(values, grads, lr, t, 0);
    }

    public override bool Segmentable => true;

    public override void StepSegment(Span<float> values, ReadOnlySpan<float> grads, float lr, long t, int offset)
    {
        Elementwise.CheckSegment(this, values.Length, grads.Length, offset);
        Update(values, grads, lr, t, offset);
    }

    private void Update(Span<float> values, ReadOnlySpan<float> grads, float lr, long t, int offset)
    {
        Elementwise.CheckStep(this, t);
        // Scalars in double, as PyTorch computes them in Python floats, then rounded once to float.
        double bc1 = 1.0 - Math.Pow(Beta1, t), bc2 = 1.0 - Math.Pow(Beta2, t);
        var op = new Op
        {
            P = ref MemoryMarshal.GetReference(values),
            G = ref Unsafe.AsRef(in MemoryMarshal.GetReference(grads)),
            M = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_m), offset),
            V = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_v), offset),
            B1 = Beta1, C1 = 1f - Beta1, B2 = Beta2, C2 = 1f - Beta2, Eps = Eps,
            NegStep = (float)(-lr / bc1),
            Bc2Sqrt = (float)Math.Sqrt(bc2),
            L2 = _decoupled ? 0f : WeightDecay,
            Decay = _decoupled ? (float)(1.0 - (double)lr * WeightDecay) : 1f,
        };
        Elementwise.Run(ref op, values.Length);
    }

    public override string ToString() => $"Adam(beta1={Beta1}, beta2={Beta2}, eps={Eps}, weight_decay={WeightDecay})";

    private ref struct Op : IUpdateOp
    {
        public ref float P;
        public ref float G;
        public ref float M;
        public ref float V;
        public float B1, C1, B2, C2, Eps, NegStep, Bc2Sqrt, L2, Decay;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV>(nuint i) where TV : struct, IVec<TV>
        {
            var p = TV.Load(ref P, i);
            var g = TV.Load(ref G, i);
            if (L2 != 0f) g = TV.Fma(TV.Splat(L2), p, g);
            if (Decay != 1f) p *= TV.Splat(Decay);
            var m = TV.Fma(TV.Splat(B1), TV.Load(ref M, i), TV.Splat(C1) * g);
            var v = TV.Fma(TV.Splat(B2), TV.Load(ref V, i), TV.Splat(C2) * g * g);
            TV.Store(m, ref M, i);
            TV.Store(v, ref V, i);
            var denom = TV.Sqrt(v) / TV.Splat(Bc2Sqrt) + TV.Splat(Eps);
            TV.Store(TV.Fma(TV.Splat(NegStep), m / denom, p), ref P, i);
        }
    }
}

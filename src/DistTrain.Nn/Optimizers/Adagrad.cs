// Adagrad in PyTorch's form: s += g²; p -= clr·g/(√s + eps), clr = lr/(1 + (t−1)·lr_decay).
// L2: g += wd·p first. State: sum.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Nn.Optimizers;

public sealed class Adagrad : Optimizer
{
    private readonly float[] _sum;

    public Adagrad(int length, float eps = 1e-10f, float lrDecay = 0f, float initialAccumulatorValue = 0f, float weightDecay = 0f) : base(length)
    {
        Eps = OptimizerOptions.CheckNonNegative(nameof(eps), eps);
        LrDecay = OptimizerOptions.CheckNonNegative(nameof(lrDecay), lrDecay);
        InitialAccumulatorValue = OptimizerOptions.CheckNonNegative(nameof(initialAccumulatorValue), initialAccumulatorValue);
        WeightDecay = OptimizerOptions.CheckNonNegative(nameof(weightDecay), weightDecay);
        _sum = new float[length];
        Array.Fill(_sum, initialAccumulatorValue);
    }

    public float Eps { get; }
    public float LrDecay { get; }
    public float InitialAccumulatorValue { get; }
    public float WeightDecay { get; }

    public override IReadOnlyList<(string Name, float[] Data)> State => [("sum", _sum)];

    public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t)
    {
        Elementwise.CheckLengths(this, values.Length, grads.Length);
        Elementwise.CheckStep(this, t);
        var clr = (float)(lr / (1.0 + (t - 1) * (double)LrDecay));
        var op = new Op
        {
            P = ref MemoryMarshal.GetReference(values),
            G = ref Unsafe.AsRef(in MemoryMarshal.GetReference(grads)),
            S = ref MemoryMarshal.GetArrayDataReference(_sum),
            NegClr = -clr, Eps = Eps, Wd = WeightDecay,
        };
        Elementwise.Run(ref op, Length);
    }

    public override string ToString() =>
        $"Adagrad(eps={Eps}, lr_decay={LrDecay}, initial_accumulator_value={InitialAccumulatorValue}, weight_decay={WeightDecay})";

    private ref struct Op : IUpdateOp
    {
        public ref float P;
        public ref float G;
        public ref float S;
        public float NegClr, Eps, Wd;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV>(nuint i) where TV : struct, IVec<TV>
        {
            var p = TV.Load(ref P, i);
            var g = TV.Load(ref G, i);
            if (Wd != 0f) g = TV.Fma(TV.Splat(Wd), p, g);
            var s = TV.Fma(g, g, TV.Load(ref S, i));
            TV.Store(s, ref S, i);
            var std = TV.Sqrt(s) + TV.Splat(Eps);
            TV.Store(TV.Fma(TV.Splat(NegClr), g / std, p), ref P, i);
        }
    }
}

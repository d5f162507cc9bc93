// Nesterov momentum in PyTorch's form: v = βv + g; p -= lr·(g + βv). L2: g += wd·p first.
// State: momentum_buffer.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Nn.Optimizers;

public sealed class Nesterov : Optimizer
{
    private readonly float[] _v;

    public Nesterov(int length, float beta = 0.9f, float weightDecay = 0f) : base(length)
    {
        Beta = OptimizerOptions.CheckUnit(nameof(beta), beta);
        WeightDecay = OptimizerOptions.CheckNonNegative(nameof(weightDecay), weightDecay);
        _v = new float[length];
    }

    public float Beta { get; }
    public float WeightDecay { get; }

    public override IReadOnlyList<(string Name, float[] Data)> State => [("momentum_buffer", _v)];

    public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t)
    {
        Elementwise.CheckLengths(this, values.Length, grads.Length);
        var op = new Op
        {
            P = ref MemoryMarshal.GetReference(values),
            G = ref Unsafe.AsRef(in MemoryMarshal.GetReference(grads)),
            V = ref MemoryMarshal.GetArrayDataReference(_v),
            NegLr = -lr, Beta = Beta, Wd = WeightDecay,
        };
        Elementwise.Run(ref op, Length);
    }

    public override string ToString() => $"Nesterov(beta={Beta}, weight_decay={WeightDecay})";

    private ref struct Op : IUpdateOp
    {
        public ref float P;
        public ref float G;
        public ref float V;
        public float NegLr, Beta, Wd;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV>(nuint i) where TV : struct, IVec<TV>
        {
            var p = TV.Load(ref P, i);
            var g = TV.Load(ref G, i);
            if (Wd != 0f) g = TV.Fma(TV.Splat(Wd), p, g);
            var beta = TV.Splat(Beta);
            var v = TV.Fma(beta, TV.Load(ref V, i), g);
            TV.Store(v, ref V, i);
            TV.Store(TV.Fma(TV.Splat(NegLr), TV.Fma(beta, v, g), p), ref P, i);
        }
    }
}

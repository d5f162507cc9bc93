// Plain SGD over the flat span: p -= lr·(g + wd·p) (PyTorch SGD, momentum 0).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Nn.Optimizers;

public sealed class Sgd : Optimizer
{
    public Sgd(int length, float weightDecay = 0f) : base(length)
    {
        WeightDecay = OptimizerOptions.CheckNonNegative(nameof(weightDecay), weightDecay);
    }

    public float WeightDecay { get; }

    public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t)
    {
        Elementwise.CheckLengths(this, values.Length, grads.Length);
        Update(values, grads, lr);
    }

    public override bool Segmentable => true;

    public override void StepSegment(Span<float> values, ReadOnlySpan<float> grads, float lr, long t, int offset)
    {
        Elementwise.CheckSegment(this, values.Length, grads.Length, offset);
        Update(values, grads, lr);
    }

    private void Update(Span<float> values, ReadOnlySpan<float> grads, float lr)
    {
        var op = new Op
        {
            P = ref MemoryMarshal.GetReference(values),
            G = ref Unsafe.AsRef(in MemoryMarshal.GetReference(grads)),
            NegLr = -lr, Wd = WeightDecay,
        };
        Elementwise.Run(ref op, values.Length);
    }

    public override string ToString() => $"SGD(weight_decay={WeightDecay})";

    private ref struct Op : IUpdateOp
    {
        public ref float P;
        public ref float G;
        public float NegLr, Wd;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV>(nuint i) where TV : struct, IVec<TV>
        {
            var p = TV.Load(ref P, i);
            var g = TV.Load(ref G, i);
            if (Wd != 0f) g = TV.Fma(TV.Splat(Wd), p, g);
            TV.Store(TV.Fma(TV.Splat(NegLr), g, p), ref P, i);
        }
    }
}

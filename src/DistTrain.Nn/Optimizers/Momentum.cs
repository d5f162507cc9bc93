// SGD with momentum over the flat span, in both named forms: Classic (PyTorch, v = βv + g) and
// Ema (v = βv + (1−β)g); then p -= lr·v. L2: g += wd·p first. State: momentum_buffer.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Nn.Optimizers;

public sealed class Momentum : Optimizer
{
    private readonly float[] _v;

    public Momentum(int length, float beta = 0.9f, MomentumForm form = MomentumForm.Classic, float weightDecay = 0f) : base(length)
    {
        Beta = OptimizerOptions.CheckUnit(nameof(beta), beta);
        Form = form;
        WeightDecay = OptimizerOptions.CheckNonNegative(nameof(weightDecay), weightDecay);
        _v = new float[length];
    }

    public float Beta { get; }
    public MomentumForm Form { get; }
    public float WeightDecay { get; }

    public override IReadOnlyList<(string Name, float[] Data)> State => [("momentum_buffer", _v)];

    public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t)
    {
        Elementwise.CheckLengths(this, values.Length, grads.Length);
        Update(values, grads, lr, 0);
    }

    public override bool Segmentable => true;

    public override void StepSegment(Span<float> values, ReadOnlySpan<float> grads, float lr, long t, int offset)
    {
        Elementwise.CheckSegment(this, values.Length, grads.Length, offset);
        Update(values, grads, lr, offset);
    }

    private void Update(Span<float> values, ReadOnlySpan<float> grads, float lr, int offset)
    {
        var op = new Op
        {
            P = ref MemoryMarshal.GetReference(values),
            G = ref Unsafe.AsRef(in MemoryMarshal.GetReference(grads)),
            V = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_v), offset),
            NegLr = -lr, Beta = Beta, Wd = WeightDecay,
            GScale = Form == MomentumForm.Ema ? 1f - Beta : 1f,
        };
        Elementwise.Run(ref op, values.Length);
    }

    public override string ToString() => $"Momentum(form={Form}, beta={Beta}, weight_decay={WeightDecay})";

    private ref struct Op : IUpdateOp
    {
        public ref float P;
        public ref float G;
        public ref float V;
        public float NegLr, Beta, Wd, GScale;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV>(nuint i) where TV : struct, IVec<TV>
        {
            var p = TV.Load(ref P, i);
            var g = TV.Load(ref G, i);
            if (Wd != 0f) g = TV.Fma(TV.Splat(Wd), p, g);
            // GScale is exactly 1 for the classic form, so g·1 = g and both forms share one body.
            var v = TV.Fma(TV.Splat(Beta), TV.Load(ref V, i), g * TV.Splat(GScale));
            TV.Store(v, ref V, i);
            TV.Store(TV.Fma(TV.Splat(NegLr), v, p), ref P, i);
        }
    }
}

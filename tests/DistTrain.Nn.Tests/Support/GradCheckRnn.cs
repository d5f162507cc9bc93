// Central finite-difference gradient check for a single layer tested without Sequential: binds the
// layer's parameters to its own ParameterStore, uses the loss L = Σ y·R for a fixed random R (so
// dL/dy = R), and compares Backward's dx and every parameter gradient with (L(v+ε) − L(v−ε)) / 2ε.
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests.Support;

internal static class GradCheckRnn
{
    /// <summary>Build, bind a store over the layer's own params, reset from <paramref name="seed"/>.</summary>
    public static ParameterStore Bind(Layer layer, int[] sampleShape, int seed = 1)
    {
        layer.Build(sampleShape);
        var store = new ParameterStore(layer.OwnParams);
        layer.ResetParameters(new Random(seed));
        return store;
    }

    public static Tensor RandomTensor(Random rng, float scale, params int[] shape)
    {
        var t = new Tensor(shape);
        var s = t.Span;
        for (int i = 0; i < s.Length; i++) s[i] = (rng.NextSingle() * 2f - 1f) * scale;
        return t;
    }

    /// <summary>Moves every learned value away from its init (BatchNorm's weight 1 / bias 0 would hide errors).</summary>
    public static void Perturb(ParameterStore store, Random rng, float scale)
    {
        for (int i = 0; i < store.Values.Length; i++) store.Values[i] += (rng.NextSingle() * 2f - 1f) * scale;
    }

    /// <summary>Asserts |analytic − numeric| ≤ atol + rtol·|numeric| for every element of dx and of every
    /// parameter gradient; returns the largest absolute analytic gradient seen (callers assert it is not ~0).</summary>
    public static double Check(Layer layer, ParameterStore store, Tensor x, StepContext ctx,
        float eps = 1e-2f, double atol = 2e-3, double rtol = 2e-2)
    {
        var y = layer.Forward(x, ctx);
        var r = RandomTensor(new Random(12345), 1f, y.Shape);
        store.ZeroGrad();
        var dx = layer.Backward(r).ToArray();
        var grads = store.Grads.ToArray();
        Assert.Equal(x.Length, dx.Length);

        var failures = new List<string>();
        double largest = 0;
        void Compare(string what, float[] target, int offset, int i, double analytic)
        {
            float v = target[offset + i];
            float plus = v + eps, minus = v - eps;
            target[offset + i] = plus;
            double lp = Loss(layer, x, r, ctx);
            target[offset + i] = minus;
            double lm = Loss(layer, x, r, ctx);
            target[offset + i] = v;
            double numeric = (lp - lm) / ((double)plus - minus);
            largest = Math.Max(largest, Math.Abs(analytic));
            if (!(Math.Abs(analytic - numeric) <= atol + rtol * Math.Abs(numeric)) && failures.Count < 8)
                failures.Add($"{what}[{i}]: analytic {analytic:G6}, numeric {numeric:G6}");
        }

        for (int i = 0; i < x.Length; i++) Compare("dx", x.Buffer, x.Offset, i, dx[i]);
        foreach (var p in store.Learned)
            for (int i = 0; i < p.Length; i++) Compare(p.LocalName, store.Values, p.Offset, i, grads[p.Offset + i]);
        Assert.True(failures.Count == 0, $"{layer}: gradient mismatch\n" + string.Join("\n", failures));
        return largest;
    }

    private static double Loss(Layer layer, Tensor x, Tensor r, StepContext ctx)
    {
        var y = layer.Forward(x, ctx);
        double s = 0;
        for (int i = 0; i < y.Length; i++) s += (double)y[i] * r[i];
        return s;
    }

    /// <summary>Managed bytes allocated by <paramref name="step"/> on this thread, after two warm-up calls: the least of three
    /// calls. A steady-state allocation shows in every call; the runtime's own one-off growth (the thread pool's work queue
    /// taking a new segment while other test assemblies load the machine) shows in one and is not the step's.</summary>
    public static long AllocatedBytes(Action step)
    {
        step();
        step();
        long least = long.MaxValue;
        for (int i = 0; i < 3 && least > 0; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            step();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }
}

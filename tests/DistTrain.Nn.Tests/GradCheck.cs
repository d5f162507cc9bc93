// Gradient checker: analytic Backward against central finite differences of a scalar objective
// L = Σ r ⊙ y (r fixed random, L accumulated in double), perturbing inputs and parameters.
// Pass criterion per element: |analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|).
using DistTrain.Nn;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public static class GradCheck
{
    public sealed record Options(double Rtol = 2e-2, double Atol = 2e-3, float H = 1e-2f, int MaxChecks = 60, int Seed = 1)
    {
        /// <summary>Draws an input value; default U(−1, 1).</summary>
        public Func<Random, float>? Sample { get; init; }
        public StepContext Ctx { get; init; } = new(true, Seed: 7, Step: 3, MicroBatch: 2);
        public bool CheckInput { get; init; } = true;
        /// <summary>Largest share of checked elements allowed to sit on a kink (and be skipped).</summary>
        public double MaxKinkFraction { get; init; } = 0.2;
    }

    /// <summary>Away from 0 by at least 0.1 (for kinks at 0: ReLU, LeakyReLU).</summary>
    public static float AwayFromZero(Random r) => (float)((0.1 + 0.9 * r.NextDouble()) * (r.Next(2) == 0 ? -1 : 1));

    /// <summary>Checks a single layer (wrapped in a one-layer model) on a batch of <paramref name="batch"/>.</summary>
    public static void Layer(Func<Layer> make, int[] sampleShape, int batch, Options? o = null)
    {
        o ??= new Options();
        var model = new Sequential(sampleShape, [make()], o.Seed);
        model.InputGrad = true;
        Model(model, batch, o);
    }

    public static void Model(Sequential model, int batch, Options o)
    {
        var rng = new Random(o.Seed * 7919 + batch);
        var x = Fill(new Tensor([batch, .. model.InputShape]), rng, o.Sample);
        Model(model, x, o, rng);
    }

    /// <summary>Checks a model on a given input (inputs with structure: packed graph samples).</summary>
    public static void Model(Sequential model, Tensor x, Options o, Random? rng = null)
    {
        rng ??= new Random(o.Seed * 7919 + x.Dim(0));
        int batch = x.Dim(0);
        var r = Fill(new Tensor([batch, .. model.OutputShape]), rng, null);
        var ctx = o.Ctx;

        model.ZeroGrad();
        model.Forward(x, ctx);
        var dx = model.Backward(r).ToArray();
        var grads = (float[])model.Store.Grads.Clone();

        double Objective()
        {
            var y = model.Forward(x, ctx).Span;
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += (double)r[i] * y[i];
            return s;
        }

        var failures = new List<string>();
        if (o.CheckInput)
            Compare("input", x.Buffer, 0, x.Length, dx, 0, Objective, o, rng, failures);
        foreach (var p in model.Parameters())
            Compare(p.Name, model.Store.Values, p.Offset, p.Length, grads, p.Offset, Objective, o, rng, failures);
        Assert.True(failures.Count == 0, $"{model}: gradient mismatches ({failures.Count}):\n" + string.Join("\n", failures.Take(12)));
    }

    /// <summary>Checks a loss: dOutput against the numeric derivative of scale · Σ_i loss_i.</summary>
    public static void Loss(Loss loss, Tensor output, int[] labels, Tensor? targets, float scale = 0.37f, double rtol = 1e-2, double atol = 1e-3, float h = 1e-2f)
    {
        var d = new Tensor(output.Shape);
        loss.Compute(output, labels, targets, d, scale);
        var analytic = d.ToArray();
        var scratch = new Tensor(output.Shape);
        double F() => scale * loss.Compute(output, labels, targets, scratch, scale);
        var failures = new List<string>();
        Compare("output", output.Buffer, output.Offset, output.Length, analytic, 0, F,
            new Options(rtol, atol, h, int.MaxValue), new Random(1), failures);
        Assert.True(failures.Count == 0, $"{loss}: gradient mismatches:\n" + string.Join("\n", failures.Take(12)));
    }

    private static void Compare(string what, float[] values, int offset, int length, float[] analytic, int aOffset,
        Func<double> objective, Options o, Random rng, List<string> failures)
    {
        IEnumerable<int> idx = length <= o.MaxChecks ? Enumerable.Range(0, length)
            : Enumerable.Range(0, o.MaxChecks).Select(_ => rng.Next(length)).Distinct().ToList();
        int checkedCount = 0, kinks = 0;
        foreach (var i in idx)
        {
            double num = Numeric(values, offset + i, o.H, objective), a = analytic[aOffset + i];
            if (Close(a, num, o)) { checkedCount++; continue; }
            // A kink (ReLU, max) inside [v−h, v+h] makes the central difference wrong there; it shows as
            // the estimate changing with the step. A smooth point agrees at h and h/2 to O(h²).
            // One-sided differences also disagree when the kink sits right at v.
            double half = Numeric(values, offset + i, o.H / 2, objective);
            double fwd = OneSided(values, offset + i, o.H, objective), bwd = OneSided(values, offset + i, -o.H, objective);
            if (!Close(half, num, o) || !Close(fwd, bwd, o)) { kinks++; continue; }
            checkedCount++;
            failures.Add($"  {what}[{i}]: analytic {a:G6}, numeric {num:G6}");
        }
        if (kinks > Math.Max(1, (int)((checkedCount + kinks) * o.MaxKinkFraction)))
            failures.Add($"  {what}: {kinks} of {checkedCount + kinks} checks sat on a kink; too few smooth points to judge.");
    }

    private static double OneSided(float[] values, int at, float h, Func<double> objective)
    {
        float v = values[at];
        double l0 = objective();
        values[at] = v + h; double l1 = objective();
        values[at] = v;
        return (l1 - l0) / ((double)(v + h) - v);
    }

    private static bool Close(double a, double b, Options o) => Math.Abs(a - b) <= o.Atol + o.Rtol * Math.Max(Math.Abs(a), Math.Abs(b));

    private static double Numeric(float[] values, int at, float h, Func<double> objective)
    {
        float v = values[at];
        values[at] = v + h; double lp = objective();
        values[at] = v - h; double lm = objective();
        values[at] = v;
        // The step actually taken in float (v ± h is rounded), not the nominal 2h.
        return (lp - lm) / ((double)(v + h) - (double)(v - h));
    }

    public static Tensor Fill(Tensor t, Random rng, Func<Random, float>? sample)
    {
        var s = t.Span;
        for (int i = 0; i < s.Length; i++) s[i] = sample?.Invoke(rng) ?? (float)(rng.NextDouble() * 2 - 1);
        return t;
    }
}

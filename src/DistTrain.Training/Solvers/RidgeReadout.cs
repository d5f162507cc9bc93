// A linear readout fitted in closed form (ridge regression), as an echo state network trains: the model's last layer
// is a Dense whose input features φ (the reservoir states, with a 1 for the bias) are fixed. Each micro-batch gives
// its sufficient statistics A_m = Σ φφᵀ and B_m = Σ φyᵀ in double; they are summed in micro-batch order (what a
// cluster's shards would sum) and (A + λI)·W = B is solved once by Cholesky. Steps inside an ESN's washout are left
// out of the fit and of the error measure. Letters: P features (+1 for the bias), O outputs, T steps.
using DistTrain.Nn;
using DistTrain.Data;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;

namespace DistTrain.Training.Solvers;

public sealed record RidgeFit(long Rows, double TrainNrmse);

public static class RidgeReadout
{
    /// <summary>Fits the last Dense of <paramref name="model"/> on <paramref name="data"/> (targets: the dataset's, or
    /// the input itself), micro-batches of <paramref name="microBatch"/> samples in index order, penalty λ = <paramref name="ridge"/>.</summary>
    public static RidgeFit Fit(Sequential model, Dataset data, double ridge, int microBatch = 32)
    {
        var readout = Readout(model);
        if (!(ridge >= 0) || !double.IsFinite(ridge)) throw new ArgumentException($"Ridge penalty must be a finite number ≥ 0, not {ridge}.", nameof(ridge));
        if (microBatch < 1) throw new ArgumentException($"Micro-batch must be at least 1, not {microBatch}.", nameof(microBatch));
        int inF = readout.Weight.Shape[1], o = readout.Weight.Shape[0], p = inF + 1;
        var a = new double[p * p];
        var b = new double[p * o];
        var am = new double[p * p];
        var bm = new double[p * o];
        long rows = 0;
        var idx = new int[microBatch];
        for (int start = 0; start < data.Count; start += microBatch)
        {
            int count = Math.Min(microBatch, data.Count - start);
            for (int i = 0; i < count; i++) idx[i] = start + i;
            Array.Clear(am); Array.Clear(bm);
            rows += Statistics(model, data, idx.AsSpan(0, count), am, bm, p, o);
            for (int i = 0; i < a.Length; i++) a[i] += am[i];
            for (int i = 0; i < b.Length; i++) b[i] += bm[i];
        }
        for (int i = 0; i < p; i++)
            for (int j = 0; j < i; j++) a[i * p + j] = a[j * p + i];   // Statistics fills the upper triangle
        for (int i = 0; i < p; i++) a[i * p + i] += ridge;
        var w = SolveCholesky(a, b, p, o);
        // W (P,O): rows 0..inF−1 are the Dense weight transposed, row inF its bias.
        var wt = readout.Weight.Value.Span;
        for (int k = 0; k < o; k++)
            for (int j = 0; j < inF; j++) wt[k * inF + j] = (float)w[j * o + k];
        if (readout.Bias is { } bias)
            for (int k = 0; k < o; k++) bias.Value[k] = (float)w[inF * o + k];
        return new RidgeFit(rows, Nrmse(model, data));
    }

    private static Dense Readout(Sequential model) =>
        model.Layers[^1] as Dense ?? throw new ArgumentException($"A ridge readout fits the model's last layer, which must be a dense layer, not {model.Layers[^1]}.");

    private static int Washout(Sequential model) => model.Layers.OfType<EchoStateReservoir>().Select(r => r.Washout).FirstOrDefault();

    /// <summary>Upper triangle of Σ φφᵀ and all of Σ φyᵀ over the micro-batch's rows past the washout; returns the row count.</summary>
    private static long Statistics(Sequential model, Dataset data, ReadOnlySpan<int> indices, double[] a, double[] b, int p, int o)
    {
        var (features, targets) = Features(model, data, indices);
        int inF = p - 1, washout = Washout(model);
        int steps = features.Length / (indices.Length * inF);
        var phi = new double[p];
        long rows = 0;
        for (int s = 0; s < indices.Length; s++)
            for (int t = washout; t < steps; t++)
            {
                int r = s * steps + t;
                for (int j = 0; j < inF; j++) phi[j] = features[r * inF + j];
                phi[inF] = 1;
                for (int i = 0; i < p; i++)
                {
                    double pi = phi[i];
                    for (int j = i; j < p; j++) a[i * p + j] += pi * phi[j];
                    for (int k = 0; k < o; k++) b[i * o + k] += pi * targets[r * o + k];
                }
                rows++;
            }
        return rows;
    }

    /// <summary>The readout's input features (every layer but the last, eval mode) and the targets, row-major per step.</summary>
    public static (float[] Features, float[] Targets) Features(Sequential model, Dataset data, ReadOnlySpan<int> indices)
    {
        var x = new Tensor([indices.Length, .. model.InputShape]);
        var labels = new int[indices.Length];
        data.Gather(indices, x, labels);
        var h = x;
        for (int i = 0; i < model.Layers.Count - 1; i++) h = model.Layers[i].Forward(h, StepContext.Eval);
        int per = data.Targets is null ? data.SampleLength : data.Targets.Length / data.Count;
        var targets = new float[indices.Length * per];
        for (int i = 0; i < indices.Length; i++)
            (data.Targets ?? data.Features).AsSpan(indices[i] * per, per).CopyTo(targets.AsSpan(i * per, per));
        return (h.ToArray(), targets);
    }

    /// <summary>Solves S·X = R for symmetric positive definite S (P,P) and R (P,O) by Cholesky S = LLᵀ, in double.</summary>
    public static double[] SolveCholesky(double[] s, double[] r, int p, int o)
    {
        var l = new double[p * p];
        for (int i = 0; i < p; i++)
            for (int j = 0; j <= i; j++)
            {
                double sum = s[i * p + j];
                for (int k = 0; k < j; k++) sum -= l[i * p + k] * l[j * p + k];
                if (i == j)
                {
                    if (!(sum > 0))
                        throw new InvalidOperationException($"The ridge system is singular at feature {i} (pivot {sum:G3}); raise the penalty (--weight-decay) above 0.");
                    l[i * p + i] = Math.Sqrt(sum);
                }
                else l[i * p + j] = sum / l[j * p + j];
            }
        var x = (double[])r.Clone();
        for (int k = 0; k < o; k++)
        {
            for (int i = 0; i < p; i++)   // L·z = r
            {
                double sum = x[i * o + k];
                for (int j = 0; j < i; j++) sum -= l[i * p + j] * x[j * o + k];
                x[i * o + k] = sum / l[i * p + i];
            }
            for (int i = p - 1; i >= 0; i--)   // Lᵀ·x = z
            {
                double sum = x[i * o + k];
                for (int j = i + 1; j < p; j++) sum -= l[j * p + i] * x[j * o + k];
                x[i * o + k] = sum / l[i * p + i];
            }
        }
        return x;
    }

    /// <summary>One-step normalised root-mean-square error over every step past the washout:
    /// √(mean (y − t)²) / std(t), with the model's full forward in eval mode.</summary>
    public static double Nrmse(Sequential model, Dataset data, int batch = 32)
    {
        int washout = Washout(model);
        double se = 0, sum = 0, sumSq = 0;
        long n = 0;
        var idx = new int[batch];
        int o = model.OutputShape[^1];
        for (int start = 0; start < data.Count; start += batch)
        {
            int count = Math.Min(batch, data.Count - start);
            for (int i = 0; i < count; i++) idx[i] = start + i;
            var (_, targets) = Features(model, data, idx.AsSpan(0, count));
            var x = new Tensor([count, .. model.InputShape]);
            data.Gather(idx.AsSpan(0, count), x, new int[count]);
            var y = model.Forward(x, StepContext.Eval).Span;
            int steps = y.Length / (count * o);
            for (int s = 0; s < count; s++)
                for (int t = washout; t < steps; t++)
                    for (int k = 0; k < o; k++)
                    {
                        int i = (s * steps + t) * o + k;
                        double e = y[i] - targets[i];
                        se += e * e; sum += targets[i]; sumSq += (double)targets[i] * targets[i]; n++;
                    }
        }
        double mean = sum / n, variance = sumSq / n - mean * mean;
        return Math.Sqrt(se / n) / Math.Sqrt(variance);
    }

    /// <summary>The persistence baseline's one-step NRMSE on the same steps: predict the next value as the current
    /// input (for a model with one input and one output per step).</summary>
    public static double PersistenceNrmse(Sequential model, Dataset data)
    {
        if (data.Targets is null || data.Targets.Length != data.Features.Length)
            throw new ArgumentException($"Dataset {data.Name}: persistence needs one target per input value.", nameof(data));
        int washout = Washout(model), steps = data.SampleLength;
        double se = 0, sum = 0, sumSq = 0;
        long n = 0;
        for (int s = 0; s < data.Count; s++)
            for (int t = washout; t < steps; t++)
            {
                int i = s * steps + t;
                double y = data.Targets[i], e = data.Features[i] - y;
                se += e * e; sum += y; sumSq += y * y; n++;
            }
        double mean = sum / n;
        return Math.Sqrt(se / n) / Math.Sqrt(sumSq / n - mean * mean);
    }
}

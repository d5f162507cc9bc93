// Feature normalization fitted on the training set and applied unchanged to the test set:
// per feature (each element of a sample, for tabular data) or one global mean/std (for images).
namespace DistTrain.Data;

public sealed class Normalization
{
    Normalization(float[] mean, float[] std, bool global) { Mean = mean; Std = std; Global = global; }

    /// <summary>One value per feature, or a single value when <see cref="Global"/>.</summary>
    public float[] Mean { get; }
    /// <summary>Population std; a constant feature gets std 1 so it maps to 0, not to NaN.</summary>
    public float[] Std { get; }
    public bool Global { get; }

    /// <summary>Mean and std of every feature position over the samples of <paramref name="train"/>.</summary>
    public static Normalization FitPerFeature(Dataset train)
    {
        int f = train.SampleLength, n = train.Count;
        var sum = new double[f];
        var x = train.Features;
        for (int s = 0; s < n; s++)
            for (int j = 0; j < f; j++) sum[j] += x[s * f + j];
        var mean = new double[f];
        for (int j = 0; j < f; j++) mean[j] = sum[j] / n;
        var sq = new double[f];
        for (int s = 0; s < n; s++)
            for (int j = 0; j < f; j++) { double d = x[s * f + j] - mean[j]; sq[j] += d * d; }
        var m = new float[f]; var sd = new float[f];
        for (int j = 0; j < f; j++) { m[j] = (float)mean[j]; sd[j] = StdOrOne(sq[j] / n); }
        return new Normalization(m, sd, global: false);
    }

    /// <summary>One mean and std over every value of <paramref name="train"/> (e.g. all pixels).</summary>
    public static Normalization FitGlobal(Dataset train)
    {
        var x = train.Features;
        double sum = 0;
        foreach (var v in x) sum += v;
        double mean = sum / x.Length, sq = 0;
        foreach (var v in x) { double d = v - mean; sq += d * d; }
        return new Normalization([(float)mean], [StdOrOne(sq / x.Length)], global: true);
    }

    /// <summary>A given normalization (e.g. restored from a checkpoint's metadata).</summary>
    public static Normalization From(float[] mean, float[] std)
    {
        if (mean.Length != std.Length || mean.Length == 0)
            throw new ArgumentException($"Normalization needs as many stds ({std.Length}) as means ({mean.Length}), at least one.", nameof(std));
        foreach (var s in std)
            if (!(s > 0) || !float.IsFinite(s)) throw new ArgumentException($"Normalization std {s} must be positive and finite.", nameof(std));
        return new Normalization((float[])mean.Clone(), (float[])std.Clone(), mean.Length == 1);
    }

    /// <summary>A new dataset (same labels, new feature array) with x' = (x − mean) / std.</summary>
    public Dataset Apply(Dataset data)
    {
        var copy = (float[])data.Features.Clone();
        Transform(copy, data);
        return new Dataset(data.Name, data.SampleShape, copy, data.Labels, data.Classes, data.Targets);
    }

    /// <summary>Normalizes <paramref name="data"/>'s feature array in place (saves a copy of a large set).</summary>
    public void ApplyInPlace(Dataset data) => Transform(data.Features, data);

    void Transform(float[] x, Dataset data)
    {
        if (Global)
        {
            float m = Mean[0], sd = Std[0];
            for (int i = 0; i < x.Length; i++) x[i] = (x[i] - m) / sd;
            return;
        }
        int f = data.SampleLength;
        if (f != Mean.Length)
            throw new ArgumentException($"Normalization fitted on {Mean.Length} features cannot apply to {data.Name} with {f} features per sample.", nameof(data));
        for (int s = 0; s < data.Count; s++)
            for (int j = 0; j < f; j++) x[s * f + j] = (x[s * f + j] - Mean[j]) / Std[j];
    }

    static float StdOrOne(double variance)
    {
        var s = (float)Math.Sqrt(variance);
        return s > 1e-12f ? s : 1f;
    }
}

// Order statistics of a benchmark's repetitions (the bench commands report medians and quartiles).
namespace DistTrain.Cli.Bench;

public static class Stats
{
    /// <summary>The median (the mean of the two middle values for an even count); NaN when there are none.</summary>
    public static double Median(IEnumerable<double> values) => Quantile(values, 0.5);

    /// <summary>The <paramref name="q"/> quantile, linear between the two nearest ranks; NaN when there are none.</summary>
    public static double Quantile(IEnumerable<double> values, double q)
    {
        var s = values.Order().ToArray();
        if (s.Length == 0) return double.NaN;
        double pos = q * (s.Length - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, s.Length - 1);
        return s[lo] + (pos - lo) * (s[hi] - s[lo]);
    }
}

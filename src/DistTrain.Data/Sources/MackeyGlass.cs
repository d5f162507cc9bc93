// The Mackey–Glass series dx/dt = β·x(t−τ)/(1 + x(t−τ)ⁿ) − γ·x(t) with β = 0.2, γ = 0.1, n = 10 and τ = 17 (chaotic),
// integrated by Euler in double with dt = 0.1 and sampled every time unit, from a history drawn from the seed
// (x = 1.2 ± 0.1 over the first τ), after a transient of 1,000 units is dropped. As a dataset it is cut into
// non-overlapping windows: a sample is Window values (shape (Window, 1)), its targets the same values one step later
// (one-step-ahead prediction); train and test of one seed are independent series.
using DistTrain.Data.Plans;

namespace DistTrain.Data.Sources;

public static class MackeyGlass
{
    public const double Beta = 0.2, Gamma = 0.1, Power = 10, Dt = 0.1;
    public const int Tau = 17, Transient = 1000;
    /// <summary>Time steps per sample window.</summary>
    public const int Window = 400;
    const ulong Domain = 0x4D41434B45594700;

    /// <summary>The series sampled at integer times: <paramref name="length"/> values.</summary>
    public static double[] Series(int length, int seed, DataSplit split = DataSplit.Train, int tau = Tau)
    {
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length), length, "The Mackey–Glass series needs at least one value.");
        int perUnit = (int)Math.Round(1 / Dt), lag = tau * perUnit, steps = (Transient + length) * perUnit;
        var rng = Xoshiro256.ForKey(Domain, unchecked((ulong)seed), (ulong)split);
        var x = new double[lag + steps + 1];
        for (int i = 0; i <= lag; i++) x[i] = 1.2 + rng.NextDouble(-0.1, 0.1);
        for (int i = lag; i < lag + steps; i++)
        {
            double d = x[i - lag];
            x[i + 1] = x[i] + Dt * (Beta * d / (1 + Math.Pow(d, Power)) - Gamma * x[i]);
        }
        var y = new double[length];
        for (int t = 0; t < length; t++) y[t] = x[lag + (Transient + t) * perUnit];
        return y;
    }

    /// <summary><paramref name="windows"/> samples of shape (Window, 1) with one-step-ahead targets, label 0.</summary>
    public static Dataset Create(int windows, int seed, DataSplit split = DataSplit.Train)
    {
        var s = Series(windows * Window + 1, seed, split);
        var features = new float[windows * Window];
        var targets = new float[windows * Window];
        for (int i = 0; i < features.Length; i++) { features[i] = (float)s[i]; targets[i] = (float)s[i + 1]; }
        return new Dataset($"mackey-glass(tau={Tau},windows={windows},seed={seed})", [Window, 1], features, new int[windows], 0, targets);
    }
}

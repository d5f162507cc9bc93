// Synthetic 2-D classification sets from a seed: quadrants (4 classes), two spirals, XOR and a linearly
// separable set (2 classes),
// sample shape (2), labels exact by construction; train and test of one seed are independent draws.
using DistTrain.Data.Plans;

namespace DistTrain.Data.Sources;

public static class Synthetic
{
    public static readonly IReadOnlyList<string> Names = ["quadrants", "spirals", "xor", "separable", "mackey-glass"];

    // Distinct stream domains so the sets never share random draws for the same seed.
    const ulong QuadrantsDomain = 0x5155414452414E54, SpiralsDomain = 0x53504952414C5300, XorDomain = 0x584F520000000000,
        SeparableDomain = 0x5345504152414200;

    /// <summary>The separating line of <see cref="Separable"/>: label 1 where a·x + b·y + c &gt; 0; (a, b) is a unit vector,
    /// so |a·x + b·y + c| is a point's distance to the line.</summary>
    public const double SeparatorA = 0.6, SeparatorB = 0.8, SeparatorC = 0.1;

    /// <summary>Points uniform in [-1,1]², label = quadrant counter-clockwise from (+,+):
    /// 0 = (x&gt;0, y&gt;0), 1 = (x&lt;0, y&gt;0), 2 = (x&lt;0, y&lt;0), 3 = (x&gt;0, y&lt;0); a zero
    /// coordinate counts as positive. With margin &gt; 0, points closer than that to an axis are redrawn.</summary>
    public static Dataset Quadrants(int count, int seed, float margin = 0f, DataSplit split = DataSplit.Train)
    {
        var (x, rng) = Start(count, margin, QuadrantsDomain, seed, split, "quadrants");
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            var (px, py) = Point(ref rng, margin);
            x[2 * i] = px; x[2 * i + 1] = py;
            labels[i] = py >= 0 ? (px >= 0 ? 0 : 1) : (px < 0 ? 2 : 3);
        }
        return new Dataset($"quadrants(n={count},seed={seed})", [2], x, labels, 4);
    }

    /// <summary>Points uniform in [-1,1]², label 1 when x and y have different signs, else 0.</summary>
    public static Dataset Xor(int count, int seed, float margin = 0f, DataSplit split = DataSplit.Train)
    {
        var (x, rng) = Start(count, margin, XorDomain, seed, split, "xor");
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            var (px, py) = Point(ref rng, margin);
            x[2 * i] = px; x[2 * i + 1] = py;
            labels[i] = (px >= 0) != (py >= 0) ? 1 : 0;
        }
        return new Dataset($"xor(n={count},seed={seed})", [2], x, labels, 2);
    }

    /// <summary>Points uniform in [-1,1]², label 1 on the positive side of the line 0.6x + 0.8y + 0.1 = 0, else 0
    /// (linearly separable: the perceptron's set). With margin &gt; 0, points closer than that to the line are redrawn,
    /// so the set has at least that geometric margin.</summary>
    public static Dataset Separable(int count, int seed, float margin = 0f, DataSplit split = DataSplit.Train)
    {
        var (x, rng) = Start(count, margin, SeparableDomain, seed, split, "separable");
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            float px, py;
            double d;
            do
            {
                px = (float)rng.NextDouble(-1, 1); py = (float)rng.NextDouble(-1, 1);
                d = SeparatorA * px + SeparatorB * py + SeparatorC;
            } while (Math.Abs(d) < margin || d == 0);
            x[2 * i] = px; x[2 * i + 1] = py;
            labels[i] = d > 0 ? 1 : 0;
        }
        return new Dataset($"separable(n={count},seed={seed})", [2], x, labels, 2);
    }

    /// <summary>Two interleaved spiral arms: arm c holds (-1)^c · r(t)·(cos 2π·turns·t, sin 2π·turns·t)
    /// with t uniform in [0,1), r = 0.1 + 0.9t, plus Gaussian noise of std <paramref name="noise"/>.
    /// Even sample indices are arm 0, odd ones arm 1 (balanced; the epoch plan shuffles).
    /// Uses Math.Sin/Cos: identical on machines with the same C runtime; check Fingerprint() across nodes.</summary>
    public static Dataset TwoSpirals(int count, int seed, float noise = 0f, double turns = 1.5, DataSplit split = DataSplit.Train)
    {
        if (noise < 0 || !float.IsFinite(noise)) throw new ArgumentOutOfRangeException(nameof(noise), noise, "Spiral noise must be a finite non-negative std.");
        if (!(turns > 0)) throw new ArgumentOutOfRangeException(nameof(turns), turns, "Spiral turns must be positive.");
        var (x, rng) = Start(count, 0f, SpiralsDomain, seed, split, "spirals");
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            double t = rng.NextDouble(), r = 0.1 + 0.9 * t, a = 2 * Math.PI * turns * t;
            int arm = i & 1;
            double sign = arm == 0 ? 1 : -1;
            double px = sign * r * Math.Cos(a), py = sign * r * Math.Sin(a);
            if (noise > 0) { px += noise * rng.NextGaussian(); py += noise * rng.NextGaussian(); }
            x[2 * i] = (float)px; x[2 * i + 1] = (float)py;
            labels[i] = arm;
        }
        return new Dataset($"spirals(n={count},seed={seed})", [2], x, labels, 2);
    }

    /// <summary>One of <see cref="Names"/> by name ("two-spirals" also accepted); margin applies to
    /// quadrants, xor and separable, noise to spirals.</summary>
    public static Dataset Create(string name, int count, int seed, float margin = 0f, float noise = 0f, DataSplit split = DataSplit.Train) => name.ToLowerInvariant() switch
    {
        "quadrants" => Quadrants(count, seed, margin, split),
        "xor" => Xor(count, seed, margin, split),
        "separable" => Separable(count, seed, margin, split),
        "mackey-glass" => MackeyGlass.Create(count, seed, split),
        "spirals" or "two-spirals" => TwoSpirals(count, seed, noise, split: split),
        _ => throw new ArgumentException($"Unknown synthetic dataset '{name}'. Valid names: {string.Join(", ", Names)}.", nameof(name)),
    };

    static (float[] X, Xoshiro256 Rng) Start(int count, float margin, ulong domain, int seed, DataSplit split, string what)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"A {what} set needs at least one sample.");
        if (!(margin >= 0 && margin < 1)) throw new ArgumentOutOfRangeException(nameof(margin), margin, "The margin must lie in [0, 1).");
        return (new float[2 * count], Xoshiro256.ForKey(domain, unchecked((ulong)seed), (ulong)split));
    }

    static (float X, float Y) Point(ref Xoshiro256 rng, float margin)
    {
        while (true)
        {
            float px = (float)rng.NextDouble(-1, 1), py = (float)rng.NextDouble(-1, 1);
            if (MathF.Abs(px) >= margin && MathF.Abs(py) >= margin) return (px, py);
        }
    }
}

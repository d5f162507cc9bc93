// A deterministic random generator, xoshiro256** seeded through SplitMix64 (Blackman & Vigna's
// reference algorithms). Ours, not System.Random, so epoch plans and synthetic sets stay
// bit-identical across .NET versions and machines: only integer arithmetic, no libm.
namespace DistTrain.Data.Plans;

public struct Xoshiro256
{
    ulong _s0, _s1, _s2, _s3;

    /// <summary>Seeds the four state words with SplitMix64 outputs from <paramref name="seed"/>.</summary>
    public Xoshiro256(ulong seed)
    {
        ulong sm = seed;
        _s0 = SplitMix64(ref sm); _s1 = SplitMix64(ref sm); _s2 = SplitMix64(ref sm); _s3 = SplitMix64(ref sm);
    }

    /// <summary>A stream keyed by several values (e.g. domain, seed, epoch): each key is hashed in
    /// turn, so (1,2) and (2,1) give unrelated streams.</summary>
    public static Xoshiro256 ForKey(ulong k0, ulong k1 = 0, ulong k2 = 0, ulong k3 = 0)
    {
        ulong h = Mix(k0);
        h = Mix(h ^ k1);
        h = Mix(h ^ k2);
        h = Mix(h ^ k3);
        return new Xoshiro256(h);
    }

    /// <summary>One SplitMix64 step: advances <paramref name="state"/> and returns its output.</summary>
    public static ulong SplitMix64(ref ulong state)
    {
        state += 0x9E3779B97F4A7C15UL;
        return Finalize(state);
    }

    /// <summary>SplitMix64 applied to a single value: a strong 64-bit hash.</summary>
    public static ulong Mix(ulong x) => Finalize(x + 0x9E3779B97F4A7C15UL);

    static ulong Finalize(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, bound), unbiased (Lemire's multiply-and-reject).</summary>
    public int NextInt(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound), bound, "The bound must be positive.");
        ulong b = (ulong)bound;
        ulong hi = Math.BigMul(NextUInt64(), b, out ulong lo);
        if (lo < b)
        {
            ulong threshold = (0UL - b) % b;
            while (lo < threshold) hi = Math.BigMul(NextUInt64(), b, out lo);
        }
        return (int)hi;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [lo, hi).</summary>
    public double NextDouble(double lo, double hi) => lo + (hi - lo) * NextDouble();

    /// <summary>Standard normal by Box–Muller (uses Math.Log/Sqrt/Cos, so bits may differ by an ulp
    /// across C runtimes; callers that need cross-machine identity round to float or avoid it).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]: log is finite
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Fisher–Yates shuffle of <paramref name="items"/> in place (from the top down).</summary>
    public void Shuffle(Span<int> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

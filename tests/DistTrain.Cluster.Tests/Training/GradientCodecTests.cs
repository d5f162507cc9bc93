// GradientCodec against naive references written another way: bf16 and fp16 by choosing the nearest representable value
// in double arithmetic (ties to the even code, IEEE overflow to infinity, fp16 subnormals from their definition), int8 from
// its per-block definition in double; frames cut anywhere decode to the whole vector's RoundTrip; NaN and ±∞ stay non-finite.
using System.Runtime.InteropServices;
using DistTrain.Training.Steps;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class GradientCodecTests
{
    // ---- references ----

    /// <summary>Nearest bf16 by comparing the two neighbours of x (truncated, and one code further from zero) in double.</summary>
    private static ushort Bf16Reference(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if (float.IsNaN(x)) return 0x7FC0;
        ushort down = (ushort)(bits >> 16), up = (ushort)(down + 1);
        if (float.IsInfinity(x)) return down;
        double vx = Math.Abs((double)x), vd = Math.Abs(Bf16Value(down)), vu = Math.Abs(Bf16Value(up));
        double dd = vx - vd, du = vu - vx;
        return dd < du ? down : du < dd ? up : (down & 1) == 0 ? down : up;
    }

    /// <summary>A bf16 code's value; the code past the largest finite one counts as 2^128 (IEEE rounds to infinity there).</summary>
    private static double Bf16Value(ushort b)
    {
        double sign = (b & 0x8000) != 0 ? -1 : 1;
        int e = (b >> 7) & 0xFF, m = b & 0x7F;
        if (e == 0xFF) return sign * Math.Pow(2, 128);
        return e == 0 ? sign * m * Math.Pow(2, -133) : sign * (1 + m / 128.0) * Math.Pow(2, e - 127);
    }

    private static double Fp16Value(int code) // non-negative codes 0..0x7C00 (0x7C00 = the value infinity replaces: 2^16)
    {
        int e = code >> 10, m = code & 0x3FF;
        if (e == 31) return 65536.0;
        return e == 0 ? m * Math.Pow(2, -24) : (1 + m / 1024.0) * Math.Pow(2, e - 15);
    }

    /// <summary>Nearest fp16 by a search over every non-negative code's value in double; ties to the even code.</summary>
    private static ushort Fp16Reference(float x)
    {
        if (float.IsNaN(x)) return 0x7E00;
        ushort sign = (ushort)(BitConverter.SingleToUInt32Bits(x) >> 31 << 15);
        double a = Math.Abs((double)x);
        if (a >= 65536.0) return (ushort)(sign | 0x7C00);
        int lo = 0, hi = 0x7C00; // Fp16Value(lo) ≤ a < Fp16Value(hi)
        while (hi - lo > 1)
        {
            int mid = (lo + hi) / 2;
            if (Fp16Value(mid) <= a) lo = mid; else hi = mid;
        }
        double dl = a - Fp16Value(lo), dh = Fp16Value(hi) - a;
        int code = dl < dh ? lo : dh < dl ? hi : (lo & 1) == 0 ? lo : hi;
        return (ushort)(sign | code);
    }

    /// <summary>Int8 from the definition, in double: per block s = max|x| / 127, q = round-half-even(x / s) clamped to ±127,
    /// x' = q·s, every operation rounded to float where the codec's is (a float quotient or product of floats computed
    /// in double and rounded once is the correctly rounded float one).</summary>
    private static float[] Int8Reference(float[] x)
    {
        var y = new float[x.Length];
        for (int b = 0; b < x.Length; b += GradientCodec.Int8Block)
        {
            int end = Math.Min(x.Length, b + GradientCodec.Int8Block);
            double m = 0;
            bool finite = true;
            for (int i = b; i < end; i++) { finite &= double.IsFinite(x[i]); m = Math.Max(m, Math.Abs((double)x[i])); }
            float s = finite ? (float)(m / 127.0) : float.NaN;
            for (int i = b; i < end; i++)
            {
                if (float.IsNaN(s)) { y[i] = float.NaN; continue; }
                double q = s == 0 ? 0 : Math.Clamp(Math.Round((double)(float)(x[i] / (double)s), MidpointRounding.ToEven), -127, 127);
                y[i] = (float)(q * s);
            }
        }
        return y;
    }

    // ---- inputs ----

    private static float[] Specials() =>
    [
        0f, -0f, 1f, -1f, float.Epsilon, -float.Epsilon, float.MaxValue, -float.MaxValue, float.MinValue, 1e-40f, -3e-39f,
        65504f, 65519.996f, 65520f, -65520f, 65536f, 6.1035156e-05f, 6.097555e-05f, 5.9604645e-08f, 2.9802322e-08f,
        2.9802326e-08f, 8.940697e-08f, 3.3895314e38f, 3.3961776e38f, 3.3961775e38f, 1.00390625f, 1.01171875f, 1.0078125f,
        float.PositiveInfinity, float.NegativeInfinity,
    ];

    /// <summary>Random bit patterns (every exponent, NaNs included) and values spread over the gradients' decades.</summary>
    private static IEnumerable<float> Sweep(int seed, int n)
    {
        var rng = new Random(seed);
        for (int i = 0; i < n; i++)
        {
            yield return BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32));
            yield return (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-30, 18)));
        }
        // Every fp16 halfway point and neighbour, subnormal and normal, so ties and the subnormal range are all checked.
        for (int code = 0; code < 0x7C00; code++)
        {
            double mid = (Fp16Value(code) + Fp16Value(code + 1)) / 2;
            yield return (float)mid;
            yield return -(float)mid;
            yield return MathF.BitIncrement((float)mid);
            yield return MathF.BitDecrement((float)mid);
        }
        // bf16 halfway points: the low 16 bits exactly 0x8000, with odd and even kept codes.
        for (int i = 0; i < 2000; i++)
        {
            uint hiBits = (uint)rng.Next(0, 0x10000);
            yield return BitConverter.UInt32BitsToSingle(hiBits << 16 | 0x8000);
        }
    }

    private static IEnumerable<float> AllInputs() => Specials().Concat(Sweep(3, 100_000));

    // ---- one value ----

    [Fact]
    public void Bf16RoundsToNearestEvenLikeTheReference()
    {
        foreach (var x in AllInputs())
        {
            ushort got = GradientCodec.ToBf16(x);
            if (float.IsNaN(x)) { Assert.True(float.IsNaN(GradientCodec.FromBf16(got)), $"NaN {BitConverter.SingleToUInt32Bits(x):X8} must stay NaN"); continue; }
            Assert.True(Bf16Reference(x) == got, $"bf16({x:R} = {BitConverter.SingleToUInt32Bits(x):X8}): {got:X4}, reference {Bf16Reference(x):X4}");
            Assert.Equal(BitConverter.UInt32BitsToSingle((uint)got << 16), GradientCodec.FromBf16(got));
        }
    }

    [Fact]
    public void Fp16RoundsToNearestEvenWithSubnormalsAndOverflowLikeTheReference()
    {
        foreach (var x in AllInputs())
        {
            ushort got = GradientCodec.ToFp16(x);
            if (float.IsNaN(x)) { Assert.True(float.IsNaN(GradientCodec.FromFp16(got))); continue; }
            Assert.True(Fp16Reference(x) == got, $"fp16({x:R} = {BitConverter.SingleToUInt32Bits(x):X8}): {got:X4}, reference {Fp16Reference(x):X4}");
        }
        // Decoding: every code back to its exact value (the reference's formula), infinities and the sign of zero.
        for (int code = 0; code < 0x7C00; code++)
        {
            Assert.Equal(Fp16Value(code), (double)GradientCodec.FromFp16((ushort)code));
            Assert.Equal(-Fp16Value(code), (double)GradientCodec.FromFp16((ushort)(code | 0x8000)));
        }
        Assert.Equal(float.PositiveInfinity, GradientCodec.FromFp16(GradientCodec.ToFp16(65520f)));
        Assert.Equal(65504f, GradientCodec.FromFp16(GradientCodec.ToFp16(65519.996f)));
        Assert.Equal(0x8000, GradientCodec.ToFp16(-1e-9f)); // underflow keeps the sign
        Assert.Equal(1, GradientCodec.ToFp16(2.9802326e-08f)); // just above half the smallest subnormal rounds up to it
        Assert.Equal(0, GradientCodec.ToFp16(2.9802322e-08f)); // exactly half: to even, zero
    }

    [Theory]
    [InlineData(1, 1000)]
    [InlineData(2, 256)]
    [InlineData(3, 4099)]
    public void Int8MatchesItsPerBlockDefinition(int seed, int n)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-9, 3)));
        // A block of zeros, a block of one outlier, a block of subnormals, and exact ties x/s = k + 0.5.
        if (n >= 1000)
        {
            Array.Clear(x, 256, 256);
            x[600] = 1e4f;
            for (int i = 768; i < 1000; i++) x[i] = (float)((i - 900) * 1e-41);
            x[100] = 127f; x[101] = 2.5f; x[102] = -3.5f; x[103] = 0.5f; // block 0's max is 127: s = 1, ties go to even
        }
        var y = x.ToArray();
        GradientCodec.RoundTrip(GradientCompression.Int8, y);
        var want = Int8Reference(x);
        for (int i = 0; i < n; i++) Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(y[i]) || want[i] == y[i],
            $"int8 at {i}: x {x[i]:R} -> {y[i]:R}, reference {want[i]:R}");
        if (n >= 1000)
        {
            Assert.Equal([2f, -4f, 0f], y[101..104]);
            Assert.All(y[256..512], v => Assert.Equal(0f, v));
        }
        // Error bound: half a step of the block's scale.
        for (int i = 0; i < n; i++)
        {
            float s = GradientCodec.Int8Scale(x, i / GradientCodec.Int8Block);
            Assert.True(Math.Abs((double)y[i] - x[i]) <= s / 2 * (1 + 1e-6) + 1e-44, $"int8 at {i}: |{y[i]} - {x[i]}| > s/2 = {s / 2}");
        }
    }

    [Fact]
    public void NonFiniteValuesStayNonFiniteSoTheShardRefusesThem()
    {
        var x = new float[700];
        for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i) * 1e-3f;
        x[10] = BitConverter.UInt32BitsToSingle(0x7F800001); // a NaN whose payload is only in the low bits: truncation would make it ∞
        x[300] = float.PositiveInfinity;
        foreach (var c in new[] { GradientCompression.Bf16, GradientCompression.Fp16, GradientCompression.Int8 })
        {
            var y = x.ToArray();
            GradientCodec.RoundTrip(c, y);
            Assert.True(float.IsNaN(y[10]), $"{c}: NaN became {y[10]}");
            Assert.False(float.IsFinite(y[300]), $"{c}: ∞ became {y[300]}");
            if (c == GradientCompression.Int8)
            {
                // The whole block of a non-finite value is NaN; the third block is untouched by it.
                Assert.All(y[..256], v => Assert.True(float.IsNaN(v)));
                Assert.All(y[256..512], v => Assert.True(float.IsNaN(v)));
                Assert.All(y[512..], v => Assert.True(float.IsFinite(v)));
            }
            else Assert.Equal(x.Length - 2, y.Count(float.IsFinite));
        }
    }

    // ---- frames ----

    [Theory]
    [InlineData(GradientCompression.None)]
    [InlineData(GradientCompression.Bf16)]
    [InlineData(GradientCompression.Fp16)]
    [InlineData(GradientCompression.Int8)]
    [InlineData(GradientCompression.TopK)]
    public void FramesCutAnywhereDecodeToTheWholeVectorsRoundTrip(GradientCompression c)
    {
        var rng = new Random(7);
        var x = new float[3000];
        for (int i = 0; i < x.Length; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-7, 1)));
        var want = x.ToArray();
        GradientCodec.RoundTrip(c, want);
        var got = new float[x.Length];
        var buffer = new byte[4 * x.Length + 64];
        // Cuts inside blocks, on block boundaries, one value, empty frames and the whole vector.
        int[] cuts = [0, 0, 1, 17, 255, 256, 257, 700, 700, 1024, 2047, 2999, 3000];
        for (int f = 0; f + 1 < cuts.Length; f++)
        {
            int lo = cuts[f], n = cuts[f + 1] - lo;
            int bytes = GradientCodec.Encode(c, x, lo, n, buffer);
            long blocks = n == 0 ? 0 : (lo + n - 1) / 256 - lo / 256 + 1, topBlocks = n == 0 ? 0 : (lo + n - 1) / 1024 - lo / 1024 + 1;
            long expected = c switch
            {
                GradientCompression.None => 4L * n, GradientCompression.Int8 => n + 4 * blocks,
                GradientCompression.TopK => topBlocks * 10 * 6, _ => 2L * n,
            };
            Assert.Equal(expected, bytes);
            Assert.Equal(expected, GradientCodec.EncodedBytes(c, lo, n));
            GradientCodec.Decode(c, lo, buffer.AsSpan(0, bytes), got.AsSpan(lo, n));
        }
        Assert.Equal(MemoryMarshal.AsBytes(want.AsSpan()).ToArray(), MemoryMarshal.AsBytes(got.AsSpan()).ToArray());
        if (c != GradientCompression.None) Assert.NotEqual(x, want); // it did round
    }

    [Fact]
    public void ByteCountsAreAQuarterOrHalfOfFloat32()
    {
        const int n = 421_642; // the cnn preset
        Assert.Equal(2L * n, GradientCodec.EncodedBytes(GradientCompression.Bf16, 0, n));
        Assert.Equal(n + 4L * 1648, GradientCodec.EncodedBytes(GradientCompression.Int8, 0, n)); // ⌈421642 / 256⌉ = 1648 scales
        Assert.Equal(4L * n, GradientCodec.EncodedBytes(GradientCompression.None, 0, n));
        // A hostile header cannot make the count overflow or go negative.
        long hostile = GradientCodec.Int8Blocks(long.MaxValue, int.MaxValue);
        Assert.Equal((long.MaxValue % 256 + int.MaxValue - 1) / 256 + 1, hostile);
        Assert.Equal(int.MaxValue + 4 * hostile, GradientCodec.EncodedBytes(GradientCompression.Int8, long.MaxValue, int.MaxValue));
    }

    /// <summary>Top-k by sorting the whole block: rank |x| (non-finite first) descending, then index ascending.</summary>
    private static int[] TopKReference(float[] block) =>
        Enumerable.Range(0, block.Length).OrderByDescending(i => float.IsFinite(block[i]) ? Math.Abs((double)block[i]) : double.PositiveInfinity)
            .ThenBy(i => i).Take(GradientCodec.TopK).Order().ToArray();

    [Theory]
    [InlineData(1, 1024)]
    [InlineData(2, 3)]      // a short last block: all of it
    [InlineData(3, 1024)]   // with ties and non-finite values
    [InlineData(4, 700)]
    public void TopKKeepsTheLargestMagnitudesLikeSorting(int seed, int n)
    {
        var rng = new Random(seed);
        var block = new float[n];
        for (int i = 0; i < n; i++) block[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-6, 0)));
        if (seed == 3)
        {
            for (int i = 0; i < 40; i++) block[rng.Next(n)] = (i % 2 == 0 ? 1f : -1f); // 20+ ties at the top: lower indices win
            block[900] = float.NaN; block[5] = float.NegativeInfinity;
        }
        Span<int> kept = stackalloc int[GradientCodec.TopK];
        int count = GradientCodec.SelectTopK(block, kept);
        Assert.Equal(TopKReference(block), kept[..count].ToArray());
        var all = block.ToArray();
        GradientCodec.RoundTrip(GradientCompression.TopK, all);
        for (int i = 0; i < n; i++) Assert.Equal(kept[..count].Contains(i) ? block[i] : 0f, all[i]);
    }

    [Fact]
    public void ErrorFeedbackSendsTopKOfGradientPlusResidualAndKeepsTheRestExactly()
    {
        const int n = 2500; // two whole blocks and a short one
        var rng = new Random(9);
        var feedback = new ErrorFeedback(n);
        for (int step = 0; step < 30; step++)
        {
            var g = new float[n];
            for (int i = 0; i < n; i++) g[i] = (float)((rng.NextDouble() * 2 - 1) * 1e-3);
            var a = new float[n];
            for (int i = 0; i < n; i++) a[i] = g[i] + feedback.Residual[i];
            var sent = g.ToArray();
            // Streamed like a worker's backward: the last blocks first, then the rest.
            feedback.Apply(sent, 2048, n);
            feedback.Apply(sent, 0, 2048);
            var want = a.ToArray();
            GradientCodec.RoundTrip(GradientCompression.TopK, want);
            Assert.Equal(want, sent);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(a[i], sent[i] + feedback.Residual[i]); // nothing lost: one of the two is a, the other 0
            }
            Assert.True(sent.Count(v => v != 0) <= 3 * GradientCodec.TopK);
        }
        // The residual has grown past most single gradients: values wait and are then sent whole.
        Assert.Contains(feedback.Residual.ToArray(), r => Math.Abs(r) > 1e-3);
        Assert.Throws<ArgumentOutOfRangeException>(() => feedback.Apply(new float[n], 100, n));
    }

    [Theory]
    [InlineData("none", GradientCompression.None)]
    [InlineData("BF16", GradientCompression.Bf16)]
    [InlineData(" fp16", GradientCompression.Fp16)]
    [InlineData("int8", GradientCompression.Int8)]
    [InlineData("TopK", GradientCompression.TopK)]
    [InlineData(null, GradientCompression.None)]
    public void ParsesTheFiveNames(string? text, GradientCompression want) => Assert.Equal(want, GradientCodec.Parse(text));

    [Fact]
    public void AnUnknownNameIsRefusedByName()
    {
        var e = Assert.Throws<ArgumentException>(() => GradientCodec.Parse("int4"));
        Assert.Contains("--compression 'int4' is not known", e.Message);
        Assert.Contains("none, bf16, fp16, int8 or topk", e.Message);
    }
}

// Pins our RNG to the reference algorithms: SplitMix64 and xoshiro256** outputs computed by the
// authors' C code (compiled separately), so a change of algorithm or .NET version cannot slip by.
using DistTrain.Data.Plans;
using Xunit;

namespace DistTrain.Data.Tests;

public class RngTests
{
    [Fact]
    public void SplitMix64MatchesReferenceFromSeedZero()
    {
        ulong state = 0;
        Assert.Equal(0xE220A8397B1DCDAFUL, Xoshiro256.SplitMix64(ref state));
        Assert.Equal(0x6E789E6AA1B965F4UL, Xoshiro256.SplitMix64(ref state));
        Assert.Equal(0x06C45D188009454FUL, Xoshiro256.SplitMix64(ref state));
    }

    [Theory]
    [InlineData(0UL, 0x99EC5F36CB75F2B4UL, 0xBF6E1F784956452AUL, 0x1A5F849D4933E6E0UL)]
    [InlineData(12345UL, 0xBE6A36374160D49BUL, 0x214AAA0637A688C6UL, 0xF69D16DE9954D388UL)]
    public void Xoshiro256StarStarMatchesReferenceC(ulong seed, ulong a, ulong b, ulong c)
    {
        var r = new Xoshiro256(seed);
        Assert.Equal(a, r.NextUInt64());
        Assert.Equal(b, r.NextUInt64());
        Assert.Equal(c, r.NextUInt64());
    }

    [Fact]
    public void NextIntIsInRangeAndRoughlyUniform()
    {
        var r = new Xoshiro256(99);
        var counts = new int[7];
        for (int i = 0; i < 70_000; i++) counts[r.NextInt(7)]++;
        // Expected 10,000 each; 5 standard deviations ≈ 463.
        Assert.All(counts, n => Assert.InRange(n, 9_500, 10_500));
        Assert.Throws<ArgumentOutOfRangeException>(() => r.NextInt(0));
    }

    [Fact]
    public void NextDoubleIsInUnitInterval()
    {
        var r = new Xoshiro256(5);
        double sum = 0;
        for (int i = 0; i < 100_000; i++) { var d = r.NextDouble(); Assert.InRange(d, 0.0, 0.9999999999999999); sum += d; }
        Assert.InRange(sum / 100_000, 0.49, 0.51);
    }

    [Fact]
    public void KeysInDifferentOrderGiveDifferentStreams()
    {
        Assert.NotEqual(Xoshiro256.ForKey(1, 2).NextUInt64(), Xoshiro256.ForKey(2, 1).NextUInt64());
        Assert.Equal(Xoshiro256.ForKey(1, 2, 3).NextUInt64(), Xoshiro256.ForKey(1, 2, 3).NextUInt64());
    }
}

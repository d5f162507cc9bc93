// StepAggregator: in-order folding regardless of arrival order, drops counted, slots reused.
using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class StepAggregatorTests
{
    private static float[][] Gradients(int count, int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 2 - 1) * 1e3f).ToArray()).ToArray();
    }

    private static float[] InOrderSum(float[][] g)
    {
        var sum = (float[])g[0].Clone();
        for (int m = 1; m < g.Length; m++) for (int i = 0; i < sum.Length; i++) sum[i] += g[m][i];
        return sum;
    }

    [Theory]
    [InlineData(new[] { 0, 1, 2, 3, 4 })]
    [InlineData(new[] { 4, 3, 2, 1, 0 })]
    [InlineData(new[] { 2, 0, 4, 1, 3 })]
    public void SumIsBitIdenticalToInOrderSumWhateverTheArrivalOrder(int[] order)
    {
        var g = Gradients(5, 37, 1);
        var agg = new StepAggregator(37, 8);
        agg.Begin(7, 5);
        foreach (var m in order) Assert.Equal(GradientDrop.None, agg.Accept(7, m, g[m]));
        Assert.True(agg.IsComplete);
        var expected = InOrderSum(g);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), agg.Sum.ToArray().Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void ArrivalOrderWouldMatterForNaiveSummation()
    {
        // Guards the test above: with these magnitudes float addition is not associative, so a sum in
        // arrival order would differ in some bits.
        var g = Gradients(5, 37, 1);
        var reversed = (float[])g[4].Clone();
        for (int m = 3; m >= 0; m--) for (int i = 0; i < reversed.Length; i++) reversed[i] += g[m][i];
        Assert.NotEqual(InOrderSum(g), reversed);
    }

    [Fact]
    public void DropsAreCountedAndNeverApplied()
    {
        var g = Gradients(2, 5, 2);
        var agg = new StepAggregator(5, 4);
        agg.Begin(3, 2);
        Assert.Equal(GradientDrop.UnknownStep, agg.Accept(2, 0, g[0]));
        Assert.Equal(GradientDrop.OutOfRange, agg.Accept(3, 2, g[0]));
        Assert.Equal(GradientDrop.WrongLength, agg.Accept(3, 0, new float[4]));
        Assert.Equal(GradientDrop.None, agg.Accept(3, 0, g[0]));
        Assert.Equal(GradientDrop.Duplicate, agg.Accept(3, 0, g[1]));
        var bad = (float[])g[1].Clone(); bad[3] = float.NaN;
        Assert.Equal(GradientDrop.NotFinite, agg.Accept(3, 1, bad));
        Assert.False(agg.IsComplete);
        bad[3] = float.PositiveInfinity;
        Assert.Equal(GradientDrop.NotFinite, agg.Accept(3, 1, bad));
        Assert.Equal(GradientDrop.None, agg.Accept(3, 1, g[1]));
        Assert.True(agg.IsComplete);
        Assert.Equal(InOrderSum(g), agg.Sum.ToArray());
        Assert.Equal(6, agg.DroppedTotal);
        Assert.Equal(2, agg.Dropped(GradientDrop.NotFinite));
    }

    [Fact]
    public void ANonFiniteValueAnywhereIsDroppedAtEveryLengthAndPosition()
    {
        // The check is vectorized: a bad value in the vector body, in the scalar tail, first or last must be found,
        // and the largest finite values must pass (their x - x is 0, their sum would overflow).
        foreach (int length in new[] { 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 67, 257 })
        {
            var agg = new StepAggregator(length, 1);
            long step = 0;
            var big = Enumerable.Repeat(float.MaxValue, length).ToArray();
            big[0] = float.MinValue;
            agg.Begin(step, 1);
            Assert.Equal(GradientDrop.None, agg.Accept(step++, 0, big));
            foreach (int at in new[] { 0, length / 2, length - 1 }.Distinct())
                foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                {
                    var g = new float[length];
                    g[at] = bad;
                    agg.Begin(step, 1);
                    Assert.Equal(GradientDrop.NotFinite, agg.Accept(step, 0, g));
                    Assert.False(agg.IsComplete);
                    step++;
                }
        }
    }

    [Fact]
    public void AbortedReceiveCanArriveAgainAndSlotsAreReusedAcrossSteps()
    {
        var agg = new StepAggregator(3, 2);
        for (long step = 0; step < 5; step++)
        {
            agg.Begin(step, 2);
            var span = agg.Reserve(step, 1, 3, out var r);
            Assert.Equal(GradientDrop.None, r);
            agg.Abort(step, 1, GradientDrop.Corrupt);
            Assert.Equal(GradientDrop.None, agg.Accept(step, 1, [1, 2, 3]));
            Assert.Equal(GradientDrop.None, agg.Accept(step, 0, [10, 20, 30]));
            Assert.Equal(new float[] { 11, 22, 33 }, agg.Sum.ToArray());
        }
        Assert.Equal(5, agg.Dropped(GradientDrop.Corrupt));
    }

    [Fact]
    public void SteadyStateAllocatesNothing()
    {
        var g = Gradients(4, 1000, 3);
        var agg = new StepAggregator(1000, 4);
        int[] order = [3, 1, 0, 2];
        void Run(long s) { agg.Begin(s, 4); foreach (var m in order) agg.Accept(s, m, g[m]); }
        Run(0);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int s = 1; s < 20; s++) Run(s);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}

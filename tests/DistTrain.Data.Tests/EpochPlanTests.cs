// The epoch plan: a permutation pinned to an independent reference (a Python transcription of
// SplitMix64 + xoshiro256** + Lemire + Fisher–Yates), determinism in (seed, epoch), micro-batches
// that partition each global batch exactly, query-order independence and allocation-free iteration.
using DistTrain.Data.Plans;
using Xunit;

namespace DistTrain.Data.Tests;

public class EpochPlanTests
{
    [Theory]
    [InlineData(42, 0, new[] { 7, 1, 2, 8, 9, 4, 0, 5, 3, 6 })]
    [InlineData(42, 1, new[] { 9, 2, 1, 5, 0, 8, 4, 3, 6, 7 })]
    [InlineData(7, 3, new[] { 5, 17, 4, 3, 10, 11, 2, 12, 0, 7, 8, 14, 6, 9, 15, 16, 19, 13, 1, 18 })]
    [InlineData(-1, 0, new[] { 4, 0, 5, 9, 1, 8, 3, 7, 2, 11, 6, 10 })]
    public void PermutationMatchesTheReferenceTranscription(int seed, int epoch, int[] expected)
    {
        var plan = EpochPlan.Create(seed, epoch, expected.Length, globalBatch: 2, microBatch: 1);
        Assert.Equal(expected, plan.Permutation.ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(1000)]
    [InlineData(60000)]
    public void PermutationHoldsEveryIndexOnce(int n)
    {
        var plan = EpochPlan.Create(5, 2, n, globalBatch: 1, microBatch: 1);
        var seen = new bool[n];
        foreach (var i in plan.Permutation) { Assert.False(seen[i]); seen[i] = true; }
        Assert.All(seen, Assert.True);
    }

    [Fact]
    public void DeterministicInSeedAndEpochAndDifferentOtherwise()
    {
        var a = EpochPlan.Create(1, 0, 500, 50, 10).Permutation.ToArray();
        Assert.Equal(a, EpochPlan.Create(1, 0, 500, 50, 10).Permutation.ToArray());
        Assert.Equal(a, EpochPlan.Create(1, 0, 500, 100, 7, dropLast: false).Permutation.ToArray()); // batching does not shuffle
        Assert.NotEqual(a, EpochPlan.Create(1, 1, 500, 50, 10).Permutation.ToArray());
        Assert.NotEqual(a, EpochPlan.Create(2, 0, 500, 50, 10).Permutation.ToArray());
        // Across many epochs no two permutations coincide, and position 0 is spread out.
        var firsts = new HashSet<int>();
        var perms = new HashSet<string>();
        for (int e = 0; e < 50; e++)
        {
            var p = EpochPlan.Create(1, e, 500, 50, 10).Permutation;
            firsts.Add(p[0]);
            Assert.True(perms.Add(string.Join(",", p.ToArray())));
        }
        Assert.True(firsts.Count > 40);
    }

    [Theory]
    [InlineData(100, 32, 8, true)]   // 3 full steps, tail of 4 dropped
    [InlineData(100, 32, 8, false)]  // 4th step of 4 samples, one micro-batch of 4
    [InlineData(100, 30, 7, false)]  // micro-batches 7,7,7,7,2 then a last step of 10 → 7,3
    [InlineData(64, 64, 64, true)]
    [InlineData(10, 3, 1, false)]
    public void MicroBatchesPartitionEachGlobalBatchExactly(int n, int b, int m, bool dropLast)
    {
        var plan = EpochPlan.Create(3, 4, n, b, m, dropLast);
        int expectedSteps = dropLast ? n / b : (n + b - 1) / b;
        Assert.Equal(expectedSteps, plan.Steps);
        Assert.Equal(expectedSteps, EpochPlan.CountSteps(n, b, dropLast));
        var used = new List<int>();
        for (int s = 0; s < plan.Steps; s++)
        {
            int stepSize = Math.Min(b, n - s * b);
            var fromMicro = new List<int>();
            var list = plan.MicroBatches(s);
            Assert.Equal((stepSize + m - 1) / m, list.Count);
            int k = 0;
            foreach (var mb in list)
            {
                Assert.Equal(4, mb.Epoch);
                Assert.Equal((long)plan.Steps * 4 + s, mb.Step);
                Assert.Equal(s, mb.StepInEpoch);
                Assert.Equal(k, mb.Index);
                Assert.Equal(list.Count, mb.CountInStep);
                Assert.Equal(stepSize, mb.StepSize);
                Assert.Equal(k < list.Count - 1 ? m : stepSize - m * (list.Count - 1), mb.Size);
                fromMicro.AddRange(plan.Indices(mb).ToArray());
                k++;
            }
            Assert.Equal(k, list.Count);
            Assert.Equal(plan.StepIndices(s).ToArray(), fromMicro);
            Assert.Equal(plan.Permutation.Slice(s * b, stepSize).ToArray(), fromMicro);
            used.AddRange(fromMicro);
        }
        Assert.Equal(plan.SamplesUsed, used.Count);
        Assert.Equal(used.Count, used.Distinct().Count());
        Assert.Equal(dropLast ? n / b * b : n, used.Count);
    }

    [Fact]
    public void SameMicroBatchesInAnyQueryOrderAndFromAnyInstance()
    {
        var reference = EpochPlan.Create(9, 2, 1000, 64, 16, dropLast: false);
        var expected = new Dictionary<(int, int), (MicroBatch, int[])>();
        for (int s = 0; s < reference.Steps; s++)
            foreach (var mb in reference.MicroBatches(s))
                expected[(s, mb.Index)] = (mb, reference.Indices(mb).ToArray());

        // A fresh plan (as another node would build), queried in a shuffled order.
        var other = EpochPlan.Create(9, 2, 1000, 64, 16, dropLast: false);
        var keys = expected.Keys.ToArray();
        var order = Enumerable.Range(0, keys.Length).ToArray();
        new Xoshiro256(123).Shuffle(order);
        foreach (var i in order)
        {
            var (s, k) = keys[i];
            var mb = other.MicroBatchAt(other.FirstStep + s, k);
            Assert.Equal(expected[(s, k)].Item1, mb);
            Assert.Equal(expected[(s, k)].Item2, other.Indices(mb).ToArray());
        }
    }

    [Fact]
    public void GlobalStepsNumberAcrossEpochsAndLocateInverts()
    {
        int spe = EpochPlan.CountSteps(1000, 64);
        Assert.Equal(15, spe);
        for (int e = 0; e < 4; e++)
        {
            var plan = EpochPlan.Create(1, e, 1000, 64, 32);
            Assert.Equal((long)spe * e, plan.FirstStep);
            for (int s = 0; s < plan.Steps; s++)
            {
                long g = plan.GlobalStep(s);
                Assert.Equal((long)spe * e + s, g);
                Assert.Equal((e, s), EpochPlan.Locate(g, spe));
                Assert.Equal(g, plan.MicroBatches(s)[1].Step);
            }
        }
    }

    [Fact]
    public void IteratingMicroBatchesAndIndicesAllocatesNothing()
    {
        var plan = EpochPlan.Create(1, 0, 10_000, 256, 32);
        long Sum()
        {
            long sum = 0;
            for (int s = 0; s < plan.Steps; s++)
                foreach (var mb in plan.MicroBatches(s))
                    foreach (var i in plan.Indices(mb)) sum += i;
            return sum;
        }
        Sum(); // warm up (JIT)
        long before = GC.GetAllocatedBytesForCurrentThread();
        long total = Sum();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        long expected = 0;
        foreach (var i in plan.Permutation[..plan.SamplesUsed]) expected += i;
        Assert.Equal(expected, total);
    }

    [Fact]
    public void SequentialPlanIsTheIdentityAndKeepsTheTail()
    {
        var plan = EpochPlan.CreateSequential(10, 4, 3);
        Assert.Equal(Enumerable.Range(0, 10), plan.Permutation.ToArray());
        Assert.Equal(3, plan.Steps);
        Assert.Equal([8, 9], plan.StepIndices(2).ToArray());
    }

    [Fact]
    public void BadSizesAreClearErrors()
    {
        Assert.Contains("1..32", Assert.Throws<ArgumentOutOfRangeException>(() => EpochPlan.Create(0, 0, 100, 32, 64)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => EpochPlan.Create(0, 0, 100, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => EpochPlan.Create(0, -1, 100, 10, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => EpochPlan.Create(0, 0, 0, 10, 1));
        var e = Assert.Throws<ArgumentException>(() => EpochPlan.Create(0, 0, 10, 32, 8));
        Assert.Contains("fewer than one global batch", e.Message);
        Assert.Equal(1, EpochPlan.Create(0, 0, 10, 32, 8, dropLast: false).Steps);
        var plan = EpochPlan.Create(0, 0, 100, 10, 5);
        Assert.Throws<ArgumentOutOfRangeException>(() => plan.MicroBatches(10));
        Assert.Throws<ArgumentOutOfRangeException>(() => plan.GetMicroBatch(0, 2));
        var foreign = EpochPlan.Create(0, 1, 100, 10, 5).GetMicroBatch(0, 0);
        Assert.Throws<ArgumentException>(() => plan.Indices(foreign));
    }
}

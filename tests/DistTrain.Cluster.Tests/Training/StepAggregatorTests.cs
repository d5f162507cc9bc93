// StepAggregator: in-order folding regardless of arrival order, drops counted, slots reused.
using DistTrain.Cluster.Training;
using Xunit;
using DistTrain.Training.Steps;

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

    // Chunks (sub-ranges sent during a worker's backward), interleaved across micro-batches in a shuffled order.
    private static void AcceptChunks(StepAggregator agg, long step, float[][] g, (int Mb, int Off, int Len)[] chunks, int seed)
    {
        var rng = new Random(seed);
        foreach (var (mb, off, len) in chunks.OrderBy(_ => rng.Next()).ToArray())
        {
            var dst = agg.Reserve(step, mb, off, len, out var reason);
            Assert.Equal(GradientDrop.None, reason);
            g[mb].AsSpan(off, len).CopyTo(dst);
            var result = agg.Commit(step, mb, off, len);
            Assert.NotEqual(ChunkCommit.NotFinite, result);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void ChunkedArrivalsSumBitIdenticallyToWholeOnes(int seed)
    {
        var g = Gradients(4, 1000, seed);
        var rng = new Random(seed);
        var chunks = new List<(int, int, int)>();
        for (int mb = 0; mb < 4; mb++)
        {
            // Cut [0, 1000) at random points (mb 3 arrives whole).
            var cuts = mb == 3 ? new List<int>() : Enumerable.Range(0, 1 + mb * 3).Select(_ => rng.Next(1, 1000)).Distinct().Order().ToList();
            int from = 0;
            foreach (var c in cuts.Append(1000)) { chunks.Add((mb, from, c - from)); from = c; }
        }
        var agg = new StepAggregator(1000, 4);
        agg.Begin(5, 4);
        AcceptChunks(agg, 5, g, chunks.ToArray(), seed);
        Assert.True(agg.IsComplete);
        Assert.Equal(InOrderSum(g).Select(BitConverter.SingleToInt32Bits), agg.Sum.ToArray().Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void MicroBatchCompletesOnlyWhenItsChunksCoverTheRange()
    {
        var g = Gradients(1, 10, 4);
        var agg = new StepAggregator(10, 2);
        agg.Begin(0, 1);
        g[0].AsSpan(6, 4).CopyTo(agg.Reserve(0, 0, 6, 4, out _));
        Assert.Equal(ChunkCommit.Stored, agg.Commit(0, 0, 6, 4));
        Assert.False(agg.HasArrived(0));
        g[0].AsSpan(0, 6).CopyTo(agg.Reserve(0, 0, 0, 6, out _));
        Assert.False(agg.IsComplete); // reserved, not yet committed
        Assert.Equal(ChunkCommit.Completed, agg.Commit(0, 0, 0, 6));
        Assert.True(agg.IsComplete);
        Assert.Equal(g[0], agg.Sum.ToArray());
    }

    [Fact]
    public void OverlappingOutOfRangeAndBadChunksAreDroppedAndCounted()
    {
        var agg = new StepAggregator(10, 2);
        agg.Begin(1, 2);
        agg.Reserve(1, 0, 2, 4, out var r);
        Assert.Equal(GradientDrop.None, r);
        agg.Reserve(1, 0, 5, 2, out r); Assert.Equal(GradientDrop.Duplicate, r);   // overlaps [2,6)
        agg.Reserve(1, 0, 0, 3, out r); Assert.Equal(GradientDrop.Duplicate, r);
        agg.Reserve(1, 0, 8, 3, out r); Assert.Equal(GradientDrop.WrongLength, r);  // past the range
        agg.Reserve(1, 0, -1, 2, out r); Assert.Equal(GradientDrop.WrongLength, r);
        agg.Reserve(1, 0, 6, 0, out r); Assert.Equal(GradientDrop.WrongLength, r);  // empty chunk of a non-empty range
        agg.Reserve(1, 1, 0, 3, out r); Assert.Equal(GradientDrop.None, r);        // other micro-batch: no overlap
        // A chunk that is not finite is forgotten: the same chunk can arrive again, the others are kept.
        agg.Reserve(1, 0, 2, 4, out _); // still a duplicate
        var c = agg.Reserve(1, 0, 6, 4, out r);
        Assert.Equal(GradientDrop.None, r);
        c.Fill(1f); c[2] = float.PositiveInfinity;
        Assert.Equal(ChunkCommit.NotFinite, agg.Commit(1, 0, 6, 4));
        agg.Reserve(1, 0, 6, 4, out r).Fill(1f);
        Assert.Equal(GradientDrop.None, r);
        Assert.Equal(ChunkCommit.Stored, agg.Commit(1, 0, 6, 4));
        Assert.Equal(3, agg.Dropped(GradientDrop.Duplicate));
        Assert.Equal(3, agg.Dropped(GradientDrop.WrongLength));
        Assert.Equal(1, agg.Dropped(GradientDrop.NotFinite));
        // Aborting a lost chunk frees its place; once every chunk is gone, the slot is free again.
        agg.Abort(1, 1, 0, 3, GradientDrop.Corrupt);
        Assert.Equal(GradientDrop.None, agg.Accept(1, 1, new float[10]));
        Assert.Throws<InvalidOperationException>(() => agg.Commit(1, 0, 0, 2)); // never reserved
    }

    [Fact]
    public void ChunkedStepsAllocateNothingAfterWarmUp()
    {
        var g = Gradients(2, 300, 6);
        var agg = new StepAggregator(300, 2);
        var chunks = new[] { (1, 200, 100), (0, 100, 200), (1, 0, 200), (0, 0, 100) };
        void Run(long s)
        {
            agg.Begin(s, 2);
            foreach (var (mb, off, len) in chunks)
            {
                g[mb].AsSpan(off, len).CopyTo(agg.Reserve(s, mb, off, len, out _));
                agg.Commit(s, mb, off, len);
            }
        }
        Run(0); Run(1);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int s = 2; s < 20; s++) Run(s);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(agg.IsComplete);
    }
    [Fact]
    public void FoldInOrderGivesTheBitsOfArrivalsInAnyOrder()
    {
        // The one-process trainer folds each gradient from its own buffer; a cluster shard receives into slots in any order.
        var g = Gradients(5, 37, 1);
        var inOrder = new StepAggregator(37, 2);       // fewer than the step's micro-batches: Begin grows it
        inOrder.Begin(4, 5);
        for (int m = 0; m < 5; m++) Assert.Equal(ChunkCommit.Completed, inOrder.FoldInOrder(4, m, g[m]));
        var arrivals = new StepAggregator(37, 5);
        arrivals.Begin(4, 5);
        foreach (var m in new[] { 3, 0, 4, 2, 1 }) Assert.Equal(GradientDrop.None, arrivals.Accept(4, m, g[m]));
        Assert.True(inOrder.IsComplete);
        Assert.Equal(arrivals.Sum.ToArray().Select(BitConverter.SingleToInt32Bits), inOrder.Sum.ToArray().Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(InOrderSum(g), inOrder.Sum.ToArray());
    }

    [Fact]
    public void FoldInOrderOfAOneMicroBatchStepBorrowsTheBufferAndRefusesWhatIsOutOfOrderOrNotFinite()
    {
        var g = Gradients(3, 6, 4);
        var agg = new StepAggregator(6, 1);
        agg.Begin(0, 1);
        Assert.Equal(ChunkCommit.Completed, agg.FoldInOrder(0, 0, g[0]));
        g[0][2] = 42f; // the sum is the caller's buffer itself: no copy
        Assert.Equal(42f, agg.Sum[2]);
        agg.ScaleSum(0.5f);
        Assert.Equal(21f, g[0][2]);

        agg.Begin(1, 3);
        Assert.Throws<InvalidOperationException>(() => agg.FoldInOrder(1, 1, g[1]));   // micro-batch 0 first
        Assert.Throws<InvalidOperationException>(() => agg.FoldInOrder(0, 0, g[1]));   // another step
        Assert.Throws<InvalidOperationException>(() => agg.FoldInOrder(1, 0, new float[5]));
        var bad = (float[])g[1].Clone(); bad[4] = float.PositiveInfinity;
        Assert.Equal(ChunkCommit.NotFinite, agg.FoldInOrder(1, 0, bad));
        Assert.Equal(1, agg.Dropped(GradientDrop.NotFinite));
        Assert.Equal(ChunkCommit.Completed, agg.FoldInOrder(1, 0, g[1]));             // nothing of the refused one was kept
        Assert.Equal(ChunkCommit.Completed, agg.FoldInOrder(1, 1, g[2]));
        Assert.Equal(ChunkCommit.Completed, agg.FoldInOrder(1, 2, g[0]));
        Assert.Equal(InOrderSum([g[1], g[2], g[0]]), agg.Sum.ToArray());
    }

    /// <summary>
    /// A backup copy (another sender) is received beside a straggler's copy whose chunk is still arriving: the first copy to
    /// cover the range counts and completes the micro-batch; the other's chunks end as Superseded, even after the step is
    /// over, and the slot they write into is not handed to anyone until they end (written after Begin, it changes nothing).
    /// </summary>
    [Fact]
    public void TheFirstCopyToArriveWholeCountsAndALosersSlotIsKeptUntilItsReceiveEnds()
    {
        var g = Gradients(2, 10, 7);
        var agg = new StepAggregator(10, 2);
        agg.Begin(0, 2);
        Assert.Equal(GradientDrop.None, agg.Accept(0, 0, g[0], sender: 1));
        // The straggler (sender 2) has begun micro-batch 1: half committed, the other half still arriving.
        g[1].AsSpan(0, 5).CopyTo(agg.Reserve(0, 1, 0, 5, out var r, sender: 2));
        Assert.Equal(ChunkCommit.Stored, agg.Commit(0, 1, 0, 5, sender: 2));
        var slow = agg.Reserve(0, 1, 5, 5, out r, sender: 2);
        Assert.Equal(GradientDrop.None, r);
        // The backup (sender 3) sends the whole micro-batch in two chunks, overlapping the straggler's: accepted beside it.
        g[1].AsSpan(5, 5).CopyTo(agg.Reserve(0, 1, 5, 5, out r, sender: 3));
        Assert.Equal(GradientDrop.None, r);
        Assert.Equal(ChunkCommit.Stored, agg.Commit(0, 1, 5, 5, sender: 3));
        agg.Reserve(0, 1, 6, 2, out r, sender: 4);
        Assert.Equal(GradientDrop.Duplicate, r);                     // a third copy while two arrive
        g[1].AsSpan(0, 5).CopyTo(agg.Reserve(0, 1, 0, 5, out r, sender: 3));
        Assert.Equal(ChunkCommit.Completed, agg.Commit(0, 1, 0, 5, sender: 3));
        Assert.True(agg.IsComplete);
        Assert.Equal(InOrderSum(g).Select(BitConverter.SingleToInt32Bits), agg.Sum.ToArray().Select(BitConverter.SingleToInt32Bits));
        agg.Reserve(0, 1, 5, 5, out r, sender: 2);
        Assert.Equal(GradientDrop.Duplicate, r);                     // arrived: no more copies

        // The next step reuses slots, but not the one the straggler's last chunk still writes into.
        var h = Gradients(2, 10, 8);
        agg.Begin(1, 2);
        var a0 = agg.Reserve(1, 0, 10, out _, sender: 1);
        var a1 = agg.Reserve(1, 1, 10, out _, sender: 1);
        h[0].CopyTo(a0);
        h[1].CopyTo(a1);
        slow.Fill(float.NaN);                                         // the straggler's chunk lands late, into its own slot
        Assert.Equal(ChunkCommit.Superseded, agg.Commit(0, 1, 5, 5, sender: 2));
        Assert.True(agg.Commit(1, 0, sender: 1));
        Assert.True(agg.Commit(1, 1, sender: 1));
        Assert.Equal(InOrderSum(h).Select(BitConverter.SingleToInt32Bits), agg.Sum.ToArray().Select(BitConverter.SingleToInt32Bits));
        // Its slot is free again now: two more steps run without new slots beyond the three used so far.
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (long step = 2; step < 4; step++) { agg.Begin(step, 2); agg.Accept(step, 1, h[1], 5); agg.Accept(step, 0, h[0], 6); }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>A copy whose chunks all failed is forgotten, so another sender's copy can take its place; a commit of a chunk
    /// never reserved by that sender is a bug and throws.</summary>
    [Fact]
    public void AnAbortedCopyMakesRoomAndCommitsNeedTheirSendersReservation()
    {
        var g = Gradients(1, 6, 9);
        var agg = new StepAggregator(6, 1);
        agg.Begin(0, 1);
        agg.Reserve(0, 0, 0, 3, out _, sender: 1);
        agg.Reserve(0, 0, 0, 6, out _, sender: 2);
        Assert.Throws<InvalidOperationException>(() => agg.Commit(0, 0, 0, 3, sender: 2));
        agg.Abort(0, 0, 0, 3, GradientDrop.Corrupt, sender: 1);
        g[0].CopyTo(agg.Reserve(0, 0, 0, 6, out var r, sender: 3));   // sender 1's copy is gone: room for a second copy
        Assert.Equal(GradientDrop.None, r);
        Assert.Equal(ChunkCommit.Completed, agg.Commit(0, 0, 0, 6, sender: 3));
        Assert.Equal(ChunkCommit.Superseded, agg.Commit(0, 0, 0, 6, sender: 2));
        Assert.Equal(g[0], agg.Sum.ToArray());
        Assert.Equal(1, agg.Dropped(GradientDrop.Corrupt));
    }
}

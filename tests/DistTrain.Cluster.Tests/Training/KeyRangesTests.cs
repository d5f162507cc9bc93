using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using Xunit;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Tests.Training;

public class KeyRangesTests
{
    [Theory]
    [InlineData(0, 1)] [InlineData(1, 1)] [InlineData(10, 3)] [InlineData(421642, 2)] [InlineData(421642, 5)] [InlineData(17, 4)]
    public void RangesAreContiguousCoverEverythingAndAreAligned(int total, int shards)
    {
        var r = KeyRanges.Split(total, shards);
        Assert.Equal(shards, r.Length);
        Assert.Equal(0, r[0].Offset);
        for (int i = 1; i < r.Length; i++) Assert.Equal(r[i - 1].End, r[i].Offset);
        Assert.Equal(total, r[^1].End);
        for (int i = 1; i < r.Length; i++) Assert.True(r[i].Offset % 16 == 0 || r[i].Offset == total);
        if (total >= 1000) Assert.All(r, x => Assert.InRange(x.Length, total / shards - 16, total / shards + 16));
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyRanges.Split(10, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyRanges.Split(-1, 1));
    }

    // The cnn preset's layer runs: c1 [0,320), c2 [320,18816), l1 [18816,420352), l2 [420352,421642); ReLU/pool/flatten empty.
    private static readonly int[] CnnRunStarts = [0, 320, 320, 320, 18816, 18816, 18816, 18816, 420352, 420352];

    [Fact]
    public void PushChunksPutTheSmallFirstLayersFirstAndCutOnlyAtLayerBoundaries()
    {
        Assert.Equal([new KeyRange(0, 18816), new KeyRange(18816, 402826)], KeyRanges.PushChunks(new KeyRange(0, 421642), CnnRunStarts, 65536));
        // Small chunks: every layer with parameters on its own.
        Assert.Equal([new KeyRange(0, 320), new KeyRange(320, 18496), new KeyRange(18816, 401536), new KeyRange(420352, 1290)],
            KeyRanges.PushChunks(new KeyRange(0, 421642), CnnRunStarts, 16));
        // Off, or a range without an inner boundary: one frame.
        Assert.Equal([new KeyRange(0, 421642)], KeyRanges.PushChunks(new KeyRange(0, 421642), CnnRunStarts, 0));
        Assert.Equal([new KeyRange(20000, 100000)], KeyRanges.PushChunks(new KeyRange(20000, 100000), CnnRunStarts, 16));
        Assert.Equal([new KeyRange(5, 0)], KeyRanges.PushChunks(new KeyRange(5, 0), CnnRunStarts, 16));
    }

    [Theory]
    [InlineData(0, 421642, 1)] [InlineData(0, 210816, 1000)] [InlineData(210816, 210826, 4096)] [InlineData(300, 30000, 100)]
    public void PushChunksTileTheRangeInOrder(int offset, int length, int minChunk)
    {
        var range = new KeyRange(offset, length);
        var chunks = KeyRanges.PushChunks(range, CnnRunStarts, minChunk);
        Assert.Equal(offset, chunks[0].Offset);
        for (int i = 1; i < chunks.Length; i++) Assert.Equal(chunks[i - 1].End, chunks[i].Offset);
        Assert.Equal(range.End, chunks[^1].End);
        for (int i = 1; i < chunks.Length; i++)
        {
            Assert.Contains(chunks[i].Offset, CnnRunStarts);
            Assert.True(chunks[i].Length >= minChunk);
        }
    }

    [Fact]
    public void ALayoutThatDoesNotTileTheVectorIsNamedWithItsRanges()
    {
        static ParameterServerMessages.ShardInfo S(int i, long offset, int length) => new(i, offset, length, "node", "127.0.0.1", 1);
        Assert.Null(new ParameterServerMessages.ShardLayout(100, [S(0, 0, 60), S(1, 60, 40)]).TilingError());
        var gap = new ParameterServerMessages.ShardLayout(100, [S(0, 0, 50), S(1, 60, 40)]).TilingError();
        Assert.Contains("shard 1 owns [60, 100) but the ranges must continue at 50", gap);
        Assert.Contains("0: [0, 50), 1: [60, 100)", gap);
        Assert.Contains("end at 90, not at the parameter count 100",
            new ParameterServerMessages.ShardLayout(100, [S(0, 0, 50), S(1, 50, 40)]).TilingError());
        Assert.Contains("says it is shard 0", new ParameterServerMessages.ShardLayout(100, [S(0, 0, 50), S(0, 50, 50)]).TilingError());
    }
}

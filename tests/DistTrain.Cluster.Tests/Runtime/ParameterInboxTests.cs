// ParameterInbox with a step barrier receives a push straight into the buffer of its version's parity: a version
// reaches the model with one copy, and nothing received before its checksum is known can land on values being read.
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Runtime;
using Xunit;
using static DistTrain.Cluster.Messages.ParameterServerMessages;

namespace DistTrain.Cluster.Tests.Runtime;

public class ParameterInboxTests
{
    private static readonly ShardInfo[] TwoShards = [new(0, 0, 6, "a", "h", 1), new(1, 6, 4, "b", "h", 2)];

    private static float[] Version(long v) => Enumerable.Range(0, 10).Select(i => v * 100f + i).ToArray();

    /// <summary>Delivers [offset, offset+length) of <paramref name="values"/> as the data plane does: Rent, write, OnFrame.</summary>
    private static DropReason? Push(IFrameHandler inbox, int shard, long version, int offset, int length, float[] values, int? sender = null)
    {
        var h = new FrameHeader(FrameKind.Parameters, version, 0, version, shard, offset, length, 0, sender ?? JobMapping.ShardSenderId(TwoShards[shard].OwnerAddress, shard));
        var reason = inbox.Rent(h, out var destination);
        if (reason is not null) return reason;
        values.AsSpan(offset, length).CopyTo(destination);
        inbox.OnFrame(h, destination);
        return null;
    }

    [Fact]
    public void SyncVersionsAreTakenLayerByLayerAsTheirPiecesArriveAndEachWhole()
    {
        var inbox = new ParameterInbox(() => { });
        inbox.Configure(TwoShards, 10, stepBarrier: true);
        var model = new float[10];
        Assert.Null(Push(inbox, 0, 4, 0, 3, Version(4)));
        Assert.Null(Push(inbox, 1, 4, 6, 4, Version(4)));
        Assert.False(inbox.TryTakeAll(4, model, out _));
        // The gated forward takes what has arrived while the rest of the version is still on its way.
        inbox.TakeRange(4, 0, 3, model, TimeSpan.FromSeconds(1));
        Assert.Null(Push(inbox, 0, 4, 3, 3, Version(4)));
        inbox.TakeRange(4, 3, 10, model, TimeSpan.FromSeconds(1));
        Assert.Equal(Version(4), model);
        // The next version lands in the other buffer and is taken whole.
        Assert.Null(Push(inbox, 0, 5, 0, 6, Version(5)));
        Assert.False(inbox.TryTakeAll(5, model, out bool stale));
        Assert.False(stale);
        Assert.Null(Push(inbox, 1, 5, 6, 4, Version(5)));
        Assert.True(inbox.TryTakeAll(5, model, out _));
        Assert.Equal(Version(5), model);
        Assert.False(inbox.TryTakeAll(4, model, out stale));               // 4 is gone: the shards are past it
        Assert.True(stale);
    }

    [Fact]
    public void NothingIsReceivedOverValuesThatMayBeRead()
    {
        var inbox = new ParameterInbox(() => { });
        inbox.Configure(TwoShards, 10, stepBarrier: true);
        Assert.Null(Push(inbox, 0, 4, 0, 3, Version(4)));
        var garbage = Enumerable.Repeat(float.NaN, 10).ToArray();
        Assert.Equal(DropReason.Rejected, Push(inbox, 0, 4, 0, 3, garbage));   // a resend over what arrived of 4
        Assert.Equal(DropReason.Rejected, Push(inbox, 0, 3, 0, 6, garbage));   // older: its parity is 5's, next to come
        Assert.Equal(DropReason.Rejected, Push(inbox, 0, 6, 3, 3, garbage));   // a piece of 6 would land on 4
        Assert.Null(Push(inbox, 0, 4, 3, 3, Version(4)));                     // the rest of 4
        var model = new float[10];
        inbox.TakeRange(4, 0, 6, model, TimeSpan.FromSeconds(1));
        Assert.Equal(Version(4).AsSpan(0, 6).ToArray(), model.AsSpan(0, 6).ToArray());
        Assert.Null(Push(inbox, 0, 8, 0, 6, Version(8)));                     // a whole range stands alone (restore)
        Assert.Null(Push(inbox, 1, 8, 6, 4, Version(8)));
        Assert.True(inbox.TryTakeAll(8, model, out _));
        Assert.Equal(Version(8), model);
    }

    /// <summary>A range's parameters are taken only from the shard that owns it in the layout the worker holds: another
    /// shard's owner, a worker or the coordinator (each with a key of its own) gets NotPermitted; after a replacement the new
    /// owner is the one.</summary>
    [Fact]
    public void APushIsTakenOnlyFromTheShardThatOwnsTheRange()
    {
        var inbox = new ParameterInbox(() => { });
        inbox.Configure(TwoShards, 10, stepBarrier: true);
        var garbage = Enumerable.Repeat(float.NaN, 10).ToArray();
        Assert.Equal(DropReason.NotPermitted, Push(inbox, 0, 4, 0, 6, garbage, sender: JobMapping.ShardSenderId("b", 1)));
        Assert.Equal(DropReason.NotPermitted, Push(inbox, 0, 4, 0, 6, garbage, sender: JobMapping.SenderIdOf("node-b/w0")));
        Assert.Equal(DropReason.NotPermitted, Push(inbox, 0, 4, 0, 6, garbage, sender: JobMapping.SenderIdOf("coordinator")));
        Assert.Null(Push(inbox, 0, 4, 0, 6, Version(4)));
        Assert.Null(Push(inbox, 1, 4, 6, 4, Version(4)));
        var model = new float[10];
        Assert.True(inbox.TryTakeAll(4, model, out _));
        Assert.Equal(Version(4), model);

        // Shard 0 replaced by a spare on node "c": its pushes are taken, the old owner's no longer.
        inbox.Configure([TwoShards[0] with { OwnerAddress = "c" }, TwoShards[1]], 10, stepBarrier: true);
        Assert.Equal(DropReason.NotPermitted, Push(inbox, 0, 5, 0, 6, garbage));
        Assert.Null(Push(inbox, 0, 5, 0, 6, Version(5), sender: JobMapping.ShardSenderId("c", 0)));
    }

    [Fact]
    public void AsyncKeepsTheNewestWholeVersionOfEachShard()
    {
        var inbox = new ParameterInbox(() => { });
        inbox.Configure(TwoShards, 10, stepBarrier: false);
        Assert.Null(Push(inbox, 0, 4, 0, 6, Version(4)));
        Assert.Null(Push(inbox, 1, 7, 6, 4, Version(7)));
        var model = new float[10];
        long[] held = [-1, -1];
        Assert.Equal(-1, inbox.TryRefresh(5, model, held));      // shard 0 is older than 5
        Assert.Equal(4, inbox.TryRefresh(4, model, held));
        Assert.Equal([4L, 7L], held);
        Assert.Equal(Version(4).AsSpan(0, 6).ToArray(), model.AsSpan(0, 6).ToArray());
        Assert.Equal(Version(7).AsSpan(6, 4).ToArray(), model.AsSpan(6, 4).ToArray());
    }
}

// Why a data-plane frame was not applied, and the per-reason counters a server keeps.
namespace DistTrain.Cluster.DataPlane;

public enum DropReason
{
    /// <summary>Payload larger than disttrain.data-plane.max-frame-bytes; drained, never applied.</summary>
    Oversized = 0,
    /// <summary>Length differs from what the receiver expects for that key range.</summary>
    WrongLength = 1,
    /// <summary>Payload bytes do not match the header's checksum.</summary>
    BadChecksum = 2,
    /// <summary>The handler refused it: unknown step, duplicate (step, micro-batch), unknown shard.</summary>
    Rejected = 3,
    /// <summary>Header not decodable; the connection is closed (the stream cannot be resynchronised).</summary>
    Malformed = 4,
    /// <summary>The connection closed in the middle of the frame (peer left or was closed).</summary>
    ConnectionLost = 5,
    /// <summary>A frame before the connection's Hello, or whose SenderId is not the one its Hello named; the connection is closed.</summary>
    WrongSender = 6,
    /// <summary>The peer's Hello did not prove it holds the data-plane key of the sender id it declares (another job, a stranger, a
    /// member claiming another member's sender id, a Hello replayed from
    /// another connection); the connection is closed before any frame reaches the handler.</summary>
    Unauthenticated = 7,
    /// <summary>A frame's tag (FrameMac) does not match its header and payload: altered, injected, replayed or reordered on an
    /// authenticated connection. Never applied; the connection is closed.</summary>
    BadMac = 8,
    /// <summary>An authenticated peer sent a frame its role may not send: a parameter push not from the shard that owns the
    /// range, a restore not from the coordinator, a gradient or statistics not from a worker the coordinator registered with
    /// this shard. Drained, never applied; the connection stays open.</summary>
    NotPermitted = 9,
}

/// <summary>Thread-safe counters of received and dropped frames.</summary>
public sealed class DataPlaneStats
{
    private readonly long[] _dropped = new long[Enum.GetValues<DropReason>().Length];
    private long _frames;
    private long _bytes;
    private long _timedOut;
    private long _refused;

    public long FramesReceived => Interlocked.Read(ref _frames);
    public long BytesReceived => Interlocked.Read(ref _bytes);
    public long Dropped(DropReason reason) => Interlocked.Read(ref _dropped[(int)reason]);
    public long DroppedTotal => Enumerable.Range(0, _dropped.Length).Sum(i => Interlocked.Read(ref _dropped[i]));
    /// <summary>Connections closed because a Hello, the rest of a frame or (with an idle timeout) the next frame did not come in time.</summary>
    public long TimedOut => Interlocked.Read(ref _timedOut);
    /// <summary>Connections closed on arrival because the listener already had disttrain.data-plane.max-connections open.</summary>
    public long ConnectionsRefused => Interlocked.Read(ref _refused);

    internal void Received(long payloadBytes)
    {
        Interlocked.Increment(ref _frames);
        Interlocked.Add(ref _bytes, payloadBytes);
    }

    internal void Drop(DropReason reason) => Interlocked.Increment(ref _dropped[(int)reason]);
    internal void TimeOut() => Interlocked.Increment(ref _timedOut);
    internal void Refuse() => Interlocked.Increment(ref _refused);

    public override string ToString() =>
        $"frames={FramesReceived}, bytes={BytesReceived}, dropped: " +
        string.Join(", ", Enum.GetValues<DropReason>().Select(r => $"{r}={Dropped(r)}")) + $"; timed out={TimedOut}, refused connections={ConnectionsRefused}";
}

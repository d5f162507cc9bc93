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
}

/// <summary>Thread-safe counters of received and dropped frames.</summary>
public sealed class DataPlaneStats
{
    private readonly long[] _dropped = new long[Enum.GetValues<DropReason>().Length];
    private long _frames;
    private long _bytes;

    public long FramesReceived => Interlocked.Read(ref _frames);
    public long BytesReceived => Interlocked.Read(ref _bytes);
    public long Dropped(DropReason reason) => Interlocked.Read(ref _dropped[(int)reason]);
    public long DroppedTotal => Enumerable.Range(0, _dropped.Length).Sum(i => Interlocked.Read(ref _dropped[i]));

    internal void Received(long payloadBytes)
    {
        Interlocked.Increment(ref _frames);
        Interlocked.Add(ref _bytes, payloadBytes);
    }

    internal void Drop(DropReason reason) => Interlocked.Increment(ref _dropped[(int)reason]);

    public override string ToString() =>
        $"frames={FramesReceived}, bytes={BytesReceived}, dropped: " +
        string.Join(", ", Enum.GetValues<DropReason>().Select(r => $"{r}={Dropped(r)}"));
}

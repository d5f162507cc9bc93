// What one data-plane listener grants its peers (disttrain.data-plane.max-connections, hello-timeout, read-timeout,
// idle-timeout): a stranger who connects and says nothing, or stops halfway through a frame, or opens connection after
// connection, holds a thread and a slot only for a bounded time, and only up to a bounded count.
namespace DistTrain.Cluster.DataPlane;

public sealed record DataPlaneLimits
{
    /// <summary>Open connections one listener keeps (each has its receive thread); more are closed as they arrive and counted.
    /// A shard's listener needs one per worker plus the coordinator's; a worker's one per shard.</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>A new connection must send its Hello frame within this time, else it is closed (every client sends it at once).</summary>
    public TimeSpan HelloTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Once a frame has begun, no gap in its bytes may be longer than this: a half-sent frame gives its slot back
    /// instead of holding it until the work lease expires. Senders give up after DataPlaneClient.DefaultSendTimeout (15 s).</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A connection that has said Hello and sends no frame for this long is closed; zero = never. Off by default:
    /// a worker's connections stay quiet while it waits for other workers to join, and a shard does not reconnect by itself.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.Zero;

    public static DataPlaneLimits Default { get; } = new();

    /// <summary>Thread stack of a connection's receive loop: it only copies into spans, so a small stack bounds the memory
    /// a connection costs (the default is 1.5 MB).</summary>
    internal const int ReceiveThreadStackBytes = 256 * 1024;
}

// A node's data-plane settings as its role actors use them: where listeners bind and what they advertise,
// the node's port range, buffer sizes, connect timeout and gradient chunking (disttrain.data-plane.*).
using System.Net;
using DistTrain.Cluster.DataPlane;

namespace DistTrain.Cluster.Runtime;

/// <summary>Where a node's data-plane servers bind and what address they advertise to peers, and how its workers cut
/// gradients into frames (DataPlaneSettings.GradientChunkFloats).</summary>
public sealed record NodeEndpoints(string BindAddress, string AdvertisedHost, long MaxFrameBytes, int GradientChunkFloats = NodeEndpoints.DefaultGradientChunkFloats)
{
    /// <summary>disttrain.data-plane.port: the first of this node's listener ports (one per coordinator, shard and worker
    /// actor: Port + PortSlot), so a firewall can open a known range; 0 = any free port.</summary>
    public int Port { get; init; }
    /// <summary>Which of the node's listeners this actor's is (ClusterNode numbers them).</summary>
    public int PortSlot { get; init; }
    /// <summary>disttrain.data-plane.socket-buffer-bytes.</summary>
    public int SocketBufferBytes { get; init; } = DataPlaneDefaults.SocketBufferBytes;
    /// <summary>disttrain.data-plane.connect-timeout.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>disttrain.data-plane.max-connections and the hello / read / idle timeouts of every listener.</summary>
    public DataPlaneLimits Limits { get; init; } = DataPlaneLimits.Default;

    /// <summary>This role's listener key (JobDescription.DataKey, DataPlaneKey.ListenerKey of its sender id), set once it has the
    /// job: its listener admits a peer only with the key of the sender id the peer declares.</summary>
    public DataPlaneKey? Key { get; init; }

    private DataPlaneKey ListenerKey => Key ?? throw new InvalidOperationException("The data plane has no listener key yet: a role opens its listener only after it has the job.");

    /// <summary>This actor's data-plane listener, on its slot of the node's port range (or any free port).</summary>
    public DataPlaneServer Listen(IFrameHandler handler) =>
        new(IPAddress.Parse(BindAddress), Port == 0 ? 0 : Port + PortSlot, handler, ListenerKey, MaxFrameBytes, SocketBufferBytes, Limits);

    /// <summary>A connection to a peer's listener with this node's buffer size and connect timeout; <paramref name="key"/> is the
    /// key of <paramref name="senderId"/> toward that listener, as the coordinator handed it out (JobKeys).</summary>
    public DataPlaneClient Connect(string host, int port, int senderId, DataPlaneKey key) =>
        DataPlaneClient.Connect(host, port, senderId, key, ConnectTimeout, SocketBufferBytes);

    /// <summary>256 KB: the cnn preset's 1.6 MB dense-layer gradient leaves during the convolutions' backward, the rest after.</summary>
    public const int DefaultGradientChunkFloats = 1 << 16;

    public static NodeEndpoints Loopback { get; } = new("127.0.0.1", "127.0.0.1", 256L << 20);
}

// Defaults of the data plane shared by the server, the client, the config and the benchmark, so the value
// measured best (docs/benchmarks.md "Transport") is written in one place.
namespace DistTrain.Cluster.DataPlane;

public static class DataPlaneDefaults
{
    /// <summary>
    /// Kernel send/receive buffer per connection (disttrain.data-plane.socket-buffer-bytes). On loopback 256 KiB
    /// (the kernel doubles it) costs less CPU per GB than 8 MiB: bytes the sender copies into the socket are still
    /// in cache when the receiver copies them out, and a 16 MiB tensor on each side plus 16 MiB of socket buffers
    /// no longer overflow the 32 MiB L3. Links with a larger bandwidth-delay product set more (multinode.hocon).
    /// </summary>
    public const int SocketBufferBytes = 256 << 10;
}

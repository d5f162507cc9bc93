// The job's data-plane secret: 32 random bytes the coordinator draws for each run and hands to its shards and
// workers inside the JobDescription, over Akka remoting (mutually authenticated TLS between machines). Every data-plane
// connection proves knowledge of it (DataPlaneAuth); it is never printed, logged or written to a checkpoint.
using System.Security.Cryptography;

namespace DistTrain.Cluster.DataPlane;

public sealed class DataPlaneKey
{
    public const int Bytes = 32;

    private readonly byte[] _bytes;

    private DataPlaneKey(byte[] bytes) => _bytes = bytes;

    /// <summary>A fresh key from the operating system's cryptographic random source.</summary>
    public static DataPlaneKey Create() => new(RandomNumberGenerator.GetBytes(Bytes));

    /// <summary>The key as the JobDescription carries it; a clear error when it is missing or of another length.</summary>
    public static DataPlaneKey FromWire(byte[]? bytes)
    {
        if (bytes is null || bytes.Length == 0)
            throw new ArgumentException("The job carries no data-plane key: the coordinator runs an older DistTrain; run the same version on every node.");
        if (bytes.Length != Bytes)
            throw new ArgumentException($"The job's data-plane key has {bytes.Length} bytes, expected {Bytes}; run the same DistTrain version on every node.");
        return new DataPlaneKey(bytes.ToArray());
    }

    /// <summary>A copy for the JobDescription (the one place the key is allowed to go).</summary>
    public byte[] ToWire() => _bytes.ToArray();

    internal ReadOnlySpan<byte> Span => _bytes;

    public override string ToString() => "DataPlaneKey(32 bytes, not shown)";
}

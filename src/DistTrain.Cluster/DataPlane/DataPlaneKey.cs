// Data-plane secrets: 32 random bytes the coordinator draws for each run (the job key), and the keys derived from it.
// A listener with id L holds its listener key, HMAC-SHA256(job key, "listener" label ‖ L); the sender x of a connection to
// L proves itself with the peer key HMAC-SHA256(listener key of L, "peer" label ‖ x), which only L, x and the coordinator
// hold. So a listener derives the key of any sender id at connect time (no table to keep in step with registrations), and
// a member that was not handed the peer key of (L, x) cannot be x toward L. Keys travel only inside control messages over
// Akka remoting (mutually authenticated TLS between machines); they are never printed, logged or written to a checkpoint.
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace DistTrain.Cluster.DataPlane;

public sealed class DataPlaneKey
{
    public const int Bytes = 32;

    private static readonly byte[] ListenerLabel = Encoding.ASCII.GetBytes("disttrain data plane v5: listener key");
    private static readonly byte[] PeerLabel = Encoding.ASCII.GetBytes("disttrain data plane v5: peer key");

    private readonly byte[] _bytes;

    private DataPlaneKey(byte[] bytes) => _bytes = bytes;

    /// <summary>A fresh job key from the operating system's cryptographic random source.</summary>
    public static DataPlaneKey Create() => new(RandomNumberGenerator.GetBytes(Bytes));

    /// <summary>A key as a control message carries it; a clear error when it is missing or of another length.</summary>
    public static DataPlaneKey FromWire(byte[]? bytes)
    {
        if (bytes is null || bytes.Length == 0)
            throw new ArgumentException("The coordinator sent no data-plane key: it runs an older DistTrain; run the same version on every node.");
        if (bytes.Length != Bytes)
            throw new ArgumentException($"A data-plane key from the coordinator has {bytes.Length} bytes, expected {Bytes}; run the same DistTrain version on every node.");
        return new DataPlaneKey(bytes.ToArray());
    }

    /// <summary>A copy for a control message (the one place a key is allowed to go).</summary>
    public byte[] ToWire() => _bytes.ToArray();

    /// <summary>This job key's key for the listener whose data-plane id is <paramref name="listenerId"/>.</summary>
    public DataPlaneKey ListenerKey(int listenerId) => Derive(ListenerLabel, listenerId);

    /// <summary>This listener key's key for the sender <paramref name="senderId"/>: what that sender proves itself with (DataPlaneAuth).</summary>
    public DataPlaneKey PeerKey(int senderId) => Derive(PeerLabel, senderId);

    private DataPlaneKey Derive(byte[] label, int id)
    {
        Span<byte> input = stackalloc byte[label.Length + 4];
        label.CopyTo(input);
        BinaryPrimitives.WriteInt32LittleEndian(input[label.Length..], id);
        return new DataPlaneKey(HMACSHA256.HashData(_bytes, input));
    }

    internal ReadOnlySpan<byte> Span => _bytes;

    public override string ToString() => "DataPlaneKey(32 bytes, not shown)";
}

// Authentication of a data-plane connection with the pair's key (DataPlaneKey.PeerKey of the listener and the Hello's sender
// id: the listener derives it from its listener key at connect time), at open and on every frame:
//   server → client  challenge: "DTDP", protocol version, flags, 32-byte server nonce
//   client → server  its Hello frame, then a 32-byte client nonce and HMAC-SHA256(key, "client" label, both nonces, sender id, flags)
//   server → client  HMAC-SHA256(key, "server" label, both nonces, sender id, flags): the listener proves it holds the key too,
//                    so a client knows it reached the listener the coordinator named, not another member
// Each side checks the other's proof in constant time; both then derive the connection's frame key from the two nonces.
// A proof is bound to the listener's fresh nonce, so a Hello recorded on one connection is worthless on another.
// Every later frame carries a 16-byte Poly1305 tag (FrameMac, sent after the header) over its length prefix, header and payload, keyed per
// connection and numbered by a frame counter, so a frame injected, altered, replayed or reordered is refused.
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using DistTrain.Cluster.Messages;

namespace DistTrain.Cluster.DataPlane;

public static class DataPlaneAuth
{
    /// <summary>"DTDP" as the first four bytes a listener sends.</summary>
    public static ReadOnlySpan<byte> Magic => "DTDP"u8;
    public const int NonceBytes = 32, ProofBytes = 32;
    /// <summary>Magic, protocol version (int32 LE), flags (int32 LE), server nonce.</summary>
    public const int ChallengeBytes = 4 + 4 + 4 + NonceBytes;
    /// <summary>What follows the client's Hello header: its nonce, then its proof.</summary>
    public const int HelloAuthBytes = NonceBytes + ProofBytes;

    /// <summary>Flag bit: every frame after the Hello carries a FrameMac tag (always, except in `bench transport --auth off`).</summary>
    public const int FlagFrameMac = 1;

    private static readonly byte[] ClientLabel = Encoding.ASCII.GetBytes("disttrain data plane v5: client proof");
    private static readonly byte[] ServerLabel = Encoding.ASCII.GetBytes("disttrain data plane v5: server proof");
    private static readonly byte[] FrameLabel = Encoding.ASCII.GetBytes("disttrain data plane v5: frame key");

    public static int Flags(bool frameMac) => frameMac ? FlagFrameMac : 0;

    public static void WriteChallenge(Span<byte> destination, ReadOnlySpan<byte> serverNonce, int flags)
    {
        Magic.CopyTo(destination);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], WireProtocol.Version);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], flags);
        serverNonce[..NonceBytes].CopyTo(destination[12..]);
    }

    /// <summary>Null when <paramref name="challenge"/> is a listener's challenge of this protocol version with these flags;
    /// else what differs, for the error message.</summary>
    public static string? CheckChallenge(ReadOnlySpan<byte> challenge, int flags)
    {
        if (!challenge[..4].SequenceEqual(Magic)) return "it is not a DistTrain data-plane listener (no DTDP challenge)";
        int version = BinaryPrimitives.ReadInt32LittleEndian(challenge[4..]);
        if (version != WireProtocol.Version) return $"it speaks data-plane protocol {version}, this node {WireProtocol.Version}: run the same DistTrain version on every node";
        int theirs = BinaryPrimitives.ReadInt32LittleEndian(challenge[8..]);
        if (theirs != flags) return $"it expects frame MACs {((theirs & FlagFrameMac) != 0 ? "on" : "off")}, this node {((flags & FlagFrameMac) != 0 ? "on" : "off")}";
        return null;
    }

    public static ReadOnlySpan<byte> ServerNonceOf(ReadOnlySpan<byte> challenge) => challenge.Slice(12, NonceBytes);

    /// <summary>The client's proof: HMAC-SHA256(key, client label ‖ server nonce ‖ client nonce ‖ sender id ‖ flags).</summary>
    public static void ClientProof(DataPlaneKey key, ReadOnlySpan<byte> serverNonce, ReadOnlySpan<byte> clientNonce, int senderId, int flags, Span<byte> proof) =>
        Mac(key.Span, ClientLabel, serverNonce, clientNonce, senderId, flags, proof);

    /// <summary>The listener's proof back: the same inputs under the server label, so a client's proof cannot be echoed as it.</summary>
    public static void ServerProof(DataPlaneKey key, ReadOnlySpan<byte> serverNonce, ReadOnlySpan<byte> clientNonce, int senderId, int flags, Span<byte> proof) =>
        Mac(key.Span, ServerLabel, serverNonce, clientNonce, senderId, flags, proof);

    /// <summary>The frame key of one connection (client → server); fresh for every connection because both nonces are.</summary>
    public static FrameMac FrameMacOf(DataPlaneKey key, ReadOnlySpan<byte> serverNonce, ReadOnlySpan<byte> clientNonce, int senderId, int flags)
    {
        Span<byte> k = stackalloc byte[32];
        Mac(key.Span, FrameLabel, serverNonce, clientNonce, senderId, flags, k);
        var mac = new FrameMac(k);
        CryptographicOperations.ZeroMemory(k);
        return mac;
    }

    private static void Mac(ReadOnlySpan<byte> key, byte[] label, ReadOnlySpan<byte> serverNonce, ReadOnlySpan<byte> clientNonce, int senderId, int flags, Span<byte> output)
    {
        Span<byte> input = stackalloc byte[label.Length + 2 * NonceBytes + 8];
        label.CopyTo(input);
        var rest = input[label.Length..];
        serverNonce[..NonceBytes].CopyTo(rest);
        clientNonce[..NonceBytes].CopyTo(rest[NonceBytes..]);
        BinaryPrimitives.WriteInt32LittleEndian(rest[(2 * NonceBytes)..], senderId);
        BinaryPrimitives.WriteInt32LittleEndian(rest[(2 * NonceBytes + 4)..], flags);
        HMACSHA256.HashData(key, input, output);
    }
}

/// <summary>
/// The tag of each frame on one connection: Poly1305 through ChaCha20-Poly1305 with the frame's length prefix and header
/// as the (encrypted and discarded) plaintext and its payload as associated data, under the connection's frame key and a
/// nonce that is the frame's number on the connection. Poly1305 was measured fastest of the keyed MACs .NET offers here
/// (docs/benchmarks.md "Transport"); one key never sees a nonce twice because the counter only grows. Not thread-safe:
/// the client uses it under its send lock, the listener on the connection's receive thread.
/// </summary>
public sealed class FrameMac : IDisposable
{
    public const int TagBytes = 16;
    private readonly ChaCha20Poly1305 _aead;
    private readonly byte[] _nonce = new byte[12];
    private readonly byte[] _discard = new byte[4 + FrameHeader.MaxEncodedBytes];
    private readonly byte[] _expected = new byte[TagBytes];
    private ulong _counter;

    internal FrameMac(ReadOnlySpan<byte> key)
    {
        if (!ChaCha20Poly1305.IsSupported)
            throw new PlatformNotSupportedException("The data plane authenticates frames with ChaCha20-Poly1305, which this machine's crypto library lacks (Linux needs OpenSSL 1.1 or newer).");
        _aead = new ChaCha20Poly1305(key);
    }

    /// <summary>Frames tagged or checked so far on this connection.</summary>
    public ulong Counter => _counter;

    /// <summary>Tags the next frame: <paramref name="head"/> is its length prefix and header bytes.</summary>
    public void Compute(ReadOnlySpan<byte> head, ReadOnlySpan<byte> payload, Span<byte> tag)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_nonce.AsSpan(4), _counter++);
        _aead.Encrypt(_nonce, head, _discard.AsSpan(0, head.Length), tag[..TagBytes], payload);
    }

    /// <summary>Checks the next frame's tag (constant time); the frame's number is used up either way.</summary>
    public bool Verify(ReadOnlySpan<byte> head, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> tag)
    {
        Compute(head, payload, _expected);
        return CryptographicOperations.FixedTimeEquals(_expected, tag[..TagBytes]);
    }

    /// <summary>A frame that was drained unread (dropped before its payload): its number is used up.</summary>
    public void Skip() => _counter++;

    public void Dispose() => _aead.Dispose();
}

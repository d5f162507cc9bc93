// A data-plane peer written by hand on a raw socket, for tests that play a stranger or a broken peer: it reads the
// listener's challenge, may answer it with a key (or with a wrong proof, or with bytes recorded elsewhere), and
// writes frames byte by byte — with a correct FrameMac tag, a wrong one, or none.
using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DistTrain.Cluster.DataPlane;
using Xunit;

namespace DistTrain.Cluster.Tests;

public sealed class RawDataPlanePeer : IDisposable
{
    public Socket Socket { get; }
    /// <summary>The listener's nonce from its challenge (empty until read).</summary>
    public byte[] ServerNonce { get; private set; } = [];
    /// <summary>The frame MAC of an authenticated connection (null before, or with frame tags off).</summary>
    public FrameMac? Mac { get; private set; }

    private RawDataPlanePeer(Socket socket) => Socket = socket;

    /// <summary>Connects; with <paramref name="readChallenge"/> reads the listener's challenge at once.</summary>
    public static RawDataPlanePeer Connect(int port, bool readChallenge = true) => Connect(new IPEndPoint(IPAddress.Loopback, port), readChallenge);

    /// <summary>Connects to a listener on another host (a namespace on a bridge: the stranger of the multi-host tests).</summary>
    public static RawDataPlanePeer Connect(IPEndPoint listener, bool readChallenge = true, int receiveTimeoutMs = 20_000)
    {
        var s = new Socket(listener.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = receiveTimeoutMs };
        s.Connect(listener);
        var peer = new RawDataPlanePeer(s);
        if (readChallenge) peer.ReadChallenge();
        return peer;
    }

    public void ReadChallenge()
    {
        var challenge = new byte[DataPlaneAuth.ChallengeBytes];
        ReadExactly(challenge);
        Assert.Null(DataPlaneAuth.CheckChallenge(challenge, DataPlaneAuth.FlagFrameMac));
        ServerNonce = DataPlaneAuth.ServerNonceOf(challenge).ToArray();
    }

    /// <summary>The bytes of an authenticated Hello for this connection's challenge: header, client nonce, proof with the key of
    /// <paramref name="sender"/> under the listener key <paramref name="key"/> (as the coordinator would hand it out).</summary>
    public byte[] HelloBytes(int sender, DataPlaneKey key) => HelloWithPeerKey(sender, key.PeerKey(sender));

    /// <summary>As <see cref="HelloBytes"/>, proved with <paramref name="peerKey"/> as given (a key of another sender id, say).</summary>
    public byte[] HelloWithPeerKey(int sender, DataPlaneKey peerKey)
    {
        var nonce = RandomNumberGenerator.GetBytes(DataPlaneAuth.NonceBytes);
        var proof = new byte[DataPlaneAuth.ProofBytes];
        DataPlaneAuth.ClientProof(peerKey, ServerNonce, nonce, sender, DataPlaneAuth.FlagFrameMac, proof);
        return [.. Frame(Hello(sender)), .. nonce, .. proof];
    }

    /// <summary>Answers the challenge with the key of <paramref name="sender"/> under the listener key <paramref name="key"/>, checks
    /// the listener's proof, and keeps the frame MAC.</summary>
    public void Authenticate(int sender, DataPlaneKey key)
    {
        key = key.PeerKey(sender);
        var hello = HelloWithPeerKey(sender, key);
        Socket.Send(hello);
        var nonce = hello.AsSpan(hello.Length - DataPlaneAuth.HelloAuthBytes, DataPlaneAuth.NonceBytes);
        var theirs = new byte[DataPlaneAuth.ProofBytes];
        ReadExactly(theirs);
        var expected = new byte[DataPlaneAuth.ProofBytes];
        DataPlaneAuth.ServerProof(key, ServerNonce, nonce, sender, DataPlaneAuth.FlagFrameMac, expected);
        Assert.Equal(expected, theirs);
        Mac = DataPlaneAuth.FrameMacOf(key, ServerNonce, nonce, sender, DataPlaneAuth.FlagFrameMac);
    }

    public static FrameHeader Hello(int sender) => new(FrameKind.Hello, 0, 0, 0, 0, 0, 0, 0, sender);

    /// <summary>Prefix, header and payload bytes as a peer writes them; <paramref name="prefix"/> overrides the length prefix.</summary>
    public static byte[] Frame(FrameHeader h, ReadOnlySpan<byte> payload = default, int? prefix = null)
    {
        var w = new ArrayBufferWriter<byte>();
        h.Write(w);
        var bytes = new byte[4 + w.WrittenCount + payload.Length];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, prefix ?? w.WrittenCount);
        w.WrittenSpan.CopyTo(bytes.AsSpan(4));
        payload.CopyTo(bytes.AsSpan(4 + w.WrittenCount));
        return bytes;
    }

    /// <summary>A frame with the tag of this connection's next frame (computed over <paramref name="tagged"/> when given: the
    /// payload as it was before someone changed it on the way).</summary>
    public byte[] Tagged(FrameHeader h, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> tagged = default, int? prefix = null)
    {
        var head = Frame(h, default, prefix);
        var tag = new byte[FrameMac.TagBytes];
        Mac!.Compute(head, tagged.IsEmpty ? payload : tagged, tag);
        return WithTag(head, tag, payload);
    }

    /// <summary>A frame on the wire: length prefix and header (<paramref name="head"/>), tag, payload.</summary>
    public static byte[] WithTag(byte[] head, ReadOnlySpan<byte> tag, ReadOnlySpan<byte> payload) => [.. head, .. tag, .. payload];

    public byte[] Tagged(FrameHeader h, float[] payload) => Tagged(h, MemoryMarshal.AsBytes(payload.AsSpan()));

    public void Send(byte[] bytes) => Socket.Send(bytes);

    public void ReadExactly(Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int n = Socket.Receive(buffer);
            if (n == 0) throw new IOException("the listener closed the connection");
            buffer = buffer[n..];
        }
    }

    /// <summary>The listener hangs up (end of stream or a reset) within the socket's receive timeout.</summary>
    public void AssertClosedByServer()
    {
        try { Assert.Equal(0, Socket.Receive(new byte[16])); }
        catch (SocketException e) { Assert.Equal(SocketError.ConnectionReset, e.SocketErrorCode); }
    }

    /// <summary>
    /// The listener's half of the handshake on one connection accepted from <paramref name="listener"/>: challenge, check the
    /// client's proof, answer with the listener's proof under <paramref name="key"/> (or 32 random bytes, as a stranger
    /// that cannot prove it would). The socket is returned open and is never read again.
    /// </summary>
    public static Task<Socket> ListenOnce(System.Net.Sockets.TcpListener listener, DataPlaneKey? key, bool proveWithKey = true) => Task.Run(() =>
    {
        var s = listener.AcceptSocket();
        s.ReceiveTimeout = 20_000;
        var nonce = RandomNumberGenerator.GetBytes(DataPlaneAuth.NonceBytes);
        var challenge = new byte[DataPlaneAuth.ChallengeBytes];
        DataPlaneAuth.WriteChallenge(challenge, nonce, DataPlaneAuth.FlagFrameMac);
        s.Send(challenge);
        var peer = new RawDataPlanePeer(s);
        var length = new byte[4];
        peer.ReadExactly(length);
        var header = new byte[BinaryPrimitives.ReadInt32LittleEndian(length)];
        peer.ReadExactly(header);
        var sender = FrameHeader.Read(header).SenderId;
        var auth = new byte[DataPlaneAuth.HelloAuthBytes];
        peer.ReadExactly(auth);
        var proof = RandomNumberGenerator.GetBytes(DataPlaneAuth.ProofBytes);
        if (proveWithKey && key is not null)
            DataPlaneAuth.ServerProof(key.PeerKey(sender), nonce, auth.AsSpan(0, DataPlaneAuth.NonceBytes), sender, DataPlaneAuth.FlagFrameMac, proof);
        s.Send(proof);
        return s;
    });

    public void Dispose()
    {
        Socket.Dispose();
        Mac?.Dispose();
    }
}

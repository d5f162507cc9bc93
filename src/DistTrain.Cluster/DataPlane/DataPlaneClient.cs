// Sending side of the data plane: one TCP connection to a peer's DataPlaneServer. Connect answers the listener's
// challenge with the key of its sender id toward that listener (DataPlaneKey.PeerKey) and checks the listener's proof (DataPlaneAuth); Send writes the header, the floats
// straight from the caller's span (no copy, no allocation) and the frame's tag (FrameMac); thread-safe.
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace DistTrain.Cluster.DataPlane;

public sealed class DataPlaneClient : IDisposable
{
    private readonly Socket _socket;
    private readonly Lock _sendLock = new();
    private readonly ArrayBufferWriter<byte> _header = new(FrameHeader.MaxEncodedBytes);
    private readonly byte[] _prefix = new byte[4 + FrameHeader.MaxEncodedBytes + FrameMac.TagBytes];
    private readonly FrameMac? _mac;
    private volatile bool _closed;

    private DataPlaneClient(Socket socket, int senderId, string peer, FrameMac? mac)
    {
        _socket = socket;
        SenderId = senderId;
        Peer = peer;
        _mac = mac;
    }

    /// <summary>This side's id, written into every header.</summary>
    public int SenderId { get; }

    /// <summary>host:port of the peer, for messages.</summary>
    public string Peer { get; }

    public bool IsClosed => _closed;

    public long BytesSent { get; private set; }

    /// <summary>Default bound on one blocked send: a peer behind a cut link stops taking bytes without closing.</summary>
    public static readonly TimeSpan DefaultSendTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Connects to a peer's data plane and introduces itself as <paramref name="senderId"/>, proving it holds
    /// <paramref name="key"/> (the listener's DataPlaneKey.PeerKey for this sender, handed out by the coordinator) and checking
    /// that the listener does too; fails with a clear <see cref="IOException"/> after <paramref name="timeout"/>, or when
    /// either proof fails (the peer runs another job, is another node than the one named, or is not a DistTrain listener). A later <see cref="Send"/> that cannot hand its bytes to the kernel for <paramref name="sendTimeout"/> (default
    /// <see cref="DefaultSendTimeout"/>) fails with an IOException and closes the connection, so a cut link never blocks the sender for good.</summary>
    /// <param name="frameMac">Tag every frame (FrameMac); off only for `bench transport --auth off`, and the listener must agree.</param>
    public static DataPlaneClient Connect(string host, int port, int senderId, DataPlaneKey key, TimeSpan timeout,
        int socketBufferBytes = DataPlaneDefaults.SocketBufferBytes, TimeSpan? sendTimeout = null, bool frameMac = true)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        if (port is <= 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), port, "data-plane port must be 1..65535.");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("The data plane sends raw little-endian floats; this machine is big-endian.");
        var addresses = IPAddress.TryParse(host, out var ip) ? [ip] : Dns.GetHostAddresses(host);
        var address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new IOException($"Data plane: host '{host}' has no address.");
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        var timedOut = false;
        try
        {
            SocketIo.Configure(socket, socketBufferBytes);
            socket.SendTimeout = (int)Math.Clamp((sendTimeout ?? DefaultSendTimeout).TotalMilliseconds, 1, int.MaxValue);
            // A blocking connect, cut short by a timer: any async call would switch the socket to non-blocking mode
            // for good on Unix, and every later Send that finds the kernel buffer full would then allocate.
            using var timer = new Timer(_ => { timedOut = true; socket.Dispose(); }, null, timeout, Timeout.InfiniteTimeSpan);
            socket.Connect(new IPEndPoint(address, port));
        }
        catch (Exception e)
        {
            socket.Dispose();
            var why = timedOut ? $"no answer within {timeout.TotalSeconds:0.#}s" : e.Message;
            throw new IOException($"Data plane: cannot connect to {host}:{port} ({why}); is the peer's data-plane port reachable?", e);
        }
        var peer = $"{host}:{port}";
        try { return new DataPlaneClient(socket, senderId, peer, Authenticate(socket, key, senderId, DataPlaneAuth.Flags(frameMac), timeout, peer)); }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The client's half of the handshake (DataPlaneAuth): read the challenge, send Hello + nonce + proof, check the
    /// listener's proof. Returns the connection's frame MAC (null when frame MACs are off).</summary>
    private static FrameMac? Authenticate(Socket socket, DataPlaneKey key, int senderId, int flags, TimeSpan timeout, string peer)
    {
        socket.ReceiveTimeout = (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
        var challenge = new byte[DataPlaneAuth.ChallengeBytes];
        var clientNonce = RandomNumberGenerator.GetBytes(DataPlaneAuth.NonceBytes);
        var theirs = new byte[DataPlaneAuth.ProofBytes];
        try
        {
            if (!SocketIo.ReadExactly(socket, challenge))
                throw new IOException($"Data plane: {peer} closed the connection before its challenge; is it a DistTrain data-plane port of this version?");
            if (DataPlaneAuth.CheckChallenge(challenge, flags) is { } why) throw new IOException($"Data plane: {peer} cannot be used: {why}.");
            var serverNonce = DataPlaneAuth.ServerNonceOf(challenge);
            var header = new ArrayBufferWriter<byte>(FrameHeader.MaxEncodedBytes);
            new FrameHeader(FrameKind.Hello, 0, 0, 0, 0, 0, 0, 0, senderId).Write(header);
            var hello = new byte[4 + header.WrittenCount + DataPlaneAuth.HelloAuthBytes];
            BinaryPrimitives.WriteInt32LittleEndian(hello, header.WrittenCount);
            header.WrittenSpan.CopyTo(hello.AsSpan(4));
            var auth = hello.AsSpan(4 + header.WrittenCount);
            clientNonce.CopyTo(auth);
            DataPlaneAuth.ClientProof(key, serverNonce, clientNonce, senderId, flags, auth[DataPlaneAuth.NonceBytes..]);
            SocketIo.WriteAll(socket, hello);
            if (!SocketIo.ReadExactly(socket, theirs))
                throw new IOException($"Data plane: {peer} refused this node's proof of its data-plane key as sender {senderId} and closed the connection: " +
                                      "it serves another job (or an earlier run of this one), or the coordinator never gave this node that sender's key.");
            Span<byte> expected = stackalloc byte[DataPlaneAuth.ProofBytes];
            DataPlaneAuth.ServerProof(key, serverNonce, clientNonce, senderId, flags, expected);
            if (!CryptographicOperations.FixedTimeEquals(expected, theirs))
                throw new IOException($"Data plane: {peer} did not prove it holds this connection's data-plane key (it is not the listener the coordinator named); nothing is sent to it.");
            socket.ReceiveTimeout = 0; // the client only writes from now on
            return (flags & DataPlaneAuth.FlagFrameMac) != 0 ? DataPlaneAuth.FrameMacOf(key, serverNonce, clientNonce, senderId, flags) : null;
        }
        catch (SocketException e)
        {
            var why = e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock ? $"no answer within {timeout.TotalSeconds:0.#}s" : e.Message;
            throw new IOException($"Data plane: authenticating to {peer} failed ({why}).", e);
        }
    }

    /// <summary>
    /// Sends one frame: <paramref name="header"/> with Length, Checksum and SenderId filled in from <paramref name="payload"/>.
    /// Blocks until the bytes are in the kernel's buffer. Throws <see cref="IOException"/> if the connection is closed or fails.
    /// </summary>
    public void Send(FrameHeader header, ReadOnlySpan<float> payload) => Send(header, payload, Checksum(payload));

    /// <summary>
    /// As <see cref="Send(FrameHeader, ReadOnlySpan{float})"/> with the payload's <see cref="Checksum"/> computed by the caller:
    /// a PS shard pushes the same values to every worker and hashes them once.
    /// </summary>
    public void Send(FrameHeader header, ReadOnlySpan<float> payload, ulong checksum) =>
        SendRaw(header with { Length = payload.Length, Checksum = checksum, SenderId = SenderId }, MemoryMarshal.AsBytes(payload));

    /// <summary>Sends a compressed gradient frame: <paramref name="header"/> keeps its Length (the values encoded) and gets the
    /// Checksum of the <paramref name="encoded"/> bytes (GradientCodec.Encode) and SenderId.</summary>
    public void SendEncoded(FrameHeader header, ReadOnlySpan<byte> encoded) =>
        SendRaw(header with { Checksum = encoded.IsEmpty ? 0UL : XxHash3.HashToUInt64(encoded), SenderId = SenderId }, encoded);

    /// <summary>The checksum a frame header carries for <paramref name="payload"/> (XxHash3 of its bytes; 0 when empty).</summary>
    public static ulong Checksum(ReadOnlySpan<float> payload) =>
        payload.IsEmpty ? 0UL : XxHash3.HashToUInt64(MemoryMarshal.AsBytes(payload));

    /// <summary>Sends a header and payload exactly as given, with the frame's tag (tests use it to send a wrong checksum or length).</summary>
    public void SendRaw(in FrameHeader header, ReadOnlySpan<byte> payload)
    {
        lock (_sendLock)
        {
            if (_closed) throw new IOException($"Data plane connection to {Peer} is closed.");
            try
            {
                _header.ResetWrittenCount();
                header.Write(_header);
                var n = _header.WrittenCount;
                BinaryPrimitives.WriteInt32LittleEndian(_prefix, n);
                _header.WrittenSpan.CopyTo(_prefix.AsSpan(4));
                // The tag goes out with the header, in the same write: a separate small write after the payload made a
                // gated worker wait for it on every frame (measured: cnn steps at about half the rate).
                var head = 4 + n;
                if (_mac is not null)
                {
                    _mac.Compute(_prefix.AsSpan(0, head), payload, _prefix.AsSpan(head, FrameMac.TagBytes));
                    head += FrameMac.TagBytes;
                }
                SocketIo.WriteAll(_socket, _prefix.AsSpan(0, head));
                SocketIo.WriteAll(_socket, payload);
                BytesSent += head + payload.Length;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                _closed = true;
                throw new IOException($"Data plane connection to {Peer} failed while sending {header}: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Blocks until the peer closes the connection or it fails. A listener never writes after the handshake, so this returns
    /// when the peer's process (or its socket) is gone, or when this side closes it: a liveness watch, on its own thread.
    /// </summary>
    public void WaitUntilPeerCloses()
    {
        var one = new byte[1];
        try { while (_socket.Receive(one) > 0) { } }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
    }

    /// <summary>Closes the connection (the peer left); a Send in progress on another thread fails with an IOException.</summary>
    public void Close()
    {
        _closed = true;
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception) { /* already closed */ }
        _socket.Dispose();
        // A send blocked on a cut link holds the lock until the disposed socket fails it; its MAC is then left to the finalizer.
        if (_sendLock.TryEnter())
        {
            try { _mac?.Dispose(); }
            finally { _sendLock.Exit(); }
        }
    }

    public void Dispose() => Close();
}

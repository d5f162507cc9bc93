// Data-plane listener (DESIGN.md contract 6): accepts TCP connections from peers, runs one blocking
// receive thread per connection, and receives each frame's floats directly into a span the handler
// gives (MemoryMarshal.AsBytes) — no copy and no allocation per frame. Bad frames are counted, never applied.
// A connection must open with the authenticated Hello (DataPlaneAuth: the peer proves it holds the key of its declared sender
// id toward this listener, derived here from the listener key, and this listener proves it back) and every later frame must carry the Hello's sender id and a valid FrameMac tag;
// connections, silences and half-sent frames are bounded by DataPlaneLimits, and nothing is allocated from a header's length.
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.DataPlane;

public sealed class DataPlaneServer : IDisposable
{
    private readonly Socket _listener;
    private readonly IFrameHandler _handler;
    private readonly long _maxFrameBytes;
    private readonly int _bufferBytes;
    private readonly DataPlaneLimits _limits;
    private readonly DataPlaneKey _key;
    private readonly int _flags;
    private readonly Lock _gate = new();
    private readonly List<Connection> _connections = [];
    private readonly Thread _acceptThread;
    private volatile bool _disposed;

    /// <param name="bind">Address to listen on (IPAddress.Loopback, IPAddress.Any, ...).</param>
    /// <param name="port">Port; 0 = any free port (see <see cref="Port"/>).</param>
    /// <param name="maxFrameBytes">Largest payload applied; larger frames are drained and counted as <see cref="DropReason.Oversized"/>.</param>
    /// <param name="key">This listener's key (DataPlaneKey.ListenerKey): only a peer that proves it holds the peer key of the sender id
    /// its Hello declares (key.PeerKey(sender)) gets a frame to the handler.</param>
    /// <param name="limits">Connection count and timeouts (disttrain.data-plane.*); null = <see cref="DataPlaneLimits.Default"/>.</param>
    /// <param name="frameMac">Require a FrameMac tag on every frame; off only for `bench transport --auth off` (clients must agree).</param>
    public DataPlaneServer(IPAddress bind, int port, IFrameHandler handler, DataPlaneKey key, long maxFrameBytes = 256L << 20,
        int socketBufferBytes = DataPlaneDefaults.SocketBufferBytes, DataPlaneLimits? limits = null, bool frameMac = true)
    {
        ArgumentNullException.ThrowIfNull(bind);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        _flags = DataPlaneAuth.Flags(frameMac);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("The data plane sends raw little-endian floats; this machine is big-endian.");
        if (maxFrameBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxFrameBytes), maxFrameBytes, "max frame bytes must be positive (disttrain.data-plane.max-frame-bytes).");
        _handler = handler;
        _maxFrameBytes = maxFrameBytes;
        _bufferBytes = socketBufferBytes;
        _limits = limits ?? DataPlaneLimits.Default;
        if (_limits.MaxConnections < 1)
            throw new ArgumentOutOfRangeException(nameof(limits), _limits.MaxConnections, "disttrain.data-plane.max-connections must be at least 1.");
        _listener = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(new IPEndPoint(bind, port));
            _listener.Listen(64);
        }
        catch (SocketException e)
        {
            _listener.Dispose();
            throw new IOException($"Data plane cannot listen on {bind}:{port} ({e.SocketErrorCode}); choose another disttrain.data-plane.port or 0 for any free port.", e);
        }
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _acceptThread = new Thread(AcceptLoop) { IsBackground = true, Name = $"dataplane-accept:{Port}" };
        _acceptThread.Start();
    }

    public int Port { get; }

    public DataPlaneStats Stats { get; } = new();

    /// <summary>Peers (sender ids from their Hello frames) with at least one open connection.</summary>
    public int[] ConnectedPeers()
    {
        lock (_gate) return _connections.Where(c => c.PeerId is not null).Select(c => c.PeerId!.Value).Distinct().Order().ToArray();
    }

    /// <summary>Closes every connection from <paramref name="peerId"/> (the peer left the cluster); a frame in flight is dropped.</summary>
    public int Close(int peerId)
    {
        Connection[] victims;
        lock (_gate) victims = _connections.Where(c => c.PeerId == peerId).ToArray();
        foreach (var c in victims) c.Close();
        return victims.Length;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _listener.Dispose();
        Connection[] all;
        lock (_gate) all = _connections.ToArray();
        foreach (var c in all) c.Close();
        foreach (var c in all) c.Join();
        _acceptThread.Join(TimeSpan.FromSeconds(5));
    }

    private void AcceptLoop()
    {
        while (!_disposed)
        {
            Socket s;
            try { s = _listener.Accept(); }
            catch (Exception) when (_disposed) { return; }
            catch (SocketException) { continue; }
            SocketIo.Configure(s, _bufferBytes);
            Connection? c = null, evicted = null;
            lock (_gate)
            {
                if (_disposed) { s.Dispose(); return; }
                // At the bound, the oldest connection that has not proved its key yet makes room: strangers who fill
                // every slot with silent connections then only evict each other, and a peer's new connection still gets in.
                if (_connections.Count >= _limits.MaxConnections && _connections.FirstOrDefault(x => x.PeerId is null) is { } oldest)
                {
                    _connections.Remove(oldest);
                    evicted = oldest;
                }
                if (_connections.Count < _limits.MaxConnections) _connections.Add(c = new Connection(this, s));
            }
            if (evicted is not null) { Stats.Refuse(); evicted.Close(); }
            if (c is null)
            {
                // Each connection holds a thread: past the bound, with every slot held by an authenticated peer, a newcomer
                // is closed at once rather than starving the machine.
                Stats.Refuse();
                s.Dispose();
                continue;
            }
            c.Start();
        }
    }

    private void Remove(Connection c)
    {
        lock (_gate) _connections.Remove(c);
    }

    private sealed class Connection(DataPlaneServer server, Socket socket)
    {
        private Thread? _loop;
        private readonly byte[] _header = new byte[4 + FrameHeader.MaxEncodedBytes]; // length prefix + header: what a FrameMac tag covers
        private readonly byte[] _scratch = new byte[64 * 1024];
        private byte[] _staging = [];
        private readonly byte[] _tag = new byte[FrameMac.TagBytes];
        private readonly XxHash3 _hash = new();
        private FrameMac? _mac;
        private const int HashSliceBytes = 256 * 1024; // fits L2 on both machine kinds
        private int _timeoutMs = -1;
        public int? PeerId { get; private set; }
        private bool _announced; // the handler heard OnPeerConnected: it hears OnPeerDisconnected too

        public void Start()
        {
            _loop = new Thread(Run, DataPlaneLimits.ReceiveThreadStackBytes) { IsBackground = true, Name = $"dataplane-recv:{socket.RemoteEndPoint}" };
            _loop.Start();
        }

        public void Close()
        {
            try { socket.Shutdown(SocketShutdown.Both); } catch (Exception) { /* already closed */ }
            socket.Dispose();
        }

        public void Join() => _loop?.Join(TimeSpan.FromSeconds(5));

        private void Run()
        {
            FrameHeader header = default;
            var rented = false; // the current frame's payload is going into the handler's span: losing it frees the slot
            var limits = server._limits;
            try
            {
                // Nothing a peer sends reaches the handler before it has proved it holds its sender id's key.
                if (!Authenticate()) return;
                Span<byte> lenBytes = _header.AsSpan(0, 4);
                while (true)
                {
                    rented = false;
                    // Between frames: wait up to the idle timeout (0 = forever).
                    SetTimeout(limits.IdleTimeout);
                    var n = socket.Receive(lenBytes, SocketFlags.None);
                    if (n == 0) return;
                    // Inside a frame: every gap is bounded by the read timeout.
                    SetTimeout(limits.ReadTimeout);
                    if (!ReadHeader(lenBytes, n, out header, out var headerLength)) return;
                    // One Hello per connection: a second one would change who the frames are from.
                    if (header.Kind == FrameKind.Hello) { server.Stats.Drop(DropReason.Malformed); return; }
                    // The stream cannot be trusted past a frame that is not from the connection's sender: close it.
                    if (PeerId != header.SenderId) { server.Stats.Drop(DropReason.WrongSender); return; }
                    if (!ReceiveFrame(header, 4 + headerLength, ref rented)) { if (rented) Lost(header); return; }
                }
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                server.Stats.TimeOut();
                if (rented) Lost(header);
            }
            catch (Exception)
            {
                // Socket closed (Close(peerId), Dispose, or the peer died): a frame in flight frees its slot.
                if (rented) Lost(header);
            }
            finally
            {
                socket.Dispose();
                _mac?.Dispose();
                server.Remove(this);
                if (_announced && PeerId is { } id) server._handler.OnPeerDisconnected(id);
            }
        }

        /// <summary>Reads the rest of a length prefix (<paramref name="have"/> bytes of it are in) and the header after it into
        /// _header; false when the connection ended or the frame is malformed (counted; the connection is then closed).</summary>
        private bool ReadHeader(Span<byte> lenBytes, int have, out FrameHeader header, out int headerLength)
        {
            header = default;
            headerLength = 0;
            if (!SocketIo.ReadExactly(socket, lenBytes[have..])) return false;
            headerLength = BinaryPrimitives.ReadInt32LittleEndian(lenBytes);
            if (headerLength <= 0 || headerLength > FrameHeader.MaxEncodedBytes) { server.Stats.Drop(DropReason.Malformed); return false; }
            if (!SocketIo.ReadExactly(socket, _header.AsSpan(4, headerLength))) return false;
            try { header = FrameHeader.Read(_header.AsMemory(4, headerLength)); }
            catch (Exception) { server.Stats.Drop(DropReason.Malformed); return false; }
            return true;
        }

        /// <summary>
        /// The listener's half of the handshake (DataPlaneAuth), all within the Hello timeout: send the challenge, read the
        /// Hello frame with the peer's nonce and proof, check the proof, send this listener's proof. False closes the
        /// connection; a wrong proof is counted as <see cref="DropReason.Unauthenticated"/>.
        /// </summary>
        private bool Authenticate()
        {
            var timeout = server._limits.HelloTimeout;
            SetTimeout(timeout);
            socket.SendTimeout = _timeoutMs;
            Span<byte> challenge = stackalloc byte[DataPlaneAuth.ChallengeBytes];
            Span<byte> serverNonce = stackalloc byte[DataPlaneAuth.NonceBytes];
            RandomNumberGenerator.Fill(serverNonce);
            DataPlaneAuth.WriteChallenge(challenge, serverNonce, server._flags);
            SocketIo.WriteAll(socket, challenge);

            Span<byte> lenBytes = _header.AsSpan(0, 4);
            var n = socket.Receive(lenBytes, SocketFlags.None);
            if (n == 0) return false;
            if (!ReadHeader(lenBytes, n, out var hello, out _)) return false;
            // A data frame before the Hello has no sender yet; a Hello with a payload is not a Hello.
            if (hello.Kind != FrameKind.Hello) { server.Stats.Drop(DropReason.WrongSender); return false; }
            if (hello.Length != 0) { server.Stats.Drop(DropReason.Malformed); return false; }

            Span<byte> auth = stackalloc byte[DataPlaneAuth.HelloAuthBytes];
            if (!SocketIo.ReadExactly(socket, auth)) { server.Stats.Drop(DropReason.Unauthenticated); return false; }
            var clientNonce = auth[..DataPlaneAuth.NonceBytes];
            // The key of the sender id the Hello declares: a member that was not handed it cannot be that sender here.
            var key = server._key.PeerKey(hello.SenderId);
            Span<byte> expected = stackalloc byte[DataPlaneAuth.ProofBytes];
            DataPlaneAuth.ClientProof(key, serverNonce, clientNonce, hello.SenderId, server._flags, expected);
            if (!CryptographicOperations.FixedTimeEquals(expected, auth[DataPlaneAuth.NonceBytes..])) { server.Stats.Drop(DropReason.Unauthenticated); return false; }

            DataPlaneAuth.ServerProof(key, serverNonce, clientNonce, hello.SenderId, server._flags, expected);
            if ((server._flags & DataPlaneAuth.FlagFrameMac) != 0)
                _mac = DataPlaneAuth.FrameMacOf(key, serverNonce, clientNonce, hello.SenderId, server._flags);
            // Authenticated from here: never evicted at the connection bound, and named by ConnectedPeers before the peer
            // hears the proof back (a peer that returned from its handshake is always seen).
            PeerId = hello.SenderId;
            SocketIo.WriteAll(socket, expected);
            socket.SendTimeout = 0; // the listener sends nothing more
            server._handler.OnPeerConnected(hello.SenderId);
            _announced = true;
            return true;
        }

        /// <summary>Sets the socket's receive timeout when it changes (0 = none); no allocation.</summary>
        private void SetTimeout(TimeSpan t)
        {
            var ms = t <= TimeSpan.Zero ? 0 : (int)Math.Clamp(t.TotalMilliseconds, 1, int.MaxValue);
            if (ms == _timeoutMs) return;
            socket.ReceiveTimeout = ms;
            _timeoutMs = ms;
        }

        private void Lost(in FrameHeader header)
        {
            server.Stats.Drop(DropReason.ConnectionLost);
            server._handler.OnDropped(header, DropReason.ConnectionLost);
        }

        /// <summary>One data frame after its header (<paramref name="head"/> bytes of prefix and header in _header); false if the
        /// connection ended mid-frame or must be closed (a bad tag). <paramref name="rented"/> is true while the payload is being
        /// received into the handler's span (only then does a lost connection concern the handler: a dropped frame being drained
        /// never had a slot).</summary>
        private bool ReceiveFrame(in FrameHeader header, int head, ref bool rented)
        {
            // The tag travels between the header and the payload (DataPlaneClient.SendRaw); read before Rent takes a slot.
            if (_mac is not null && !SocketIo.ReadExactly(socket, _tag)) return false;
            DropReason? reason = null;
            Span<float> destination = default;
            if (header.PayloadBytes > server._maxFrameBytes) reason = DropReason.Oversized;
            else
            {
                reason = server._handler.Rent(header, out destination);
                if (reason is null && destination.Length != header.Length) reason = DropReason.WrongLength;
            }
            if (reason is { } r)
            {
                // Drained unread, so its tag is not checked; the frame's number on the connection is used up all the same.
                server.Stats.Drop(r);
                server._handler.OnDropped(header, r);
                _mac?.Skip();
                return SocketIo.Drain(socket, header.PayloadBytes, _scratch);
            }

            // Hash each slice right after it lands, while it is still in cache, instead of re-reading the whole
            // frame from memory afterwards; the streaming XxHash3 equals the sender's one-shot hash.
            rented = true;
            // A compressed gradient lands in the connection's staging buffer and is decoded into the span once verified;
            // the buffer grows only to what the handler accepted (Rent checked the length against its range).
            var encoded = header.Encoding != GradientCompression.None;
            if (encoded && _staging.Length < header.PayloadBytes) _staging = new byte[header.PayloadBytes];
            var payload = encoded ? _staging.AsSpan(0, (int)header.PayloadBytes) : MemoryMarshal.AsBytes(destination);
            var bytes = payload;
            _hash.Reset();
            while (bytes.Length > 0)
            {
                var slice = bytes[..Math.Min(bytes.Length, HashSliceBytes)];
                if (!SocketIo.ReadExactly(socket, slice)) return false;
                _hash.Append(slice);
                bytes = bytes[slice.Length..];
            }
            if (_mac is not null)
            {
                rented = false;
                // A frame altered or injected on this connection: refuse it and close, the stream past it cannot be trusted.
                if (!_mac.Verify(_header.AsSpan(0, head), payload, _tag))
                {
                    server.Stats.Drop(DropReason.BadMac);
                    server._handler.OnDropped(header, DropReason.BadMac);
                    return false;
                }
            }
            rented = false;
            if (_hash.GetCurrentHashAsUInt64() != header.Checksum)
            {
                server.Stats.Drop(DropReason.BadChecksum);
                server._handler.OnDropped(header, DropReason.BadChecksum);
                return true;
            }
            if (encoded) GradientCodec.Decode(header.Encoding, header.Offset, payload, destination);
            server.Stats.Received(header.PayloadBytes);
            server._handler.OnFrame(header, destination);
            return true;
        }
    }
}

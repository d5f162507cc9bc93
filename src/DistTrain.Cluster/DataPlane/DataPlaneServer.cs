// Data-plane listener (DESIGN.md contract 6): accepts TCP connections from peers, runs one blocking
// receive thread per connection, and receives each frame's floats directly into a span the handler
// gives (MemoryMarshal.AsBytes) — no copy and no allocation per frame. Bad frames are counted, never applied.
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace DistTrain.Cluster.DataPlane;

public sealed class DataPlaneServer : IDisposable
{
    private readonly Socket _listener;
    private readonly IFrameHandler _handler;
    private readonly long _maxFrameBytes;
    private readonly int _bufferBytes;
    private readonly Lock _gate = new();
    private readonly List<Connection> _connections = [];
    private readonly Thread _acceptThread;
    private volatile bool _disposed;

    /// <param name="bind">Address to listen on (IPAddress.Loopback, IPAddress.Any, ...).</param>
    /// <param name="port">Port; 0 = any free port (see <see cref="Port"/>).</param>
    /// <param name="maxFrameBytes">Largest payload applied; larger frames are drained and counted as <see cref="DropReason.Oversized"/>.</param>
    public DataPlaneServer(IPAddress bind, int port, IFrameHandler handler, long maxFrameBytes = 256L << 20, int socketBufferBytes = DataPlaneDefaults.SocketBufferBytes)
    {
        ArgumentNullException.ThrowIfNull(bind);
        ArgumentNullException.ThrowIfNull(handler);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("The data plane sends raw little-endian floats; this machine is big-endian.");
        if (maxFrameBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxFrameBytes), maxFrameBytes, "max frame bytes must be positive (disttrain.data-plane.max-frame-bytes).");
        _handler = handler;
        _maxFrameBytes = maxFrameBytes;
        _bufferBytes = socketBufferBytes;
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
            var c = new Connection(this, s);
            lock (_gate)
            {
                if (_disposed) { s.Dispose(); return; }
                _connections.Add(c);
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
        private readonly byte[] _header = new byte[FrameHeader.MaxEncodedBytes];
        private readonly byte[] _scratch = new byte[64 * 1024];
        private readonly XxHash3 _hash = new();
        private const int HashSliceBytes = 256 * 1024; // fits L2 on both machine kinds
        public int? PeerId { get; private set; }

        public void Start()
        {
            _loop = new Thread(Run) { IsBackground = true, Name = $"dataplane-recv:{socket.RemoteEndPoint}" };
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
            var inFrame = false;
            try
            {
                Span<byte> lenBytes = stackalloc byte[4];
                while (true)
                {
                    inFrame = false;
                    if (!SocketIo.ReadExactly(socket, lenBytes)) return;
                    var headerLength = BinaryPrimitives.ReadInt32LittleEndian(lenBytes);
                    if (headerLength <= 0 || headerLength > FrameHeader.MaxEncodedBytes) { server.Stats.Drop(DropReason.Malformed); return; }
                    if (!SocketIo.ReadExactly(socket, _header.AsSpan(0, headerLength))) return;
                    try { header = FrameHeader.Read(_header.AsMemory(0, headerLength)); }
                    catch (Exception) { server.Stats.Drop(DropReason.Malformed); return; }
                    inFrame = true;

                    if (header.Kind == FrameKind.Hello)
                    {
                        if (header.Length != 0) { server.Stats.Drop(DropReason.Malformed); return; }
                        PeerId = header.SenderId;
                        server._handler.OnPeerConnected(header.SenderId);
                        continue;
                    }
                    if (!ReceiveFrame(header)) { Lost(header); return; }
                }
            }
            catch (Exception) when (inFrame)
            {
                Lost(header);
            }
            catch (Exception)
            {
                // Socket closed between frames (Close(peerId), Dispose, or the peer died): nothing in flight.
            }
            finally
            {
                socket.Dispose();
                server.Remove(this);
                if (PeerId is { } id) server._handler.OnPeerDisconnected(id);
            }
        }

        private void Lost(in FrameHeader header)
        {
            server.Stats.Drop(DropReason.ConnectionLost);
            server._handler.OnDropped(header, DropReason.ConnectionLost);
        }

        /// <summary>One data frame after its header; false if the connection ended mid-frame.</summary>
        private bool ReceiveFrame(in FrameHeader header)
        {
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
                server.Stats.Drop(r);
                server._handler.OnDropped(header, r);
                return SocketIo.Drain(socket, header.PayloadBytes, _scratch);
            }

            // Hash each slice right after it lands, while it is still in cache, instead of re-reading the whole
            // frame from memory afterwards; the streaming XxHash3 equals the sender's one-shot hash.
            var bytes = MemoryMarshal.AsBytes(destination);
            _hash.Reset();
            while (bytes.Length > 0)
            {
                var slice = bytes[..Math.Min(bytes.Length, HashSliceBytes)];
                if (!SocketIo.ReadExactly(socket, slice)) return false;
                _hash.Append(slice);
                bytes = bytes[slice.Length..];
            }
            if (_hash.GetCurrentHashAsUInt64() != header.Checksum)
            {
                server.Stats.Drop(DropReason.BadChecksum);
                server._handler.OnDropped(header, DropReason.BadChecksum);
                return true;
            }
            server.Stats.Received(header.PayloadBytes);
            server._handler.OnFrame(header, destination);
            return true;
        }
    }
}

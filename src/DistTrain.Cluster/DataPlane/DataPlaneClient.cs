// Sending side of the data plane: one TCP connection to a peer's DataPlaneServer. Send writes the
// header then the floats straight from the caller's span (no copy, no allocation); thread-safe.
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace DistTrain.Cluster.DataPlane;

public sealed class DataPlaneClient : IDisposable
{
    private readonly Socket _socket;
    private readonly Lock _sendLock = new();
    private readonly ArrayBufferWriter<byte> _header = new(FrameHeader.MaxEncodedBytes);
    private readonly byte[] _prefix = new byte[4 + FrameHeader.MaxEncodedBytes];
    private volatile bool _closed;

    private DataPlaneClient(Socket socket, int senderId, string peer)
    {
        _socket = socket;
        SenderId = senderId;
        Peer = peer;
    }

    /// <summary>This side's id, written into every header.</summary>
    public int SenderId { get; }

    /// <summary>host:port of the peer, for messages.</summary>
    public string Peer { get; }

    public bool IsClosed => _closed;

    public long BytesSent { get; private set; }

    /// <summary>Default bound on one blocked send: a peer behind a cut link stops taking bytes without closing.</summary>
    public static readonly TimeSpan DefaultSendTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Connects to a peer's data plane and introduces itself; fails with a clear <see cref="IOException"/> after <paramref name="timeout"/>.
    /// A later <see cref="Send"/> that cannot hand its bytes to the kernel for <paramref name="sendTimeout"/> (default
    /// <see cref="DefaultSendTimeout"/>) fails with an IOException and closes the connection, so a cut link never blocks the sender for good.</summary>
    public static DataPlaneClient Connect(string host, int port, int senderId, TimeSpan timeout, int socketBufferBytes = DataPlaneDefaults.SocketBufferBytes, TimeSpan? sendTimeout = null)
    {
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
        var client = new DataPlaneClient(socket, senderId, $"{host}:{port}");
        client.Send(new FrameHeader(FrameKind.Hello, 0, 0, 0, 0, 0, 0, 0, senderId), ReadOnlySpan<float>.Empty);
        return client;
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

    /// <summary>The checksum a frame header carries for <paramref name="payload"/> (XxHash3 of its bytes; 0 when empty).</summary>
    public static ulong Checksum(ReadOnlySpan<float> payload) =>
        payload.IsEmpty ? 0UL : XxHash3.HashToUInt64(MemoryMarshal.AsBytes(payload));

    /// <summary>Sends a header and payload exactly as given (tests use it to send a wrong checksum or length).</summary>
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
                SocketIo.WriteAll(_socket, _prefix.AsSpan(0, 4 + n));
                SocketIo.WriteAll(_socket, payload);
                BytesSent += 4 + n + payload.Length;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                _closed = true;
                throw new IOException($"Data plane connection to {Peer} failed while sending {header}: {e.Message}", e);
            }
        }
    }

    /// <summary>Closes the connection (the peer left); a Send in progress on another thread fails with an IOException.</summary>
    public void Close()
    {
        _closed = true;
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception) { /* already closed */ }
        _socket.Dispose();
    }

    public void Dispose() => Close();
}

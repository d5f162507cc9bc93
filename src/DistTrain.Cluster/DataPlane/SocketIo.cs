// Blocking socket helpers shared by the data-plane server and client: exact reads and writes of
// spans (no Task, no allocation) and the socket options measured best on loopback.
using System.Net.Sockets;

namespace DistTrain.Cluster.DataPlane;

internal static class SocketIo
{
    public static void Configure(Socket s, int bufferBytes)
    {
        // NoDelay: a frame's small header must not wait for Nagle. Buffers: large enough to keep the link busy, small
        // enough that bytes are still cached when the receiver copies them out (DataPlaneDefaults.SocketBufferBytes).
        s.NoDelay = true;
        if (bufferBytes == 0) return; // 0 (the benchmark's option): kernel autotuning within tcp_wmem / tcp_rmem
        s.SendBufferSize = bufferBytes;
        s.ReceiveBufferSize = bufferBytes;
    }

    /// <summary>Fills <paramref name="buffer"/>; false if the peer closed the connection before it was full.</summary>
    public static bool ReadExactly(Socket s, Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            var n = s.Receive(buffer, SocketFlags.None);
            if (n == 0) return false;
            buffer = buffer[n..];
        }
        return true;
    }

    /// <summary>Reads and discards <paramref name="count"/> bytes (a dropped frame's payload) through <paramref name="scratch"/>.</summary>
    public static bool Drain(Socket s, long count, Span<byte> scratch)
    {
        while (count > 0)
        {
            var chunk = scratch[..(int)Math.Min(count, scratch.Length)];
            var n = s.Receive(chunk, SocketFlags.None);
            if (n == 0) return false;
            count -= n;
        }
        return true;
    }

    public static void WriteAll(Socket s, ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            var n = s.Send(data, SocketFlags.None);
            data = data[n..];
        }
    }
}

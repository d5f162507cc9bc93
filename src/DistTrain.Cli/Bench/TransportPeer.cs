// The receiving side of `disttrain bench transport`, run as a child process (hidden --serve mode):
// a DataPlaneServer that receives into one flat buffer, echoes round-trip frames and acks, and
// reports its CPU time and receive-thread allocation on request over stdin/stdout.
using System.Diagnostics;
using System.Net;
using DistTrain.Cluster.DataPlane;

namespace DistTrain.Cli.Bench;

/// <summary>Frame roles in the benchmark, carried in MicroBatch: one-way data, echo me, ack request.</summary>
internal static class BenchFrames
{
    public const int OneWay = 0, Echo = 1, Ack = 2;
}

/// <summary>Receives every frame into one buffer; counts frames and the receive thread's allocation.</summary>
internal sealed class BenchReceiver(int maxFloats, Action<FrameHeader, ReadOnlySpan<float>>? onFrame = null) : IFrameHandler
{
    private readonly float[] _buffer = new float[maxFloats];
    private long _frames, _threadAlloc;
    public readonly SemaphoreSlim Arrived = new(0);

    public long Frames => Interlocked.Read(ref _frames);
    /// <summary>GC.GetAllocatedBytesForCurrentThread() of the receive thread, read at its latest frame.</summary>
    public long ThreadAlloc => Interlocked.Read(ref _threadAlloc);

    public DropReason? Rent(FrameHeader header, out Span<float> destination)
    {
        destination = header.Length <= _buffer.Length ? _buffer.AsSpan(0, header.Length) : default;
        return header.Length <= _buffer.Length ? null : DropReason.Oversized;
    }

    public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
    {
        onFrame?.Invoke(header, payload);
        Interlocked.Increment(ref _frames);
        Interlocked.Exchange(ref _threadAlloc, GC.GetAllocatedBytesForCurrentThread());
        Arrived.Release();
    }
}

internal static class TransportPeer
{
    /// <summary>Child mode: read the listener key from the first stdin line, serve on 127.0.0.1, echo to the parent's port,
    /// answer "stats" lines until stdin closes.</summary>
    public static int Serve(int replyPort, int maxFloats, int bufferBytes, bool mac)
    {
        var first = Console.ReadLine();
        if (first is null || !first.StartsWith("KEY ", StringComparison.Ordinal)) { Console.Error.WriteLine("bench transport --serve: expected the key line first on stdin"); return 2; }
        var key = DataPlaneKey.FromWire(Convert.FromBase64String(first[4..]));
        DataPlaneClient? reply = null;
        var receiver = new BenchReceiver(maxFloats, (h, payload) =>
        {
            if (h.MicroBatch == BenchFrames.Echo) reply!.Send(h, payload);
            else if (h.MicroBatch == BenchFrames.Ack) reply!.Send(h, payload[..1]);
        });
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, receiver, key, maxFrameBytes: (long)maxFloats * 4, bufferBytes, frameMac: mac);
        // Both listeners of the bench hold the one listener key; each side proves its own sender id's key from it.
        reply = DataPlaneClient.Connect("127.0.0.1", replyPort, senderId: 2, key.PeerKey(2), TimeSpan.FromSeconds(10), bufferBytes, frameMac: mac);
        Console.WriteLine($"PORT {server.Port}");
        Console.Out.Flush();
        using var self = Process.GetCurrentProcess();
        while (Console.ReadLine() is { } line)
        {
            if (line != "stats") continue;
            self.Refresh();
            Console.WriteLine($"STATS {self.TotalProcessorTime.TotalSeconds:R} {receiver.Frames} {receiver.ThreadAlloc} {server.Stats.DroppedTotal}");
            Console.Out.Flush();
        }
        reply.Close();
        return 0;
    }
}

// Data plane over 127.0.0.1 in one process: a multi-MB gradient arrives bit for bit, bad frames
// (checksum, length, size, header) are dropped and counted and the stream stays usable, peers can
// be closed, and a steady-state transfer allocates nothing on either side.
using System.IO.Hashing;
using System.Net;
using System.Runtime.InteropServices;
using DistTrain.Cluster.DataPlane;
using Xunit;

namespace DistTrain.Cluster.Tests;

/// <summary>Receives frames of one expected length into a staging buffer and records what happened.</summary>
internal sealed class RecordingHandler(int expectedLength) : IFrameHandler
{
    public readonly float[] Staging = new float[expectedLength];
    public readonly float[] Received = new float[expectedLength];
    public readonly SemaphoreSlim Events = new(0);
    public readonly List<(FrameHeader Header, DropReason? Drop)> Log = [];
    public readonly SemaphoreSlim Disconnected = new(0);
    public long AllocatedAtFrame10 = -1, AllocatedAtLastFrame = -1;
    public int Frames;
    public bool Recording = true;
    /// <summary>0: signal every frame; N: signal only the N-th (waking a waiter may allocate, which is not the data plane's doing).</summary>
    public int SignalAt;

    public DropReason? Rent(FrameHeader header, out Span<float> destination)
    {
        destination = Staging;
        if (header.Kind != FrameKind.Gradient) return DropReason.Rejected;
        return header.Length == expectedLength ? null : DropReason.WrongLength;
    }

    public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
    {
        payload.CopyTo(Received);
        Frames++;
        // Steady-state allocation of the receive thread, read on that thread (no allocation in between).
        if (Frames == 10) AllocatedAtFrame10 = GC.GetAllocatedBytesForCurrentThread();
        AllocatedAtLastFrame = GC.GetAllocatedBytesForCurrentThread();
        if (Recording) lock (Log) Log.Add((header, null));
        if (SignalAt == 0 || Frames == SignalAt) Events.Release();
    }

    public void OnDropped(in FrameHeader header, DropReason reason)
    {
        lock (Log) Log.Add((header, reason));
        Events.Release();
    }

    public void OnPeerDisconnected(int senderId) => Disconnected.Release();

    public void Wait(int count = 1)
    {
        for (var i = 0; i < count; i++)
            Assert.True(Events.Wait(TimeSpan.FromSeconds(30)), "data-plane event did not arrive");
    }
}

public sealed class DataPlaneTests
{
    private static float[] Gradient(int n, int seed)
    {
        var rng = new Random(seed);
        var g = new float[n];
        for (var i = 0; i < n; i++) g[i] = (float)(rng.NextDouble() * 2 - 1) * MathF.Pow(10, rng.Next(-8, 8));
        g[0] = float.NaN; g[1] = -0f; g[2] = float.Epsilon; // bit patterns that a lossy path would change
        return g;
    }

    private static readonly DataPlaneKey Key = DataPlaneKey.Create();

    private static FrameHeader Header(long step, int microBatch) => new(FrameKind.Gradient, step, microBatch, step - 1, 0, 0, 0, 0, 0);

    [Theory]
    [InlineData(DataPlaneDefaults.SocketBufferBytes)] // base.hocon: a frame 32 times the buffer
    [InlineData(8 << 20)]                            // multinode.hocon
    [InlineData(0)]                                  // kernel autotuning (bench transport --socket-buffer-bytes 0)
    public void An_8_MB_gradient_crosses_bit_for_bit(int socketBufferBytes)
    {
        const int n = 2 * 1024 * 1024; // 8 MiB of floats
        var handler = new RecordingHandler(n);
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key, socketBufferBytes: socketBufferBytes);
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, senderId: 7, Key.PeerKey(7), TimeSpan.FromSeconds(10), socketBufferBytes);
        var g = Gradient(n, 1);
        client.Send(Header(12, 3), g);
        handler.Wait();

        var (h, drop) = handler.Log.Single();
        Assert.Null(drop);
        Assert.Equal((12L, 3, 11L, n, 7), (h.Step, h.MicroBatch, h.Version, h.Length, h.SenderId));
        Assert.True(MemoryMarshal.AsBytes(g.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(handler.Received.AsSpan())), "payload bits differ");
        Assert.Equal(XxHash3.HashToUInt64(MemoryMarshal.AsBytes(g.AsSpan())), h.Checksum);
        Assert.Equal(1, server.Stats.FramesReceived);
        Assert.Equal(0, server.Stats.DroppedTotal);
        Assert.Equal([7], server.ConnectedPeers());
    }

    [Fact]
    public void A_bad_checksum_is_dropped_and_counted_and_the_next_frame_still_arrives()
    {
        const int n = 1000;
        var handler = new RecordingHandler(n);
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key);
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, 1, Key.PeerKey(1), TimeSpan.FromSeconds(10));
        var g = Gradient(n, 2);
        var bytes = MemoryMarshal.AsBytes(g.AsSpan());
        var good = XxHash3.HashToUInt64(bytes);
        client.SendRaw(Header(1, 0) with { Length = n, Checksum = good ^ 1, SenderId = 1 }, bytes);
        // A payload with one flipped bit under the original checksum is dropped too.
        var flipped = bytes.ToArray();
        flipped[2345] ^= 0x10;
        client.SendRaw(Header(1, 1) with { Length = n, Checksum = good, SenderId = 1 }, flipped);
        client.Send(Header(1, 2), g);
        handler.Wait(3);

        Assert.Equal([DropReason.BadChecksum, DropReason.BadChecksum, null], handler.Log.Select(e => e.Drop));
        Assert.Equal(2, server.Stats.Dropped(DropReason.BadChecksum));
        Assert.Equal(1, server.Stats.FramesReceived);
        Assert.Equal(g, handler.Received);
    }

    [Fact]
    public void A_wrong_length_is_dropped_and_counted_never_applied()
    {
        const int n = 4096;
        var handler = new RecordingHandler(n);
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key);
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, 1, Key.PeerKey(1), TimeSpan.FromSeconds(10));
        client.Send(Header(5, 0), Gradient(n - 1, 3));
        client.Send(Header(5, 1), Gradient(n + 17, 4));
        var good = Gradient(n, 5);
        client.Send(Header(5, 2), good);
        handler.Wait(3);

        Assert.Equal([DropReason.WrongLength, DropReason.WrongLength, null], handler.Log.Select(e => e.Drop));
        Assert.Equal(2, server.Stats.Dropped(DropReason.WrongLength));
        Assert.Equal(1, handler.Frames);
        Assert.Equal(good, handler.Received);
    }

    [Fact]
    public void An_oversized_frame_is_drained_and_counted_and_the_stream_stays_in_sync()
    {
        const int n = 1024;
        var handler = new RecordingHandler(n);
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key, maxFrameBytes: 64 * 1024);
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, 1, Key.PeerKey(1), TimeSpan.FromSeconds(10));
        client.Send(Header(9, 0), Gradient(1 << 20, 6)); // 4 MiB, above the 64 KiB limit
        var good = Gradient(n, 7);
        client.Send(Header(9, 1), good);
        handler.Wait(2);

        Assert.Equal([DropReason.Oversized, null], handler.Log.Select(e => e.Drop));
        Assert.Equal(1, server.Stats.Dropped(DropReason.Oversized));
        Assert.Equal(good, handler.Received);
    }

    [Fact]
    public void A_malformed_header_closes_the_connection_and_is_counted()
    {
        var handler = new RecordingHandler(16);
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key);
        using var raw = new System.Net.Sockets.TcpClient();
        raw.Connect(IPAddress.Loopback, server.Port);
        var stream = raw.GetStream();
        stream.Write([5, 0, 0, 0, 0xC1, 0xC1, 0xC1, 0xC1, 0xC1]); // 0xC1 is "never used" in MessagePack
        int got = 0, n;
        while ((n = stream.Read(new byte[64])) > 0) got += n; // the server's challenge, then it hangs up
        Assert.Equal(DataPlaneAuth.ChallengeBytes, got);
        Assert.Equal(1, server.Stats.Dropped(DropReason.Malformed));
        Assert.Equal(0, server.Stats.FramesReceived);
    }

    [Fact]
    public void Closing_a_peer_ends_its_connections_and_its_sends_fail()
    {
        var handler = new RecordingHandler(256);
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key);
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, 42, Key.PeerKey(42), TimeSpan.FromSeconds(10));
        client.Send(Header(1, 0), Gradient(256, 8));
        handler.Wait();
        Assert.Equal([42], server.ConnectedPeers());

        Assert.Equal(1, server.Close(42));
        Assert.True(handler.Disconnected.Wait(TimeSpan.FromSeconds(30)));
        Assert.Empty(server.ConnectedPeers());
        // The kernel may accept a send or two before it learns of the reset; it must fail soon after.
        Assert.Throws<IOException>(() => { for (var i = 0; i < 1000; i++) { client.Send(Header(2, i), Gradient(256, 9)); Thread.Sleep(1); } });
    }

    [Fact]
    public void Connecting_to_a_closed_port_fails_with_a_clear_error()
    {
        var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var e = Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", port, 1, Key.PeerKey(1), TimeSpan.FromSeconds(5)));
        Assert.Contains($"127.0.0.1:{port}", e.Message);
    }

    [Fact]
    public void Steady_state_transfers_allocate_nothing_on_sender_or_receiver()
    {
        // 4 MiB frames through 256 KiB kernel buffers: every Send blocks on a full buffer, the case that allocates
        // when a socket has been switched to non-blocking mode by an async call.
        const int n = 1024 * 1024;
        const int frames = 40;
        var handler = new RecordingHandler(n) { Recording = false, SignalAt = frames };
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key, socketBufferBytes: 256 * 1024);
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, 3, Key.PeerKey(3), TimeSpan.FromSeconds(10), socketBufferBytes: 256 * 1024);
        var g = Gradient(n, 10);
        for (var i = 0; i < 10; i++) client.Send(Header(i, 0), g); // warm-up: JIT, first-use buffers
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 10; i < frames; i++) client.Send(Header(i, 0), g);
        var senderBytes = GC.GetAllocatedBytesForCurrentThread() - before;
        handler.Wait();

        Assert.Equal(0, senderBytes);
        Assert.Equal(frames, handler.Frames);
        // Receiver: one stray object over the 30 measured frames (seen once in four CI runs: 56 bytes,
        // runtime bookkeeping such as tiered-JIT call counting) is tolerated; an allocation per frame
        // would be at least 30 × 24 = 720 bytes and fails this.
        Assert.InRange(handler.AllocatedAtLastFrame - handler.AllocatedAtFrame10, 0, 64);
    }

    [Fact]
    public void Two_nodes_exchange_gradient_and_parameters_by_peer_id_and_closing_a_peer_cuts_both_ways()
    {
        const int n = 3000;
        var settings = DistTrain.Cluster.Configuration.DistTrainSettings.From(
            DistTrain.Cluster.Configuration.ClusterConfig.Load("local")).DataPlane;
        var atPs = new RecordingHandler(n);
        var atWorker = new RecordingHandler(n);
        using var ps = new DataPlaneNode(1, settings, atPs, Key);
        using var worker = new DataPlaneNode(2, settings, atWorker, Key);
        worker.Connect(1, ps.Host, ps.Port, Key.PeerKey(2));
        ps.Connect(2, worker.Host, worker.Port, Key.PeerKey(1));
        var g = Gradient(n, 11);
        worker.Send(1, Header(3, 0), g);
        ps.Send(2, Header(3, 0), g.Reverse().ToArray());
        atPs.Wait();
        atWorker.Wait();
        Assert.Equal(g, atPs.Received);
        Assert.Equal(g.Reverse(), atWorker.Received);
        Assert.Equal(2, atPs.Log.Single().Header.SenderId);

        ps.ClosePeer(2);
        Assert.True(atPs.Disconnected.Wait(TimeSpan.FromSeconds(30)));   // the worker's connection into the PS
        Assert.True(atWorker.Disconnected.Wait(TimeSpan.FromSeconds(30))); // the PS's connection into the worker
        Assert.Throws<IOException>(() => ps.Send(2, Header(4, 0), g));
    }

    [Fact]
    public async Task SendToAPeerThatStopsReadingFailsAfterTheSendTimeoutInsteadOfBlockingForever()
    {
        // A peer behind a cut link keeps its connection open and takes no bytes: a raw listener that completes the
        // handshake, then never reads.
        var silent = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            int port = ((IPEndPoint)silent.LocalEndpoint).Port;
            var listener = RawDataPlanePeer.ListenOnce(silent, Key);
            using var client = DataPlaneClient.Connect("127.0.0.1", port, 5, Key.PeerKey(5), TimeSpan.FromSeconds(5), socketBufferBytes: 1 << 20, sendTimeout: TimeSpan.FromSeconds(1));
            using var accepted = await listener.WaitAsync(TimeSpan.FromSeconds(20)); // authenticated, never read again
            var big = new float[16 << 20]; // 64 MiB: far beyond both kernel buffers
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var e = Assert.Throws<IOException>(() => client.Send(Header(1, 0), big));
            Assert.InRange(clock.Elapsed.TotalSeconds, 0.9, 60);
            Assert.Contains($"127.0.0.1:{port}", e.Message);
            Assert.True(client.IsClosed);
            Assert.Throws<IOException>(() => client.Send(Header(2, 0), big.AsSpan(0, 4))); // closed for good
        }
        finally { silent.Stop(); }
    }
}

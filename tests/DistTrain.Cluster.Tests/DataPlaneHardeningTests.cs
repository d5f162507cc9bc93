// The data-plane listener against frames written by hand (a stranger's, or a broken peer's that holds its key): a bad
// length prefix, a Hello with a payload or a second Hello, negative ranges, unknown kinds, frames before the Hello or from
// another sender id are refused — the connection closed and the reason counted — and the listener keeps serving good peers.
// Silent, half-sent and idle connections time out; connections beyond max-connections are closed on arrival; a header's
// length never makes the receiver allocate; a dropped frame cut off while draining never frees a slot it did not take.
// Every connection here passes the authenticated handshake first (RawDataPlanePeer), except where the test is about it.
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using DistTrain.Cluster.DataPlane;
using Xunit;

namespace DistTrain.Cluster.Tests;

public sealed class DataPlaneHardeningTests
{
    private const int N = 256;

    /// <summary>Accepts Gradient frames of N floats; rejects every other kind at Rent. Records what reached it and the
    /// receive thread's allocations at the Hello and at each frame.</summary>
    private sealed class Handler : IFrameHandler
    {
        public readonly float[] Staging = new float[N];
        public readonly List<float[]> Frames = [];
        public readonly List<(FrameHeader Header, DropReason Reason)> Drops = [];
        public readonly List<int> Hellos = [];
        public readonly SemaphoreSlim Events = new(0);
        public long AllocatedAtHello = -1, AllocatedAtFrame = -1;
        public int Rents;

        public DropReason? Rent(FrameHeader header, out Span<float> destination)
        {
            Interlocked.Increment(ref Rents);
            destination = Staging;
            if (header.Kind != FrameKind.Gradient) return DropReason.Rejected;
            return header.Length == N ? null : DropReason.WrongLength;
        }

        public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
        {
            AllocatedAtFrame = GC.GetAllocatedBytesForCurrentThread();
            lock (Frames) Frames.Add(payload.ToArray());
            Events.Release();
        }

        public void OnDropped(in FrameHeader header, DropReason reason)
        {
            lock (Drops) Drops.Add((header, reason));
            Events.Release();
        }

        public void OnPeerConnected(int senderId)
        {
            AllocatedAtHello = GC.GetAllocatedBytesForCurrentThread();
            lock (Hellos) Hellos.Add(senderId);
        }

        public void Wait(int count = 1)
        {
            for (var i = 0; i < count; i++) Assert.True(Events.Wait(TimeSpan.FromSeconds(20)), "data-plane event did not arrive");
        }
    }

    private static float[] Payload(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, N).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    private static readonly DataPlaneKey Key = DataPlaneKey.Create();

    private static FrameHeader Hello(int sender) => RawDataPlanePeer.Hello(sender);

    private static FrameHeader Gradient(int sender, float[] payload, long step = 1) =>
        new(FrameKind.Gradient, step, 0, step - 1, 0, 0, payload.Length, DataPlaneClient.Checksum(payload), sender);

    private static byte[] Frame(FrameHeader h, ReadOnlySpan<byte> payload = default, int? prefix = null) => RawDataPlanePeer.Frame(h, payload, prefix);

    private static byte[] Frame(FrameHeader h, float[] payload) => Frame(h, MemoryMarshal.AsBytes(payload.AsSpan()));

    /// <summary>A raw connection that has read the listener's challenge and not answered it yet.</summary>
    private static RawDataPlanePeer Raw(DataPlaneServer server) => RawDataPlanePeer.Connect(server.Port);

    /// <summary>A raw connection authenticated as <paramref name="sender"/> with its key toward the listener.</summary>
    private static RawDataPlanePeer Authenticated(DataPlaneServer server, int sender)
    {
        var peer = RawDataPlanePeer.Connect(server.Port);
        peer.Authenticate(sender, Key);
        return peer;
    }

    /// <summary>After a refusal the listener still serves a good peer.</summary>
    private static void AssertStillServes(DataPlaneServer server, Handler handler, int sender = 77)
    {
        using var good = DataPlaneClient.Connect("127.0.0.1", server.Port, sender, Key.PeerKey(sender), TimeSpan.FromSeconds(10));
        var g = Payload(sender);
        int before;
        lock (handler.Frames) before = handler.Frames.Count;
        good.Send(new FrameHeader(FrameKind.Gradient, 9, 0, 8, 0, 0, 0, 0, 0), g);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline) { lock (handler.Frames) if (handler.Frames.Count > before) break; Thread.Sleep(5); }
        lock (handler.Frames)
        {
            Assert.Equal(before + 1, handler.Frames.Count);
            Assert.Equal(g, handler.Frames[^1]);
        }
    }

    private static DataPlaneServer Server(Handler handler, DataPlaneLimits? limits = null, long maxFrameBytes = 256L << 20) =>
        new(IPAddress.Loopback, 0, handler, Key, maxFrameBytes, limits: limits);

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(FrameHeader.MaxEncodedBytes + 1)]
    [InlineData(int.MaxValue)]
    [InlineData(int.MinValue)]
    public void A_length_prefix_outside_1_to_128_closes_the_connection_and_is_counted(int prefix)
    {
        var handler = new Handler();
        using var server = Server(handler);
        using var s = Authenticated(server, 3);
        s.Send(s.Tagged(Gradient(3, Payload(1)), MemoryMarshal.AsBytes(Payload(1).AsSpan()), prefix: prefix));
        s.AssertClosedByServer();
        Assert.Equal(1, server.Stats.Dropped(DropReason.Malformed));
        Assert.Equal(0, handler.Rents);
        AssertStillServes(server, handler);
    }

    [Fact]
    public void A_hello_with_a_payload_or_a_second_hello_closes_the_connection()
    {
        var handler = new Handler();
        using var server = Server(handler);
        using (var s = Raw(server))
        {
            var one = new float[] { 1f };
            s.Send(Frame(Hello(3) with { Length = 1, Checksum = DataPlaneClient.Checksum(one) }, one));
            s.AssertClosedByServer();
        }
        Assert.Empty(handler.Hellos); // the peer never counted as connected
        using (var s = Authenticated(server, 3))
        {
            s.Send(s.Tagged(Hello(4), [])); // would turn the connection into sender 4's
            s.AssertClosedByServer();
        }
        Assert.Equal(2, server.Stats.Dropped(DropReason.Malformed));
        Assert.Equal(0, handler.Rents);
        AssertStillServes(server, handler);
    }

    public static TheoryData<string, FrameHeader> MalformedAfterHello() => new()
    {
        { "negative length", new FrameHeader(FrameKind.Gradient, 1, 0, 0, 0, 0, -4, 0, 3) },
        { "negative offset", new FrameHeader(FrameKind.Gradient, 1, 0, 0, 0, -64, N, 0, 3) },
        { "unknown kind 10", new FrameHeader((FrameKind)10, 1, 0, 0, 0, 0, N, 0, 3) },
        { "unknown kind 200", new FrameHeader((FrameKind)200, 1, 0, 0, 0, 0, 0, 0, 3) },
    };

    [Theory]
    [MemberData(nameof(MalformedAfterHello))]
    public void Negative_ranges_and_unknown_kinds_close_the_connection_and_are_counted(string what, FrameHeader header)
    {
        var handler = new Handler();
        using var server = Server(handler);
        using var s = Authenticated(server, 3);
        s.Send(s.Tagged(header, new byte[64]));
        s.AssertClosedByServer();
        Assert.True(server.Stats.Dropped(DropReason.Malformed) == 1, what);
        Assert.Equal(0, handler.Rents);
        AssertStillServes(server, handler);
    }

    [Fact]
    public void A_frame_before_the_hello_is_refused()
    {
        var handler = new Handler();
        using var server = Server(handler);
        using var s = Raw(server);
        var g = Payload(2);
        s.Send(Frame(Gradient(3, g), g));
        s.AssertClosedByServer();
        Assert.Equal(1, server.Stats.Dropped(DropReason.WrongSender));
        Assert.Equal(0, handler.Rents);
        Assert.Empty(handler.Frames);
        AssertStillServes(server, handler);
    }

    [Fact]
    public void A_frame_whose_sender_id_differs_from_the_connections_hello_closes_it_and_nothing_of_it_is_applied()
    {
        var handler = new Handler();
        using var server = Server(handler);
        using var s = Authenticated(server, 3);
        var mine = Payload(3);
        var theirs = Payload(4);
        s.Send(s.Tagged(Gradient(3, mine), mine));            // its own: accepted
        s.Send(s.Tagged(Gradient(8, theirs, step: 2), theirs)); // posing as sender 8
        s.AssertClosedByServer();
        Assert.Equal(1, server.Stats.Dropped(DropReason.WrongSender));
        Assert.Equal(1, server.Stats.FramesReceived);
        Assert.Equal(mine, handler.Frames.Single());
        Assert.Equal(1, handler.Rents); // the impostor's frame never reached the handler
    }

    [Fact]
    public void A_header_claiming_gigabytes_allocates_nothing_and_a_cut_drain_frees_no_slot()
    {
        var handler = new Handler();
        using var server = Server(handler, maxFrameBytes: 64 * 1024);
        using (var s = Authenticated(server, 3))
        {
            // 16 Mi floats (64 MB) claimed and sent, above the 64 KiB limit: drained through the connection's scratch buffer,
            // tag included (a drained frame's tag is not checked, but its number on the connection is used up).
            var huge = new FrameHeader(FrameKind.Gradient, 1, 0, 0, 0, 0, 16 << 20, 0, 3);
            s.Send(Frame(huge));
            s.Send(new byte[FrameMac.TagBytes]);
            s.Mac!.Skip();
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 64; i++) s.Send(zeros);
            var g = Payload(5);
            s.Send(s.Tagged(Gradient(3, g, step: 2), g));
            handler.Wait(2); // the drop, then the good frame
            Assert.Equal(g, handler.Frames.Single());
            // Receive thread: Hello -> drop of 64 MB -> good frame. An allocation sized by the claim would be megabytes.
            Assert.InRange(handler.AllocatedAtFrame - handler.AllocatedAtHello, 0, 64 * 1024);
        }
        Assert.Equal(1, server.Stats.Dropped(DropReason.Oversized));

        // A frame Rent refused (a Parameters frame here), cut off while it is drained: the handler hears of it once, as
        // refused; a "connection lost" would free a slot it never took (the real sender's, for a duplicate micro-batch).
        using (var s = Authenticated(server, 4))
        {
            s.Send(Frame(new FrameHeader(FrameKind.Parameters, 1, 0, 1, 0, 0, N * 60, 0, 4))); // 60 KiB: under the limit, refused by Rent
            s.Send(new byte[1000]);
            handler.Wait();
            s.Socket.Shutdown(SocketShutdown.Both);
        }
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (server.ConnectedPeers().Contains(4) && DateTime.UtcNow < deadline) Thread.Sleep(20);
        lock (handler.Drops)
            Assert.Equal([DropReason.Oversized, DropReason.Rejected], handler.Drops.Select(d => d.Reason));
        Assert.Equal(0, server.Stats.Dropped(DropReason.ConnectionLost));
    }

    [Fact]
    public void A_silent_connection_and_a_half_sent_hello_time_out()
    {
        var handler = new Handler();
        using var server = Server(handler, new DataPlaneLimits { HelloTimeout = TimeSpan.FromMilliseconds(300) });
        using (var silent = Raw(server)) silent.AssertClosedByServer();
        using (var half = Raw(server))
        {
            half.Send(Frame(Hello(5))[..6]);
            half.AssertClosedByServer();
        }
        using (var noProof = Raw(server))
        {
            noProof.Send(noProof.HelloBytes(5, Key)[..^10]); // the Hello and all but the last bytes of its proof
            noProof.AssertClosedByServer();
        }
        Assert.Equal(3, server.Stats.TimedOut);
        Assert.Empty(handler.Hellos);
        AssertStillServes(server, handler);
    }

    [Fact]
    public void A_half_sent_frame_times_out_and_gives_its_slot_back()
    {
        var handler = new Handler();
        using var server = Server(handler, new DataPlaneLimits { ReadTimeout = TimeSpan.FromMilliseconds(300) });
        using var s = Authenticated(server, 3);
        var g = Payload(6);
        s.Send(s.Tagged(Gradient(3, g), g)[..^100]); // all but the last 100 bytes, then silence
        var clock = System.Diagnostics.Stopwatch.StartNew();
        s.AssertClosedByServer();
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.2, 15);
        handler.Wait();
        var (header, reason) = handler.Drops.Single();
        Assert.Equal((DropReason.ConnectionLost, 1L, 3), (reason, header.Step, header.SenderId)); // the slot is freed for a resend
        Assert.Equal(1, server.Stats.TimedOut);
        Assert.Empty(handler.Frames);
        AssertStillServes(server, handler);
    }

    [Fact]
    public void An_idle_timeout_closes_a_quiet_peer_and_without_one_a_quiet_peer_stays()
    {
        var handler = new Handler();
        using (var server = Server(handler, new DataPlaneLimits { IdleTimeout = TimeSpan.FromMilliseconds(300) }))
        using (var s = Authenticated(server, 3))
        {
            var g = Payload(7);
            s.Send(s.Tagged(Gradient(3, g), g));
            handler.Wait();
            s.AssertClosedByServer();
            Assert.Equal(1, server.Stats.TimedOut);
        }

        using (var server = Server(handler)) // default: no idle timeout
        using (var client = DataPlaneClient.Connect("127.0.0.1", server.Port, 4, Key.PeerKey(4), TimeSpan.FromSeconds(10)))
        {
            Thread.Sleep(1000);
            Assert.Equal([4], server.ConnectedPeers());
            Assert.Equal(0, server.Stats.TimedOut);
        }
    }

    [Fact]
    public void Connections_beyond_the_bound_are_closed_on_arrival_and_counted()
    {
        var handler = new Handler();
        using var server = Server(handler, new DataPlaneLimits { MaxConnections = 2 });
        var a = DataPlaneClient.Connect("127.0.0.1", server.Port, 1, Key.PeerKey(1), TimeSpan.FromSeconds(10));
        using var b = DataPlaneClient.Connect("127.0.0.1", server.Port, 2, Key.PeerKey(2), TimeSpan.FromSeconds(10));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (server.ConnectedPeers().Length < 2 && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.Equal([1, 2], server.ConnectedPeers());

        using (var third = RawDataPlanePeer.Connect(server.Port, readChallenge: false)) third.AssertClosedByServer();
        Assert.Equal(1, server.Stats.ConnectionsRefused);
        Assert.Equal([1, 2], server.ConnectedPeers());

        // A place frees up when a peer leaves.
        a.Dispose();
        while (server.ConnectedPeers().Length > 1 && DateTime.UtcNow < deadline) Thread.Sleep(10);
        AssertStillServes(server, handler, sender: 3);
    }

    /// <summary>
    /// Strangers who fill every slot with silent connections (they never prove the key) do not lock a peer out: at the
    /// bound, the oldest unauthenticated connection is closed to make room, so the peer's connection gets in and serves.
    /// </summary>
    [Fact]
    public void Silent_strangers_at_the_bound_make_room_for_a_peer_oldest_first()
    {
        var handler = new Handler();
        using var server = Server(handler, new DataPlaneLimits { MaxConnections = 2, HelloTimeout = TimeSpan.FromSeconds(30) });
        using var first = RawDataPlanePeer.Connect(server.Port);   // each reads its challenge: accepted, holding a slot
        using var second = RawDataPlanePeer.Connect(server.Port);
        AssertStillServes(server, handler, sender: 5);               // evicts `first`, the oldest
        first.AssertClosedByServer();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (server.ConnectedPeers().Length > 0 && DateTime.UtcNow < deadline) Thread.Sleep(10); // the peer hung up
        using var third = RawDataPlanePeer.Connect(server.Port);
        using var fourth = RawDataPlanePeer.Connect(server.Port);
        second.AssertClosedByServer();                               // strangers only evict each other, oldest first
        using var peer = Authenticated(server, 6);
        third.AssertClosedByServer();
        Assert.Equal([6], server.ConnectedPeers());
        Assert.Equal(3, server.Stats.ConnectionsRefused);
    }

    /// <summary>
    /// Fuzz, three hundred connections: garbage, truncations and byte changes of a whole valid exchange (the Hello with its
    /// proof for this connection's challenge, then one tagged frame), plus a third of cases that change bytes of the proof
    /// alone. Nothing crashes the listener, and no payload but the one sent is ever applied: a changed frame fails its tag.
    /// </summary>
    [Fact]
    public void Garbage_and_mutated_frames_never_crash_the_listener_nor_apply_a_changed_payload()
    {
        var handler = new Handler();
        using var server = Server(handler, new DataPlaneLimits { HelloTimeout = TimeSpan.FromSeconds(2), ReadTimeout = TimeSpan.FromSeconds(2) });
        var g = Payload(8);
        var rng = new Random(15);
        int proofChanged = 0;
        for (int i = 0; i < 300; i++)
        {
            using var s = Raw(server);
            // The exchange a good peer would send on this connection, computed without sending (FrameMac of a dry run).
            var hello = s.HelloBytes(3, Key);
            var valid = hello.Concat(TaggedFor(s, hello, Gradient(3, g), g)).ToArray();
            byte[] bytes;
            switch (i % 4)
            {
                case 0: bytes = new byte[rng.Next(1, 2000)]; rng.NextBytes(bytes); break;           // garbage
                case 1: bytes = valid[..rng.Next(1, valid.Length)]; break;                            // truncated
                case 2:                                                                                // the proof changed
                    bytes = valid.ToArray();
                    bytes[hello.Length - 1 - rng.Next(DataPlaneAuth.ProofBytes)] ^= (byte)(1 << rng.Next(8));
                    proofChanged++;
                    break;
                default:                                                                               // a few bytes changed
                    bytes = valid.ToArray();
                    for (int k = rng.Next(1, 4); k > 0; k--) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                    break;
            }
            try { s.Send(bytes); s.Socket.Shutdown(SocketShutdown.Send); } catch (SocketException) { /* the server hung up first */ }
            if (i % 4 == 2) s.AssertClosedByServer();
        }
        Assert.True(server.Stats.Dropped(DropReason.Unauthenticated) >= proofChanged, server.Stats.ToString());
        AssertStillServes(server, handler, sender: 99);
        lock (handler.Frames)
            foreach (var f in handler.Frames)
                Assert.True(f.AsSpan().SequenceEqual(g) || f.AsSpan().SequenceEqual(Payload(99)), "a payload that was not sent was applied");
    }

    /// <summary>The tagged frame a peer that sent <paramref name="hello"/> on <paramref name="s"/> would send first.</summary>
    private static byte[] TaggedFor(RawDataPlanePeer s, byte[] hello, FrameHeader h, float[] payload)
    {
        var nonce = hello.AsSpan(hello.Length - DataPlaneAuth.HelloAuthBytes, DataPlaneAuth.NonceBytes);
        using var mac = DataPlaneAuth.FrameMacOf(Key, s.ServerNonce, nonce, h.SenderId, DataPlaneAuth.FlagFrameMac);
        var head = Frame(h);
        var tag = new byte[FrameMac.TagBytes];
        mac.Compute(head, MemoryMarshal.AsBytes(payload.AsSpan()), tag);
        return RawDataPlanePeer.WithTag(head, tag, MemoryMarshal.AsBytes(payload.AsSpan()));
    }
}

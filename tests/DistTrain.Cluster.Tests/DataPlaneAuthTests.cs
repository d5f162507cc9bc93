// The authenticated data plane on real sockets (127.0.0.1): a stranger that speaks the protocol but lacks the job key,
// a wrong proof and a Hello replayed from another connection are refused before any frame reaches the handler; after
// authentication a frame with one flipped bit (even under a recomputed checksum), a changed header, a made-up tag or a
// replayed frame is refused and closes the connection; a client never sends to a listener that cannot prove the key.
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using Xunit;

namespace DistTrain.Cluster.Tests;

public sealed class DataPlaneAuthTests
{
    private const int N = 512;
    private static readonly DataPlaneKey Key = DataPlaneKey.Create();

    /// <summary>Takes Gradient frames of N floats into a staging buffer; records every call.</summary>
    private sealed class Handler : IFrameHandler
    {
        private readonly float[] _staging = new float[N];
        public readonly List<float[]> Frames = [];
        public readonly List<DropReason> Drops = [];
        public readonly List<int> Peers = [];
        public readonly SemaphoreSlim Events = new(0);
        public int Rents;

        public DropReason? Rent(FrameHeader header, out Span<float> destination)
        {
            Interlocked.Increment(ref Rents);
            destination = _staging;
            return header.Kind == FrameKind.Gradient && header.Length == N ? null : DropReason.Rejected;
        }

        public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
        {
            lock (Frames) Frames.Add(payload.ToArray());
            Events.Release();
        }

        public void OnDropped(in FrameHeader header, DropReason reason)
        {
            lock (Drops) Drops.Add(reason);
            Events.Release();
        }

        public void OnPeerConnected(int senderId)
        {
            lock (Peers) Peers.Add(senderId);
        }

        public void Wait(int count = 1)
        {
            for (int i = 0; i < count; i++) Assert.True(Events.Wait(TimeSpan.FromSeconds(20)), "data-plane event did not arrive");
        }
    }

    private static DataPlaneServer Server(Handler handler) => new(IPAddress.Loopback, 0, handler, Key);

    private static float[] Payload(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, N).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    private static FrameHeader Gradient(int sender, float[] payload, long step = 1) =>
        new(FrameKind.Gradient, step, 0, step - 1, 0, 0, payload.Length, DataPlaneClient.Checksum(payload), sender);

    private static byte[] Bytes(float[] payload) => MemoryMarshal.AsBytes(payload.AsSpan()).ToArray();

    /// <summary>A good peer still gets its frame through, bit for bit.</summary>
    private static void AssertStillServes(DataPlaneServer server, Handler handler)
    {
        using var good = DataPlaneClient.Connect("127.0.0.1", server.Port, 77, Key.PeerKey(77), TimeSpan.FromSeconds(10));
        var g = Payload(77);
        good.Send(Gradient(77, g) with { Checksum = 0, Length = 0 }, g);
        handler.Wait();
        lock (handler.Frames) Assert.Equal(g, handler.Frames[^1]);
    }

    [Fact]
    public void A_stranger_with_another_key_is_refused_and_nothing_it_sends_reaches_the_handler()
    {
        var handler = new Handler();
        using var server = Server(handler);
        var stranger = DataPlaneKey.Create();

        // Our own client, holding the wrong key: the listener closes on its proof, and the client says why.
        var e = Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", server.Port, 3, stranger, TimeSpan.FromSeconds(10)));
        Assert.Contains("refused this node's proof", e.Message);

        // By hand: a Hello proved with the wrong key, then a frame tagged as if the handshake had passed.
        var g = Payload(1);
        using (var raw = RawDataPlanePeer.Connect(server.Port))
        {
            var hello = raw.HelloBytes(3, stranger);
            var frame = RawDataPlanePeer.WithTag(RawDataPlanePeer.Frame(Gradient(3, g)), new byte[FrameMac.TagBytes], Bytes(g));
            try { raw.Send([.. hello, .. frame]); } catch (SocketException) { /* closed first */ }
            raw.AssertClosedByServer();
        }
        // And one whose proof is 32 random bytes.
        using (var raw = RawDataPlanePeer.Connect(server.Port))
        {
            var hello = raw.HelloBytes(3, Key);
            RandomNumberGenerator.Fill(hello.AsSpan(hello.Length - DataPlaneAuth.ProofBytes));
            raw.Send(hello);
            raw.AssertClosedByServer();
        }

        Assert.Equal(3, server.Stats.Dropped(DropReason.Unauthenticated));
        Assert.Equal(0, handler.Rents);
        Assert.Empty(handler.Peers);
        Assert.Empty(server.ConnectedPeers());
        AssertStillServes(server, handler);
        Assert.Single(handler.Frames);
    }

    [Fact]
    public void A_hello_replayed_from_another_connection_is_refused()
    {
        var handler = new Handler();
        using var server = Server(handler);
        using var first = RawDataPlanePeer.Connect(server.Port);
        var hello = first.HelloBytes(5, Key);
        first.Send(hello);
        var proof = new byte[DataPlaneAuth.ProofBytes];
        first.ReadExactly(proof); // the listener accepted it on the connection it was made for

        // A listener's nonce is fresh per connection: the recorded Hello, proof and all, proves nothing on another.
        using var replay = RawDataPlanePeer.Connect(server.Port);
        Assert.NotEqual(first.ServerNonce, replay.ServerNonce);
        var g = Payload(2);
        try { replay.Send([.. hello, .. RawDataPlanePeer.WithTag(RawDataPlanePeer.Frame(Gradient(5, g)), new byte[FrameMac.TagBytes], Bytes(g))]); }
        catch (SocketException) { /* closed first */ }
        replay.AssertClosedByServer();

        Assert.Equal(1, server.Stats.Dropped(DropReason.Unauthenticated));
        Assert.Equal(0, handler.Rents);
        // The listener sends its proof before it hands the connection to the handler: wait (bounded) for that.
        SpinWait.SpinUntil(() => { lock (handler.Peers) return handler.Peers.Count > 0; }, TimeSpan.FromSeconds(5));
        lock (handler.Peers) Assert.Equal([5], handler.Peers); // the first connection only
    }

    public static TheoryData<string> Tamperings() => ["payload bit, checksum recomputed", "payload bit", "header step", "made-up tag", "replayed frame"];

    [Theory]
    [MemberData(nameof(Tamperings))]
    public void A_frame_altered_injected_or_replayed_after_authentication_is_refused_and_closes_the_connection(string how)
    {
        var handler = new Handler();
        using var server = Server(handler);
        using var peer = RawDataPlanePeer.Connect(server.Port);
        peer.Authenticate(4, Key);
        var g = Payload(3);
        var first = peer.Tagged(Gradient(4, g), g);
        peer.Send(first); // a good frame first: the connection works and is authenticated
        handler.Wait();

        var changed = Bytes(g);
        changed[1001] ^= 0x04; // one bit of one float
        var h = Gradient(4, g, step: 2);
        byte[] bad = how switch
        {
            // Whoever changes the payload can recompute the unkeyed checksum too; only the tag catches it.
            "payload bit, checksum recomputed" => peer.Tagged(h with { Checksum = System.IO.Hashing.XxHash3.HashToUInt64(changed) }, changed,
                tagged: Bytes(g)),
            "payload bit" => peer.Tagged(h, changed, tagged: Bytes(g)),
            "header step" => Retitled(peer.Tagged(h, Bytes(g)), h, h with { Step = 7 }),
            "made-up tag" => RawDataPlanePeer.WithTag(RawDataPlanePeer.Frame(h), RandomNumberGenerator.GetBytes(FrameMac.TagBytes), Bytes(g)),
            _ => first, // the same bytes again: the frame counter has moved on
        };
        peer.Send(bad);
        handler.Wait();
        peer.AssertClosedByServer();

        Assert.Equal([DropReason.BadMac], handler.Drops);
        Assert.Equal(1, server.Stats.Dropped(DropReason.BadMac));
        Assert.Equal(0, server.Stats.Dropped(DropReason.BadChecksum));
        lock (handler.Frames) Assert.Equal(g, handler.Frames.Single());
        AssertStillServes(server, handler);
    }

    /// <summary>A tagged frame whose header is swapped for another of the same encoded length after tagging.</summary>
    private static byte[] Retitled(byte[] tagged, FrameHeader from, FrameHeader to)
    {
        var a = RawDataPlanePeer.Frame(from);
        var b = RawDataPlanePeer.Frame(to);
        Assert.Equal(a.Length, b.Length);
        Assert.True(tagged.AsSpan(0, a.Length).SequenceEqual(a));
        var copy = tagged.ToArray();
        b.CopyTo(copy, 0);
        return copy;
    }

    [Fact]
    public async Task A_client_sends_nothing_to_a_listener_that_cannot_prove_the_key()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            // A stranger's listener: it sends a well-formed challenge, reads the Hello, and answers with bytes it made up.
            var impostor = RawDataPlanePeer.ListenOnce(listener, key: null, proveWithKey: false);
            var e = Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", port, 6, Key.PeerKey(6), TimeSpan.FromSeconds(10)));
            Assert.Contains("did not prove it holds this connection's data-plane key", e.Message);
            using var s = await impostor.WaitAsync(TimeSpan.FromSeconds(20));
            s.ReceiveTimeout = 10_000;
            Assert.Equal(0, s.Receive(new byte[64])); // the client hung up without one byte of a frame

            // A listener of the same job with another key (another run) refuses the client, which says so.
            using var other = new DataPlaneServer(IPAddress.Loopback, 0, new Handler(), DataPlaneKey.Create());
            e = Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", other.Port, 6, Key.PeerKey(6), TimeSpan.FromSeconds(10)));
            Assert.Contains("another job", e.Message);
        }
        finally { listener.Stop(); }
    }

    [Fact]
    public async Task A_listener_that_is_not_a_data_plane_or_disagrees_on_frame_tags_is_named_in_the_error()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var web = Task.Run(() =>
            {
                using var s = listener.AcceptSocket();
                s.Send("HTTP/1.1 400 Bad Request\r\n\r\n0123456789abcdef0123456789"u8.ToArray());
                s.ReceiveTimeout = 10_000;
                try { while (s.Receive(new byte[64]) > 0) { } } catch (SocketException) { }
            });
            var e = Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", port, 6, Key.PeerKey(6), TimeSpan.FromSeconds(10)));
            Assert.Contains("not a DistTrain data-plane listener", e.Message);
            await web.WaitAsync(TimeSpan.FromSeconds(20));
        }
        finally { listener.Stop(); }

        using var untagged = new DataPlaneServer(IPAddress.Loopback, 0, new Handler(), Key, frameMac: false);
        var mismatch = Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", untagged.Port, 6, Key.PeerKey(6), TimeSpan.FromSeconds(10)));
        Assert.Contains("frame MACs off", mismatch.Message);
    }

    [Fact]
    public void With_frame_tags_off_on_both_sides_frames_still_cross_after_the_authenticated_handshake()
    {
        // The benchmark's "no tag" lane: the handshake still admits key holders only.
        var handler = new Handler();
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key, frameMac: false);
        Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", server.Port, 8, DataPlaneKey.Create(), TimeSpan.FromSeconds(10), frameMac: false));
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, 8, Key.PeerKey(8), TimeSpan.FromSeconds(10), frameMac: false);
        var g = Payload(9);
        client.Send(Gradient(8, g), g);
        handler.Wait();
        Assert.Equal(g, handler.Frames.Single());
        Assert.Equal(1, server.Stats.Dropped(DropReason.Unauthenticated));
    }

    [Fact]
    public void The_key_is_never_printed_and_a_job_without_one_is_refused_with_the_fix()
    {
        var key = DataPlaneKey.Create();
        var wire = key.ToWire();
        var job = new CoordinatorMessages.JobDescription("j", "{}", "sha256:x", 1, new CoordinatorMessages.DatasetInfo("idx:/d", 1, 1, ""),
            new CoordinatorMessages.Hyperparameters(new CoordinatorMessages.OptimizerSpec("sgd", 0.1f, 0, 0, 0, 0, 0), "constant", 0, 1, 1, 1, 1,
                TrainingMode.Sync, 0, 0, 1, "none", 0)) { DataKey = wire };
        var assignment = new RuntimeMessages.ShardAssignment(0, 1, 0, 1, job);
        foreach (var text in new[] { key.ToString(), job.ToString(), assignment.ToString() })
        {
            Assert.DoesNotContain(Convert.ToHexString(wire), text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(Convert.ToBase64String(wire), text);
            Assert.DoesNotContain("System.Byte[]", text);
        }
        Assert.Contains("not shown", job.ToString());
        Assert.Equal(wire, DataPlaneKey.FromWire(wire).ToWire());
        Assert.Contains("older DistTrain", Assert.Throws<ArgumentException>(() => DataPlaneKey.FromWire([])).Message);
        Assert.Contains("expected 32", Assert.Throws<ArgumentException>(() => DataPlaneKey.FromWire(new byte[16])).Message);
        Assert.NotEqual(wire, DataPlaneKey.Create().ToWire());
    }
}
